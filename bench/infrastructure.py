"""Plan, start and complete N infrastructure projects through the gateway; print writes/s, the completion →
indicator lag (p50, p99) and the GeoJSON view's latency with N located projects.

    .venv/bin/python bench/infrastructure.py [--projects 200] [--concurrency 8] [--url http://127.0.0.1:8000]

Without --url it starts its own `crp dev` (embedded NATS, SQLite) in a temporary folder; with
--database-url postgresql://... the services use PostgreSQL instead. The lag of a completion is the time from
its 200 until the indicators summary's `projects_completed` (polled every 20 ms) counts it.
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from register import (  # noqa: E402
    PACE,
    IndicatorWatch,
    bench_client,
    bench_community,
    bench_main,
    percentile,
    print_lag,
)

SECTORS = ("water", "electricity", "health", "education", "roads", "sanitation", "livelihoods", "other")


async def run(url: str, projects: int, concurrency: int) -> None:
    async with bench_client(url, concurrency, "programme_manager") as client:
        community_id = await bench_community(client)
        queue: asyncio.Queue[int] = asyncio.Queue()
        for i in range(projects):
            queue.put_nowait(i)
        failures: dict[int, int] = {}
        writes = 0

        async with IndicatorWatch(client, "projects_completed") as watch:

            async def worker() -> None:
                nonlocal writes
                while not queue.empty():
                    i = queue.get_nowait()
                    await PACE.wait(i)
                    resp = await client.post("/api/v1/infrastructure-projects", json={
                        "title": f"Bench project {i}", "sector": SECTORS[i % len(SECTORS)],
                        "community_id": community_id, "catchment_population": 100 + i, "justification": "benchmark",
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
                            watch.written()
                    for step in steps:
                        if step.status_code in (200, 201):
                            writes += 1
                        else:
                            failures[step.status_code] = failures.get(step.status_code, 0) + 1

            started = time.perf_counter()
            await asyncio.gather(*(worker() for _ in range(concurrency)))
            elapsed = time.perf_counter() - started

        geo = []
        for _ in range(20):
            t = time.perf_counter()
            resp = await client.get("/api/v1/infrastructure-projects/geojson?limit=5000")
            resp.raise_for_status()
            geo.append(time.perf_counter() - t)
        features = len(resp.json()["features"])

    print(f"projects completed     {len(watch.done_at)} (refused: {failures or 'none'}) with {concurrency} "
          f"concurrent clients, 3 writes each")
    print(f"writes/s               {writes / elapsed:.1f}")
    print_lag("completion → indicator", watch.lags())
    print(f"GeoJSON ({features} features) p50 {statistics.median(geo) * 1000:.0f} ms, "
          f"p99 {percentile(geo, 99) * 1000:.0f} ms")


def main() -> None:
    bench_main(__doc__, "projects", 200, run)


if __name__ == "__main__":
    main()
