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
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
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


@dataclass
class LoadReport:
    """What a load run did: the workers (their latencies, errors and created records), how long, the lag."""

    workers: list[Workload]
    elapsed: float
    lags: list[float]
    reconcile: subprocess.CompletedProcess[str]
    drained: float  # seconds from the last write until the figures were exact

    @property
    def operations(self) -> dict[str, tuple[list[float], dict[str, int]]]:
        """Per operation: the sorted latencies of the answered requests and the errors by status."""
        result: dict[str, tuple[list[float], dict[str, int]]] = {}
        for op in sorted({op for w in self.workers for op in (*w.stats.latencies, *w.stats.errors)}):
            errors: dict[str, int] = {}
            for w in self.workers:
                for code, n in w.stats.errors.get(op, {}).items():
                    errors[code] = errors.get(code, 0) + n
            result[op] = (sorted(x for w in self.workers for x in w.stats.latencies.get(op, [])), errors)
        return result

    @property
    def created(self) -> dict[str, int]:
        created: dict[str, int] = {}
        for w in self.workers:
            for kind, ids in w.created.items():
                created[kind] = created.get(kind, 0) + len(ids)
        return created

    def lost(self) -> list[tuple[str, str]]:
        return [missing for w in self.workers for missing in w.lost()]

    def print(self, url: str) -> None:
        print(f"load: {len(self.workers)} clients for {self.elapsed:.0f} s through {url}")
        print(f"{'operation':<20}{'count':>8}{'per s':>9}{'p50 ms':>9}{'p99 ms':>9}  errors")
        for op, (latencies, errors) in self.operations.items():
            p50 = percentile(latencies, 50) * 1000 if latencies else 0.0
            p99 = percentile(latencies, 99) * 1000 if latencies else 0.0
            print(f"{op:<20}{len(latencies):>8}{len(latencies) / self.elapsed:>9.1f}{p50:>9.0f}{p99:>9.0f}"
                  f"  {errors or '-'}")
        if self.lags:
            print(f"indicator lag: consumer behind by at most {max(self.lags):.0f} events "
                  f"(mean {sum(self.lags) / len(self.lags):.1f}) while loaded")
        print(f"indicator lag: figures exact {self.drained:.1f} s after the last write "
              f"(reconcile exit {self.reconcile.returncode})")
        out = self.reconcile.stdout.strip()
        print(out.splitlines()[-1] if out else self.reconcile.stderr[-500:])
        errors = sum(sum(e.values()) for _, e in self.operations.values())
        print(f"created: {self.created}; errors: {errors}")


def run_load(url: str, *, seconds: float, clients: int, indicators_port: int | None = None) -> LoadReport:
    """``clients`` threads run the mixed workload through the gateway at ``url`` for ``seconds``; then the
    indicators are reconciled with the services' own records."""
    setup = Workload(url)
    setup.setup()
    workers = []
    for _ in range(clients):
        work = Workload(url)
        work.communities, work.course = setup.communities, setup.course
        workers.append(work)
    stop = time.monotonic() + seconds
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
    setup.close()
    return LoadReport(workers, elapsed, lags, result, time.monotonic() - ended)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", help="a running gateway; default: start crp dev")
    parser.add_argument("--seconds", type=float, default=180.0)
    parser.add_argument("--clients", type=int, default=8)
    args = parser.parse_args()
    proc, url = (None, args.url) if args.url else start_platform(None)
    indicators_port = None if args.url else int(url.rsplit(":", 1)[1]) + 6
    try:
        report = run_load(url, seconds=args.seconds, clients=args.clients, indicators_port=indicators_port)
        report.print(url)
        with httpx.Client(base_url=url, headers=headers(), timeout=30) as client:
            assert client.get("/readyz").status_code == 200
        for work in report.workers:
            work.close()
        sys.exit(0 if report.reconcile.returncode == 0 else 1)
    finally:
        if proc is not None:
            proc.send_signal(signal.SIGTERM)
            proc.wait(30)


if __name__ == "__main__":
    main()
