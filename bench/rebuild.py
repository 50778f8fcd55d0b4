"""Fill a stream with N beneficiary events and time `rebuild` (aside, then swap); print events/s.

    .venv/bin/python bench/rebuild.py [--events 5000] [--nats-url nats://127.0.0.1:4222]
                                      [--database-url postgresql://postgres@127.0.0.1:5432/test]

Without --database-url it uses a SQLite file in a temporary folder. It uses its own stream and
PostgreSQL schema (both removed at the end); without --nats-url it starts a NATS server from the wheel.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import nats  # noqa: E402

from services.cli import start_nats  # noqa: E402
from services.indicators.config import IndicatorsSettings  # noqa: E402
from services.indicators.service import rebuild  # noqa: E402
from shared.bus import Bus, ensure_stream  # noqa: E402
from tests.pipeline.test_rebuild import history, subject  # noqa: E402


async def main(args: argparse.Namespace) -> None:
    tag = uuid.uuid4().hex[:8]
    with tempfile.TemporaryDirectory() as tmp:
        nats_proc = None
        nats_url = args.nats_url
        if nats_url is None:
            nats_proc, nats_url = start_nats(Path(tmp))
        values: dict[str, object] = dict(nats_url=nats_url, nats_stream=f"BENCH{tag}", subject_prefix=f"bench{tag}",
                                         data_dir=Path(tmp), rebuild_batch_size=args.batch_size)
        if args.database_url:
            values.update(database_url=args.database_url, database_schema=f"bench_{tag}")
        else:
            values.update(database_url=f"sqlite:///{tmp}/indicators.db")
        settings = IndicatorsSettings(**values)  # type: ignore[arg-type]
        nc = await nats.connect(nats_url)
        js = nc.jetstream()
        try:
            await ensure_stream(js, settings)
            for event in history(args.events):
                await nc.publish(subject(settings, event), event.model_dump_json().encode())
            await nc.flush()
            for _ in range(600):  # stored within a minute
                if (await js.stream_info(settings.nats_stream)).state.messages >= args.events:
                    break
                await asyncio.sleep(0.1)
            bus = Bus(settings, name="bench-rebuild")
            bus.start()
            try:
                for run in ("first (empty projection)", "again (over a full projection)"):
                    started = time.perf_counter()
                    stats = await rebuild(settings=settings, bus=bus)
                    seconds = time.perf_counter() - started
                    print(f"{'postgresql' if args.database_url else 'sqlite'} {run}: {stats.read} events in "
                          f"{seconds:.2f} s = {stats.read / seconds:.0f} events/s", flush=True)
            finally:
                await bus.close()
        finally:
            await js.delete_stream(settings.nats_stream)
            await nc.close()
            if args.database_url:
                import asyncpg

                conn = await asyncpg.connect(args.database_url)
                await conn.execute(f'DROP SCHEMA IF EXISTS "bench_{tag}" CASCADE')
                await conn.close()
            if nats_proc is not None:
                nats_proc.terminate()
                nats_proc.wait(10)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=5000)
    parser.add_argument("--batch-size", type=int, default=200)
    parser.add_argument("--nats-url")
    parser.add_argument("--database-url")
    asyncio.run(main(parser.parse_args()))
