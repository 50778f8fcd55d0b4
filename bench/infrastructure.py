"""Plan, start and complete N infrastructure projects through the gateway; print writes/s, the completion →
indicator lag (p50, p99) and the GeoJSON view's latency with N located projects.

    .venv/bin/python bench/infrastructure.py [--projects 200] [--concurrency 8] [--url http://127.0.0.1:8000]

Without --url it starts its own `crp dev` (embedded NATS, SQLite) in a temporary folder; with
--database-url postgresql://... the services use PostgreSQL instead. The lag of a completion is the time from
its 200 until the indicators summary's `projects_completed` (polled every 20 ms) counts it.
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

sys.path.insert(0, str(Path(__file__).resolve().parent))

from register import percentile, start_platform  # noqa: E402

from shared.auth import issue_token  # noqa: E402
from shared.settings import CommonSettings  # noqa: E402

SECTORS = ("water", "electricity", "health", "education", "roads", "sanitation", "livelihoods", "other")


async def run(url: str, projects: int, concurrency: int) -> None:
    token = issue_token(CommonSettings(), roles=["programme_manager"], sub="bench")
    headers = {"Authorization": f"Bearer {token}"}
    limits = httpx.Limits(max_connections=concurrency + 2, max_keepalive_connections=concurrency + 2)
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=30, limits=limits) as client:
        resp = await client.post("/api/v1/communities", json={"name": "Bench", "district_pcode": "IQG15Q05"})
        resp.raise_for_status()
        community_id = resp.json()["id"]

        async def completed() -> int:
            resp = await client.get("/api/v1/indicators/summary")
            if resp.status_code != 200:
                raise SystemExit(f"summary answered {resp.status_code}: {resp.text}")
            return resp.json()["projects_completed"]

        baseline = await completed()
        done_at: list[float] = []
        seen: list[tuple[float, int]] = []
        stop = asyncio.Event()

        async def poll() -> None:
            while True:
                count = await completed()
                seen.append((time.perf_counter(), count - baseline))
                if stop.is_set() and count - baseline >= len(done_at):
                    return
                await asyncio.sleep(0.02)

        queue: asyncio.Queue[int] = asyncio.Queue()
        for i in range(projects):
            queue.put_nowait(i)
        failures: dict[int, int] = {}
        writes = 0

        async def worker() -> None:
            nonlocal writes
            while not queue.empty():
                i = queue.get_nowait()
                resp = await client.post("/api/v1/infrastructure-projects", json={
                    "title": f"Bench project {i}", "sector": SECTORS[i % len(SECTORS)], "community_id": community_id,
                    "catchment_population": 100 + i, "justification": "benchmark",
                    "latitude": 36 + (i % 100) / 100, "longitude": 43 + (i % 97) / 100})
                steps = [resp]
                if resp.status_code == 201:
                    project = resp.json()["id"]
                    for status in ("in_progress", "completed"):
                        steps.append(await client.post(f"/api/v1/infrastructure-projects/{project}/status",
                                                       json={"status": status, "on": "2026-11-01"}))
                        if steps[-1].status_code != 200:
                            break
                    else:
                        done_at.append(time.perf_counter())
                for step in steps:
                    if step.status_code in (200, 201):
                        writes += 1
                    else:
                        failures[step.status_code] = failures.get(step.status_code, 0) + 1

        poller = asyncio.create_task(poll())
        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
        stop.set()
        await asyncio.wait_for(poller, 60)

        geo = []
        for _ in range(20):
            t = time.perf_counter()
            resp = await client.get("/api/v1/infrastructure-projects/geojson?limit=5000")
            resp.raise_for_status()
            geo.append(time.perf_counter() - t)
        features = len(resp.json()["features"])

    lags = []
    for k, t in enumerate(sorted(done_at), start=1):
        counted = next((when for when, count in seen if count >= k and when >= t), None)
        if counted is None:
            counted = next(when for when, count in seen if count >= k)
        lags.append(max(0.0, counted - t))
    print(f"projects completed     {len(done_at)} (refused: {failures or 'none'}) with {concurrency} concurrent "
          f"clients, 3 writes each")
    print(f"writes/s               {writes / elapsed:.1f}")
    print(f"completion → indicator p50 {statistics.median(lags) * 1000:.0f} ms, p99 {percentile(lags, 99) * 1000:.0f} "
          f"ms, max {max(lags) * 1000:.0f} ms")
    print(f"GeoJSON ({features} features) p50 {statistics.median(geo) * 1000:.0f} ms, "
          f"p99 {percentile(geo, 99) * 1000:.0f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--projects", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--url", help="a running gateway; default: start crp dev")
    parser.add_argument("--database-url", help="with no --url: run the services on this PostgreSQL")
    args = parser.parse_args()
    proc = None
    url = args.url
    if url is None:
        proc, url = start_platform(args.database_url)
    try:
        asyncio.run(run(url, args.projects, args.concurrency))
    finally:
        if proc is not None:
            proc.send_signal(signal.SIGTERM)
            proc.wait(30)


if __name__ == "__main__":
    main()
