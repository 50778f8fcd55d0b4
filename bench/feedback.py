"""Feedback through the gateway: intake writes/s, the event → indicator lag of `feedback_received` (p50, p99),
and the public status page (reference + PIN, no token) in checks/s.

    .venv/bin/python bench/feedback.py [--cases 300] [--concurrency 8] [--url http://127.0.0.1:8000]

Without --url it starts its own `crp dev` (embedded NATS, SQLite) in a temporary folder (the gateway's rate
limit off); with --database-url postgresql://... the services use PostgreSQL instead.
"""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.register import PACE, IndicatorWatch, bench_client, bench_community, bench_main, print_lag  # noqa: E402

CATEGORIES = ["information_request", "assistance_request", "minor_dissatisfaction", "appreciation", "sea"]


async def run(url: str, cases: int, concurrency: int) -> None:
    async with bench_client(url, concurrency, "cfm_officer", "programme_manager") as client:
        community_id = await bench_community(client)
        queue: asyncio.Queue[int] = asyncio.Queue()
        for i in range(cases):
            queue.put_nowait(i)
        receipts: list[dict[str, str]] = []

        async with IndicatorWatch(client, "feedback_received") as watch:

            async def submit() -> None:
                while not queue.empty():
                    i = queue.get_nowait()
                    await PACE.wait(i)
                    resp = await client.post("/api/v1/feedback", json={
                        "channel": "hotline", "category": CATEGORIES[i % len(CATEGORIES)],
                        "description": f"Synthetic case {i}", "community_id": community_id, "anonymous": i % 2 == 0,
                        **({} if i % 2 == 0 else {"contact": f"+964 770 000 {i:04d}"})})
                    resp.raise_for_status()
                    watch.written()
                    receipts.append(resp.json())

            started = time.perf_counter()
            await asyncio.gather(*(submit() for _ in range(concurrency)))
            elapsed = time.perf_counter() - started

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

    print(f"cases submitted        {len(watch.done_at)} with {concurrency} concurrent clients")
    print(f"intake writes/s        {len(watch.done_at) / elapsed:.1f}")
    print_lag("event → indicator lag", watch.lags())
    print(f"public status checks/s {checks / checks_elapsed:.1f} ({checks} right PINs)")


def main() -> None:
    bench_main(__doc__, "cases", 300, run)


if __name__ == "__main__":
    main()
