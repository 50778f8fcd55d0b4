"""Register N people through the gateway; print writes/s and the event → indicator lag (p50, p99).

    .venv/bin/python bench/register.py [--people 500] [--concurrency 8] [--url http://127.0.0.1:8000]

Without --url it starts its own `crp dev` (embedded NATS, SQLite) in a temporary folder; with
--database-url postgresql://... the services use PostgreSQL instead. The lag of a write is the
time from its 201 until the indicators summary (polled every 20 ms) counts it.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from shared.auth import issue_token  # noqa: E402
from shared.settings import CommonSettings  # noqa: E402

FIRST = ["Ahmed", "Fatima", "Zainab", "Omar", "Noor", "Hussein", "Maryam", "Ali", "Sara", "Yousef"]


def synthetic_name(i: int, salt: int) -> str:
    """A made-up name unlike any other index's, so the duplicate check lets every write through."""
    n, letters = (i + 1) * 7919 + salt * 104729, []
    while n:
        n, r = divmod(n, 26)
        letters.append("bcdfghjklmnpqrstvwxz"[r % 20] + "aeiou"[r % 5])
    return "".join(letters).capitalize()


def start_platform(database_url: str | None) -> tuple[subprocess.Popen[str], str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if not k.startswith("CRP_")}
    env["CRP_RATE_LIMIT_PER_SECOND"] = "0"  # one client writes as fast as it can here
    if database_url:
        env["CRP_DATABASE_URL"] = database_url
    data_dir = tempfile.mkdtemp(prefix="crp-bench-")
    proc = subprocess.Popen([sys.executable, "-m", "services.cli", "dev", "--port", str(port), "--data-dir", data_dir],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert proc.stdout is not None
    for line in proc.stdout:
        if line.startswith("Press Ctrl-C"):
            return proc, f"http://127.0.0.1:{port}"
    raise SystemExit("crp dev did not start")


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


async def run(url: str, people: int, concurrency: int) -> None:
    token = issue_token(CommonSettings(), roles=["programme_manager"], sub="bench")
    headers = {"Authorization": f"Bearer {token}"}
    limits = httpx.Limits(max_connections=concurrency + 2, max_keepalive_connections=concurrency + 2)
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=30, limits=limits) as client:
        resp = await client.post("/api/v1/communities", json={"name": "Bench", "district_pcode": "IQG15Q05"})
        resp.raise_for_status()
        community_id = resp.json()["id"]

        async def registered() -> int:
            resp = await client.get("/api/v1/indicators/summary")
            if resp.status_code != 200:
                raise SystemExit(f"summary answered {resp.status_code}: {resp.text}")
            return resp.json()["beneficiaries_registered"]

        baseline = await registered()
        done_at: list[float] = []
        seen: list[tuple[float, int]] = []
        stop = asyncio.Event()

        async def poll() -> None:
            while True:
                count = await registered()
                seen.append((time.perf_counter(), count - baseline))
                if stop.is_set() and count - baseline >= len(done_at):
                    return
                await asyncio.sleep(0.02)

        queue: asyncio.Queue[int] = asyncio.Queue()
        for i in range(people):
            queue.put_nowait(i)
        failures: dict[int, int] = {}

        async def worker() -> None:
            while not queue.empty():
                i = queue.get_nowait()
                body = {"first_name": FIRST[i % len(FIRST)], "father_name": synthetic_name(i, 1),
                        "grandfather_name": synthetic_name(i, 2),
                        "sex": "female" if i % 2 else "male", "date_of_birth": f"{1940 + i % 65}-03-0{1 + i % 9}",
                        "displacement_status": ("idp", "returnee", "host_community")[i % 3],
                        "community_id": community_id, "consent": {"given": True, "obtained_on": "2026-11-01"}}
                resp = await client.post("/api/v1/beneficiaries", json=body)
                if resp.status_code == 201:
                    done_at.append(time.perf_counter())
                else:
                    failures[resp.status_code] = failures.get(resp.status_code, 0) + 1

        poller = asyncio.create_task(poll())
        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
        stop.set()
        await asyncio.wait_for(poller, 60)

    lags = []
    for k, t in enumerate(sorted(done_at), start=1):
        counted = next((when for when, count in seen if count >= k and when >= t), None)
        if counted is None:
            counted = next(when for when, count in seen if count >= k)
        lags.append(max(0.0, counted - t))
    print(f"people registered      {len(done_at)} (refused: {failures or 'none'}) "
          f"with {concurrency} concurrent clients")
    print(f"writes/s               {len(done_at) / elapsed:.1f}")
    print(f"event → indicator lag  p50 {statistics.median(lags) * 1000:.0f} ms, "
          f"p99 {percentile(lags, 99) * 1000:.0f} ms, max {max(lags) * 1000:.0f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--people", type=int, default=500)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--url", help="a running gateway; default: start crp dev")
    parser.add_argument("--database-url", help="with no --url: run the services on this PostgreSQL")
    args = parser.parse_args()
    proc = None
    url = args.url
    if url is None:
        proc, url = start_platform(args.database_url)
    try:
        asyncio.run(run(url, args.people, args.concurrency))
    finally:
        if proc is not None:
            proc.send_signal(signal.SIGTERM)
            proc.wait(30)


if __name__ == "__main__":
    main()
