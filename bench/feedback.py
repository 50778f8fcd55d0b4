"""Feedback through the gateway: intake writes/s, the event → indicator lag of `feedback_received` (p50, p99),
and the public status page (reference + PIN, no token) in checks/s.

    .venv/bin/python bench/feedback.py [--cases 300] [--concurrency 8] [--url http://127.0.0.1:8000]

Without --url it starts its own `crp dev` (embedded NATS, SQLite) in a temporary folder (the gateway's rate
limit off); with --database-url postgresql://... the services use PostgreSQL instead.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import statistics
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.register import percentile, start_platform  # noqa: E402
from shared.auth import issue_token  # noqa: E402
from shared.settings import CommonSettings  # noqa: E402

CATEGORIES = ["information_request", "assistance_request", "minor_dissatisfaction", "appreciation", "sea"]


async def run(url: str, cases: int, concurrency: int) -> None:
    token = issue_token(CommonSettings(), roles=["cfm_officer", "programme_manager"], sub="bench")
    headers = {"Authorization": f"Bearer {token}"}
    limits = httpx.Limits(max_connections=concurrency + 2, max_keepalive_connections=concurrency + 2)
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=30, limits=limits) as client:
        resp = await client.post("/api/v1/communities", json={"name": "Bench", "district_pcode": "IQG15Q05"})
        resp.raise_for_status()
        community_id = resp.json()["id"]

        async def received() -> int:
            return (await client.get("/api/v1/indicators/summary")).json()["feedback_received"]

        baseline = await received()
        done_at: list[float] = []
        receipts: list[dict[str, str]] = []
        seen: list[tuple[float, int]] = []
        stop = asyncio.Event()

        async def poll() -> None:
            while True:
                count = await received()
                seen.append((time.perf_counter(), count - baseline))
                if stop.is_set() and count - baseline >= len(done_at):
                    return
                await asyncio.sleep(0.02)

        queue: asyncio.Queue[int] = asyncio.Queue()
        for i in range(cases):
            queue.put_nowait(i)

        async def submit() -> None:
            while not queue.empty():
                i = queue.get_nowait()
                resp = await client.post("/api/v1/feedback", json={
                    "channel": "hotline", "category": CATEGORIES[i % len(CATEGORIES)],
                    "description": f"Synthetic case {i}", "community_id": community_id, "anonymous": i % 2 == 0,
                    **({} if i % 2 == 0 else {"contact": f"+964 770 000 {i:04d}"})})
                resp.raise_for_status()
                done_at.append(time.perf_counter())
                receipts.append(resp.json())

        poller = asyncio.create_task(poll())
        started = time.perf_counter()
        await asyncio.gather(*(submit() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
        stop.set()
        await asyncio.wait_for(poller, 60)

        checks = 0

        async def check(part: list[dict[str, str]]) -> None:
            nonlocal checks
            for r in part:
                resp = await client.get(f"/api/v1/public/feedback/{r['reference']}/status",
                                        headers={"X-Feedback-PIN": r["pin"], "Authorization": ""})
                resp.raise_for_status()
                checks += 1

        started_checks = time.perf_counter()
        await asyncio.gather(*(check(receipts[k::concurrency]) for k in range(concurrency)))
        checks_elapsed = time.perf_counter() - started_checks

    lags = []
    for k, t in enumerate(sorted(done_at), start=1):
        counted = next((when for when, count in seen if count >= k and when >= t), None)
        if counted is None:
            counted = next(when for when, count in seen if count >= k)
        lags.append(max(0.0, counted - t))
    print(f"cases submitted        {len(done_at)} with {concurrency} concurrent clients")
    print(f"intake writes/s        {len(done_at) / elapsed:.1f}")
    print(f"event → indicator lag  p50 {statistics.median(lags) * 1000:.0f} ms, "
          f"p99 {percentile(lags, 99) * 1000:.0f} ms, max {max(lags) * 1000:.0f} ms")
    print(f"public status checks/s {checks / checks_elapsed:.1f} ({checks} right PINs)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", type=int, default=300)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--url", help="a running gateway; default: start crp dev")
    parser.add_argument("--database-url", help="with no --url: run the services on this PostgreSQL")
    args = parser.parse_args()
    proc = None
    url = args.url
    if url is None:
        proc, url = start_platform(args.database_url)
    try:
        asyncio.run(run(url, args.cases, args.concurrency))
    finally:
        if proc is not None:
            proc.send_signal(signal.SIGTERM)
            proc.wait(30)


if __name__ == "__main__":
    main()
