"""A mixed workload through the gateway for several minutes (registrations, grants approved and disbursed,
enrolments with attendance and completion, feedback, community activities, reads); prints throughput per
operation, p50/p99, errors, the indicators' lag, and confirms the figures are exact afterwards
(`crp indicators reconcile`: the indicators equal the truth recomputed from the services' records).

    .venv/bin/python bench/load.py [--seconds 180] [--clients 8] [--url http://127.0.0.1:8000]

Without --url it starts its own `crp dev` (SQLite, embedded NATS) in a temporary folder (`make load`).
"""

from __future__ import annotations

import argparse
import re
import signal
import sys
import threading
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.register import percentile, start_platform  # noqa: E402
from bench.workload import Workload, headers, reconcile  # noqa: E402


def consumer_lag(url: str, indicators_port: int | None) -> float | None:
    """``crp_consumer_lag_events`` of the indicators service (events on the stream it has not acknowledged)."""
    if indicators_port is None:
        return None
    try:
        text = httpx.get(f"http://127.0.0.1:{indicators_port}/metrics", timeout=5).text
    except httpx.HTTPError:
        return None
    found = re.findall(r"^crp_consumer_lag_events(?:\{[^}]*\})? ([0-9.e+]+)$", text, re.M)
    return max(map(float, found)) if found else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", help="a running gateway; default: start crp dev")
    parser.add_argument("--seconds", type=float, default=180.0)
    parser.add_argument("--clients", type=int, default=8)
    args = parser.parse_args()
    proc, url = (None, args.url) if args.url else start_platform(None)
    indicators_port = None if args.url else int(url.rsplit(":", 1)[1]) + 6
    try:
        setup = Workload(url)
        setup.setup()
        workers = []
        for _ in range(args.clients):
            work = Workload(url)
            work.communities, work.course = setup.communities, setup.course
            workers.append(work)
        stop = time.monotonic() + args.seconds
        lags: list[float] = []

        def run(work: Workload) -> None:
            while time.monotonic() < stop:
                work.mixed()

        threads = [threading.Thread(target=run, args=(w,)) for w in workers]
        started = time.monotonic()
        for thread in threads:
            thread.start()
        while any(t.is_alive() for t in threads):
            if (lag := consumer_lag(url, indicators_port)) is not None:
                lags.append(lag)
            time.sleep(1.0)
        elapsed = time.monotonic() - started
        ended = time.monotonic()
        result = reconcile(url, wait=120)
        drained = time.monotonic() - ended
        print(f"load: {args.clients} clients for {elapsed:.0f} s through {url}")
        print(f"{'operation':<20}{'count':>8}{'per s':>9}{'p50 ms':>9}{'p99 ms':>9}  errors")
        ops = sorted({op for w in workers for op in (*w.stats.latencies, *w.stats.errors)})
        total_errors = 0
        for op in ops:
            latencies = sorted(x for w in workers for x in w.stats.latencies.get(op, []))
            errors: dict[str, int] = {}
            for w in workers:
                for code, n in w.stats.errors.get(op, {}).items():
                    errors[code] = errors.get(code, 0) + n
            total_errors += sum(errors.values())
            p50 = percentile(latencies, 50) * 1000 if latencies else 0.0
            p99 = percentile(latencies, 99) * 1000 if latencies else 0.0
            print(f"{op:<20}{len(latencies):>8}{len(latencies) / elapsed:>9.1f}{p50:>9.0f}{p99:>9.0f}  {errors or '-'}")
        if lags:
            print(f"indicator lag: consumer behind by at most {max(lags):.0f} events "
                  f"(mean {sum(lags) / len(lags):.1f}) while loaded")
        print(f"indicator lag: figures exact {drained:.1f} s after the last write (reconcile exit {result.returncode})")
        print(result.stdout.strip().splitlines()[-1] if result.stdout.strip() else result.stderr[-500:])
        created = {}
        for w in workers:
            for kind, ids in w.created.items():
                created[kind] = created.get(kind, 0) + len(ids)
        print(f"created: {created}; errors: {total_errors}")
        with httpx.Client(base_url=url, headers=headers(), timeout=30) as client:
            assert client.get("/readyz").status_code == 200
        sys.exit(0 if result.returncode == 0 else 1)
    finally:
        if proc is not None:
            proc.send_signal(signal.SIGTERM)
            proc.wait(30)


if __name__ == "__main__":
    main()
