"""Fill a stream with N events of a realistic mix and time `rebuild` (aside, then swap); print events/s.

The mix, like a programme's stream: per person a registration and sometimes an update, a merge now and then,
grants applied for, approved and disbursed (a few reversed, monitoring visits), trainings enrolled in and
completed (follow-ups), infrastructure projects moving through their statuses, feedback cases and activities
(``mixed_history``; ``--beneficiaries-only`` for the older beneficiary-only history).

    .venv/bin/python bench/rebuild.py [--events 100000] [--nats-url nats://127.0.0.1:4222]
                                      [--database-url postgresql://postgres@127.0.0.1:5432/test] [--live-handlers]

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
from shared.events import CloudEvent  # noqa: E402
from tests.indicators.test_projection_order import Producers  # noqa: E402
from tests.pipeline.test_rebuild import history, subject  # noqa: E402

DISTRICTS = [f"IQG{g:02d}Q{d:02d}" for g in range(1, 19) for d in range(1, 4)]


def mixed_history(n: int, seed: int = 7) -> list[CloudEvent]:
    """At least ``n`` events, in the order the services would emit them (the stream's order)."""
    p = Producers(seed)
    rng = p.rng
    places = [(p.community(d), d) for d in DISTRICTS for _ in range(4)]
    people: list[str] = []
    while len(p.events) < n:
        place = rng.choice(places)
        person = p.register(*place)
        people.append(person)
        if rng.random() < 0.2:
            p.update(person, displacement_status=rng.choice(["idp", "returnee", "host_community"]))
        if rng.random() < 0.02 and len(people) > 10:
            p.merge(rng.choice(people[:-1]), person)
            continue
        roll = rng.random()
        if roll < 0.35:
            grant = p.apply_for_grant(person, "call-1")
            p.approve(grant)
            made = p.disburse(grant, "1000.00")
            if rng.random() < 0.05:
                p.reverse(made)
            if rng.random() < 0.3:
                p.monitor(grant, operating=rng.random() < 0.8)
        elif roll < 0.65:
            enrolment = p.enrol(person, *place)
            p.complete(enrolment)
            if rng.random() < 0.3:
                p.follow_up(enrolment, 3, rng.choice(["employed", "unemployed"]))
        if rng.random() < 0.05:
            project = p.plan_project(*place, rng.choice(["water", "roads", "health"]), rng.randint(100, 5000))
            for status in ("in_progress", "completed"):
                p.move_project(project, status)
        if rng.random() < 0.1:
            case = p.feedback(rng.choice(["information_request", "appreciation", "sea"]), *place)
            p.move(case, "resolved", acknowledged=True, resolved=rng.random() < 0.8)
        if rng.random() < 0.03:
            p.activity("dialogue", *place, rng.randint(5, 50))
    return p.events[:n]


async def main(args: argparse.Namespace) -> None:
    tag = uuid.uuid4().hex[:8]
    with tempfile.TemporaryDirectory() as tmp:
        nats_proc = None
        nats_url = args.nats_url
        if nats_url is None:
            nats_proc, nats_url = start_nats(Path(tmp))
        values: dict[str, object] = dict(nats_url=nats_url, nats_stream=f"BENCH{tag}", subject_prefix=f"bench{tag}",
                                         data_dir=Path(tmp), rebuild_batch_size=args.batch_size,
                                         rebuild_in_memory=not args.live_handlers)
        if args.database_url:
            values.update(database_url=args.database_url, database_schema=f"bench_{tag}")
        else:
            values.update(database_url=f"sqlite:///{tmp}/indicators.db")
        settings = IndicatorsSettings(**values)  # type: ignore[arg-type]
        nc = await nats.connect(nats_url)
        js = nc.jetstream()
        try:
            await ensure_stream(js, settings)
            events = history(args.events) if args.beneficiaries_only else mixed_history(args.events)
            for i, event in enumerate(events):
                await nc.publish(subject(settings, event), event.model_dump_json().encode())
                if i % 5000 == 4999:
                    await nc.flush()
            await nc.flush()
            for _ in range(600):  # stored within a minute
                if (await js.stream_info(settings.nats_stream)).state.messages >= args.events:
                    break
                await asyncio.sleep(0.1)
            bus = Bus(settings, name="bench-rebuild")
            bus.start()
            try:
                for run in ("first (empty projection)", "again (over a full projection)"):
                    started, cpu = time.perf_counter(), time.process_time()
                    stats = await rebuild(settings=settings, bus=bus)
                    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
                    print(f"{'postgresql' if args.database_url else 'sqlite'} "
                          f"{'live handlers' if args.live_handlers else 'in memory'} {run}: {stats.read} events in "
                          f"{seconds:.2f} s = {stats.read / seconds:.0f} events/s ({cpu:.2f} s of this process's CPU: "
                          f"{stats.read / cpu:.0f} events per CPU second; NATS and PostgreSQL not counted)", flush=True)
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
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--batch-size", type=int, help="events read at a time (default: the service's)")
    parser.add_argument("--live-handlers", action="store_true", help="rebuild through the live handlers")
    parser.add_argument("--beneficiaries-only", action="store_true", help="the older beneficiary-only history")
    parser.add_argument("--nats-url")
    parser.add_argument("--database-url")
    asyncio.run(main(parser.parse_args()))
