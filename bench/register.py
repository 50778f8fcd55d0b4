"""Register N people through the gateway; print writes/s and the event → indicator lag (p50, p99).

    .venv/bin/python bench/register.py [--people 500] [--concurrency 8] [--rate 100] [--url http://127.0.0.1:8000]

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
from collections.abc import Awaitable, Callable
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


def bench_client(url: str, concurrency: int, *roles: str) -> httpx.AsyncClient:
    """A client on the gateway with a development token of ``roles``, pooled for ``concurrency`` writers."""
    token = issue_token(CommonSettings(), roles=list(roles), sub="bench")
    limits = httpx.Limits(max_connections=concurrency + 2, max_keepalive_connections=concurrency + 2)
    return httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=30, limits=limits)


async def bench_community(client: httpx.AsyncClient) -> str:
    resp = await client.post("/api/v1/communities", json={"name": "Bench", "district_pcode": "IQG15Q05"})
    resp.raise_for_status()
    return str(resp.json()["id"])


class IndicatorWatch:
    """Polls one figure of the indicators summary every 20 ms while the writes run (``async with``), and gives
    each write's lag: from its 2xx (``written()``) until the figure counts it."""

    def __init__(self, client: httpx.AsyncClient, figure: str) -> None:
        self.client, self.figure = client, figure
        self.done_at: list[float] = []
        self.seen: list[tuple[float, int]] = []
        self.stop = asyncio.Event()

    async def value(self) -> int:
        resp = await self.client.get("/api/v1/indicators/summary")
        if resp.status_code != 200:
            raise SystemExit(f"summary answered {resp.status_code}: {resp.text}")
        return int(resp.json()[self.figure])

    async def __aenter__(self) -> IndicatorWatch:
        self.baseline = await self.value()
        self.poller = asyncio.create_task(self._poll())
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.stop.set()
        if exc[0] is not None:
            self.poller.cancel()
            return
        await asyncio.wait_for(self.poller, 60)

    async def _poll(self) -> None:
        while True:
            count = await self.value() - self.baseline
            self.seen.append((time.perf_counter(), count))
            if self.stop.is_set() and count >= len(self.done_at):
                return
            await asyncio.sleep(0.02)

    def written(self) -> None:
        self.done_at.append(time.perf_counter())

    def lags(self) -> list[float]:
        lags = []
        for k, t in enumerate(sorted(self.done_at), start=1):
            counted = next((when for when, count in self.seen if count >= k and when >= t), None)
            if counted is None:
                counted = next(when for when, count in self.seen if count >= k)
            lags.append(max(0.0, counted - t))
        return lags


class Pace:
    """``--rate R``: write number i is sent no earlier than i / R seconds after the first (a steady offered
    load, so the lag is measured at a known rate); without it the clients write as fast as they can."""

    def __init__(self) -> None:
        self.rate: float | None = None
        self.started: float | None = None

    async def wait(self, i: int) -> None:
        if not self.rate:
            return
        now = time.perf_counter()
        if self.started is None:
            self.started = now
        await asyncio.sleep(max(0.0, self.started + i / self.rate - now))


PACE = Pace()


def print_lag(label: str, lags: list[float]) -> None:
    print(f"{label:<22} p50 {statistics.median(lags) * 1000:.0f} ms, p99 {percentile(lags, 99) * 1000:.0f} ms, "
          f"max {max(lags) * 1000:.0f} ms")


def bench_main(doc: str | None, size: str, default: int, run: Callable[[str, int, int], Awaitable[None]]) -> None:
    """The command line every bench shares: ``--<size> N``, ``--concurrency``, and ``--url`` of a running gateway
    or, without it, its own ``crp dev`` (on ``--database-url`` if given)."""
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(f"--{size}", type=int, default=default)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--rate", type=float, help="writes per second in all (default: as fast as possible)")
    parser.add_argument("--url", help="a running gateway; default: start crp dev")
    parser.add_argument("--database-url", help="with no --url: run the services on this PostgreSQL")
    args = parser.parse_args()
    PACE.rate = args.rate
    proc = None
    url = args.url
    if url is None:
        proc, url = start_platform(args.database_url)
    try:
        asyncio.run(run(url, getattr(args, size), args.concurrency))
    finally:
        if proc is not None:
            proc.send_signal(signal.SIGTERM)
            proc.wait(30)


async def run(url: str, people: int, concurrency: int) -> None:
    async with bench_client(url, concurrency, "programme_manager") as client:
        community_id = await bench_community(client)
        queue: asyncio.Queue[int] = asyncio.Queue()
        for i in range(people):
            queue.put_nowait(i)
        failures: dict[int, int] = {}

        async with IndicatorWatch(client, "beneficiaries_registered") as watch:

            async def worker() -> None:
                while not queue.empty():
                    i = queue.get_nowait()
                    await PACE.wait(i)
                    body = {"first_name": FIRST[i % len(FIRST)], "father_name": synthetic_name(i, 1),
                            "grandfather_name": synthetic_name(i, 2),
                            "sex": "female" if i % 2 else "male", "date_of_birth": f"{1940 + i % 65}-03-0{1 + i % 9}",
                            "displacement_status": ("idp", "returnee", "host_community")[i % 3],
                            "community_id": community_id, "consent": {"given": True, "obtained_on": "2026-11-01"}}
                    resp = await client.post("/api/v1/beneficiaries", json=body)
                    if resp.status_code == 201:
                        watch.written()
                    else:
                        failures[resp.status_code] = failures.get(resp.status_code, 0) + 1

            started = time.perf_counter()
            await asyncio.gather(*(worker() for _ in range(concurrency)))
            elapsed = time.perf_counter() - started

    print(f"people registered      {len(watch.done_at)} (refused: {failures or 'none'}) "
          f"with {concurrency} concurrent clients")
    print(f"writes/s               {len(watch.done_at) / elapsed:.1f}"
          + (f" (offered {PACE.rate:g}/s)" if PACE.rate else ""))
    print_lag("event → indicator lag", watch.lags())


def main() -> None:
    bench_main(__doc__, "people", 500, run)


if __name__ == "__main__":
    main()
