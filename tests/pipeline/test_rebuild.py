"""`crp indicators rebuild`: built aside and swapped in, never short of the stream, never over an emptied one.

Real NATS JetStream and real databases (SQLite, and PostgreSQL when CRP_TEST_POSTGRES_URL is set).
"""

from __future__ import annotations

import asyncio
import itertools
import os
import signal
import subprocess
import sys
import uuid
from typing import Any

import nats
import pytest
from sqlalchemy import func, select, text

from services.indicators.app import create_app as create_indicators
from services.indicators.app import service
from services.indicators.config import IndicatorsSettings
from services.indicators.models import CommunityRef, Person
from services.indicators.service import rebuild
from shared.bus import Bus, ensure_stream
from shared.consumer import DeadLetter, ProcessedEvent
from shared.db import create_engine, create_sessionmaker
from shared.events import CloudEvent, EventData
from shared.events.beneficiaries import (
    BeneficiaryMerged,
    BeneficiaryRegistered,
    BeneficiaryUpdated,
    CommunityCreated,
)
from shared.rebuild import RebuildBusy, RebuildIncomplete, RebuildRefused, RebuildStats, aside_for, rebuild_lock
from tests.conftest import Env, NatsProcess, eventually, running

SOURCE = "/crp/beneficiaries"
STATUSES = ("idp", "returnee", "host_community")


def wrap(data: EventData) -> CloudEvent:
    return CloudEvent.wrap(data, source=SOURCE)


def history(n: int, *, seed: int = 0) -> list[CloudEvent]:
    """``n`` events like the beneficiaries service's: communities, registrations, updates and merges."""
    events: list[CloudEvent] = []
    communities: list[str] = []
    people: dict[str, int] = {}  # beneficiary id -> revision
    for i in itertools.count(seed):
        if len(events) >= n:
            return events
        if i % 25 == 0 or not communities:
            communities.append(str(uuid.uuid4()))
            events.append(wrap(CommunityCreated(community_id=communities[-1], district_pcode="IQG15Q05",
                                                governorate_pcode="IQG15")))
        elif i % 7 == 3 and people:
            bid = list(people)[i % len(people)]
            people[bid] += 1
            events.append(wrap(BeneficiaryUpdated(
                beneficiary_id=bid, revision=people[bid], sex="female", birth_year=1980 + i % 30,
                displacement_status=STATUSES[i % 3], community_id=communities[-1], district_pcode="IQG15Q05",
                governorate_pcode="IQG15", has_disability=False, changed_fields=["displacement_status"])))
        elif i % 11 == 5 and len(people) > 2:
            ids = list(people)
            events.append(wrap(BeneficiaryMerged(beneficiary_id=ids[i % len(ids)], duplicate_id=ids[(i + 1) % len(ids)],
                                                 merged_at="2026-11-02T10:00:00Z")))
        else:
            bid = str(uuid.uuid4())
            people[bid] = 1
            events.append(wrap(BeneficiaryRegistered(
                beneficiary_id=bid, revision=1, sex=("female", "male")[i % 2], birth_year=1950 + i % 60,
                displacement_status=STATUSES[i % 3], community_id=communities[-1], district_pcode="IQG15Q05",
                governorate_pcode="IQG15", has_disability=bool(i % 5 == 0), registered_at="2026-11-01T10:00:00Z")))
    raise AssertionError("unreachable")


def subject(settings: IndicatorsSettings, event: CloudEvent) -> str:
    return settings.subject_prefix + event.type.removeprefix("crp")


async def fill(settings: IndicatorsSettings, events: list[CloudEvent | bytes]) -> None:
    """Publish ``events`` (or raw bodies, which go out as registrations) in order and wait until stored."""
    nc = await nats.connect(settings.nats_url)
    try:
        js = nc.jetstream()
        await ensure_stream(js, settings)
        before = (await js.stream_info(settings.nats_stream)).state.messages
        for event in events:
            if isinstance(event, bytes):
                subj, body = BeneficiaryRegistered.subject(settings.subject_prefix), event
            else:
                subj, body = subject(settings, event), event.model_dump_json().encode()
            await nc.publish(subj, body, headers={"Nats-Msg-Id": str(uuid.uuid4())})
        await nc.flush()

        async def stored() -> bool:
            return (await js.stream_info(settings.nats_stream)).state.messages == before + len(events)

        await eventually(stored, timeout=20)
    finally:
        await nc.close()


async def recreate_stream(settings: IndicatorsSettings) -> None:
    nc = await nats.connect(settings.nats_url)
    try:
        js = nc.jetstream()
        await js.delete_stream(settings.nats_stream)
        await ensure_stream(js, settings)
    finally:
        await nc.close()


async def run_rebuild(settings: IndicatorsSettings, bus: Bus | None = None, **kwargs: Any) -> RebuildStats:
    own = bus is None
    if bus is None:
        bus = Bus(settings, name="test-rebuild")
        bus.start()
    try:
        return await rebuild(settings=settings, bus=bus, **kwargs)
    finally:
        if own:
            await bus.close(timeout=2)


async def snapshot(settings: IndicatorsSettings) -> dict[str, Any]:
    """What a projection holds, without the times it was written at."""
    engine = create_engine(settings)
    try:
        async with create_sessionmaker(engine)() as session:
            persons = {p.beneficiary_id: p.model_dump() for p in (await session.execute(select(Person))).scalars()}
            communities = {c.community_id: c.model_dump()
                           for c in (await session.execute(select(CommunityRef))).scalars()}
            processed = set((await session.execute(select(ProcessedEvent.event_id))).scalars())
            dead = sorted((d.event_id or "", d.error.split(":")[0])
                          for d in (await session.execute(select(DeadLetter))).scalars())
    finally:
        await engine.dispose()
    return {"persons": persons, "communities": communities, "processed": processed, "dead_letters": dead}


async def aside_exists(settings: IndicatorsSettings) -> bool:
    aside = aside_for(settings)
    if aside.path is not None:
        return aside.path.exists()
    engine = create_engine(settings)
    try:
        async with engine.connect() as conn:
            found = await conn.execute(text("SELECT count(*) FROM information_schema.schemata WHERE schema_name = :s"),
                                       {"s": aside.schema})
            return bool(found.scalar_one())
    finally:
        await engine.dispose()


async def in_order_truth(settings: IndicatorsSettings, stream_settings: IndicatorsSettings) -> dict[str, Any]:
    """Every event of the stream applied one by one, in order, by the plain applier: what any rebuild must give."""
    engine = create_engine(settings)
    applier = service.applier()
    nc = await nats.connect(stream_settings.nats_url)
    try:
        await service.migrate(engine, settings)
        sessionmaker = create_sessionmaker(engine)
        js = nc.jetstream()
        info = await js.stream_info(stream_settings.nats_stream)
        for seq in range(info.state.first_seq, info.state.last_seq + 1):
            msg = await js.get_msg(stream_settings.nats_stream, seq)
            async with sessionmaker() as session, session.begin():
                await applier.apply(session, CloudEvent.model_validate_json(msg.data))
    finally:
        await nc.close()
        await engine.dispose()
    return await snapshot(settings)


# -- (a) a stall fails the rebuild and commits nothing ---------------------------------------------
async def test_rebuild_against_stalled_nats_fails_and_leaves_the_live_projection(
        env: Env, own_nats: NatsProcess) -> None:
    settings = env.settings(IndicatorsSettings, nats_url=own_nats.url, rebuild_stall_seconds=2,
                            rebuild_batch_size=25)
    await fill(settings, list(history(150)))
    first = await run_rebuild(settings)
    assert (first.read, first.applied, first.reached) == (150, 150, 150)
    await fill(settings, list(history(150, seed=1000)))
    before = await snapshot(settings)
    assert len(before["processed"]) == 150

    stopped: list[int] = []

    def stall_midway(stats: RebuildStats) -> None:
        if not stopped and stats.reached >= 100:  # a third of the way: SIGSTOP, as a hung server would be
            os.kill(own_nats.proc.pid, signal.SIGSTOP)
            stopped.append(stats.reached)

    bus = Bus(settings, name="test-rebuild")
    bus.start()
    try:
        with pytest.raises(RebuildIncomplete, match=r"stalled.*sequence \d+ of 300.*nothing was replaced"):
            await run_rebuild(settings, bus, progress=stall_midway)
    finally:
        os.kill(own_nats.proc.pid, signal.SIGCONT)
        await bus.close(timeout=5)
    assert stopped and stopped[0] < 300
    assert await snapshot(settings) == before  # not a third of the stream: nothing at all
    assert not await aside_exists(settings)

    # Once NATS answers again, the same rebuild reaches the end.
    after = await run_rebuild(settings)
    assert (after.read, after.reached) == (300, 300)
    assert len((await snapshot(settings))["processed"]) == 300


async def test_rebuild_stalled_while_swapping_fails_and_holds_nothing(env: Env, own_nats: NatsProcess) -> None:
    """NATS stops while the swap catches up with the live consumer held off: rolled back, lock released."""
    settings = env.settings(IndicatorsSettings, nats_url=own_nats.url, rebuild_stall_seconds=2)
    await fill(settings, list(history(50)))
    await run_rebuild(settings)
    before = await snapshot(settings)
    late = history(5, seed=900)
    phases: list[str] = []

    async def arrive_then_stall(stats: RebuildStats) -> None:
        if stats.phase == "reading" and stats.reached == stats.last and not phases:
            await fill(settings, list(late))  # arrive after the aside was read to the end seen at the start
            phases.append("arrived")
        elif stats.phase == "swapping" and phases == ["arrived"]:
            os.kill(own_nats.proc.pid, signal.SIGSTOP)  # with the live tables locked, before catching up
            phases.append("stopped")

    bus = Bus(settings, name="test-rebuild")
    bus.start()
    try:
        with pytest.raises(RebuildIncomplete, match=r"stalled.*at sequence 51 of 55"):
            await run_rebuild(settings, bus, progress=arrive_then_stall)
    finally:
        os.kill(own_nats.proc.pid, signal.SIGCONT)
        await bus.close(timeout=5)
    assert phases == ["arrived", "stopped"]
    assert await snapshot(settings) == before
    assert not await aside_exists(settings)
    # Nothing is left holding the live tables: the next rebuild swaps in everything, and what arrives
    # once the aside was read to its target is caught up while swapping.
    later = history(3, seed=950)

    async def arrive(stats: RebuildStats) -> None:
        if stats.phase == "reading" and stats.reached == stats.last and not phases[2:]:
            await fill(settings, list(later))
            phases.append("arrived again")

    stats = await run_rebuild(settings, progress=arrive)
    assert (stats.last, stats.read, stats.caught_up, stats.reached) == (55, 58, 3, 58)
    assert (await snapshot(settings))["processed"] == before["processed"] | {e.id for e in late + later}


@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)  # SQLite writers queue on BEGIN IMMEDIATE
async def test_rebuild_gives_up_when_the_live_tables_stay_locked(env: Env) -> None:
    """A transaction that keeps processed_events past the patience: the swap fails cleanly, nothing replaced."""
    settings = env.settings(IndicatorsSettings, rebuild_stall_seconds=2)
    await fill(settings, list(history(20)))
    await run_rebuild(settings)
    await fill(settings, list(history(5, seed=700)))
    before = await snapshot(settings)
    engine = create_engine(settings)
    try:
        async with engine.connect() as holder:
            await holder.execute(select(func.count()).select_from(ProcessedEvent))  # keeps its lock until rollback
            with pytest.raises(RebuildIncomplete, match="processed_events stayed locked"):
                await run_rebuild(settings)
            await holder.rollback()
    finally:
        await engine.dispose()
    assert await snapshot(settings) == before
    assert not await aside_exists(settings)
    assert (await run_rebuild(settings)).read == 25


async def test_rebuild_survives_a_nats_restart_and_reads_everything(env: Env, own_nats: NatsProcess) -> None:
    """A restart within the stall time loses the ephemeral consumer: reading goes on from the sequence reached."""
    settings = env.settings(IndicatorsSettings, nats_url=own_nats.url, rebuild_stall_seconds=20,
                            rebuild_batch_size=25)
    events = history(150)
    await fill(settings, list(events))
    restarted: list[int] = []

    async def restart_midway(stats: RebuildStats) -> None:
        if not restarted and stats.reached >= 50:
            await asyncio.to_thread(own_nats.stop)
            await asyncio.to_thread(own_nats.start)
            restarted.append(stats.reached)

    stats = await run_rebuild(settings, progress=restart_midway)
    assert restarted and restarted[0] < 150
    assert (stats.read, stats.applied, stats.duplicates, stats.reached) == (150, 150, 0, 150)
    assert (await snapshot(settings))["processed"] == {e.id for e in events}


async def test_reader_reads_again_after_a_lost_delivery_and_across_deleted_sequences() -> None:
    """Without acks nothing is redelivered: a gap in the consumer sequence means reading again from there;
    a gap in the stream sequence (deleted messages) is no loss. (No NATS: a scripted subscription.)"""
    from types import SimpleNamespace

    from shared.rebuild import StreamReader

    def msg(stream_seq: int, consumer_seq: int, pending: int) -> Any:
        meta = SimpleNamespace(sequence=SimpleNamespace(stream=stream_seq, consumer=consumer_seq), num_pending=pending)
        return SimpleNamespace(metadata=meta, subject="s", data=b"{}")

    # Stream sequences 1..10 with 6 deleted; the first subscription loses the delivery of sequence 4.
    scripts = {1: [[msg(1, 1, 8), msg(2, 2, 7), msg(3, 3, 6), msg(5, 5, 4)]],
               4: [[msg(4, 1, 5), msg(5, 2, 4), msg(7, 3, 3)], [msg(8, 4, 2), msg(9, 5, 1), msg(10, 6, 0)]]}
    subscribed: list[int] = []

    class Sub:
        def __init__(self, start: int) -> None:
            self.batches = list(scripts[start])

        async def fetch(self, batch: int, timeout: float) -> list[Any]:
            return self.batches.pop(0)

        async def unsubscribe(self) -> None:
            pass

    reader = StreamReader(None, IndicatorsSettings(), stall_seconds=5, batch_size=10)  # type: ignore[arg-type]

    async def subscribe(start: int) -> Sub:
        subscribed.append(start)
        return Sub(start)

    reader._subscribe = subscribe  # type: ignore[method-assign]
    handled: list[int] = []

    async def handle(msgs: list[Any]) -> None:
        handled.extend(m.metadata.sequence.stream for m in msgs)

    assert await reader.read(1, 10, handle) == 10
    assert subscribed == [1, 4]
    assert handled == [1, 2, 3, 4, 5, 7, 8, 9, 10]


# -- (b) the live consumer's dead-letter policy ------------------------------------------------------
async def test_rebuild_dead_letters_poison_and_applies_everything_else(env: Env) -> None:
    settings = env.settings(IndicatorsSettings)
    good = history(40)
    broken = wrap(BeneficiaryRegistered(
        beneficiary_id=str(uuid.uuid4()), revision=1, sex="male", birth_year=1990, displacement_status="idp",
        community_id=str(uuid.uuid4()), district_pcode="IQG15Q05", governorate_pcode="IQG15", has_disability=False,
        registered_at="2026-11-01T10:00:00Z"))
    broken.data.pop("sex")  # a payload the projection cannot apply
    await fill(settings, [*good[:20], broken, b"{not an envelope", *good[20:]])

    stats = await run_rebuild(settings)
    assert (stats.read, stats.applied, stats.dead_letters) == (42, 40, 2)
    rebuilt = await snapshot(settings)
    assert rebuilt["processed"] == {e.id for e in good}
    assert rebuilt["dead_letters"] == sorted([("", "invalid envelope"), (broken.id, "ValidationError")])
    assert not await aside_exists(settings)

    # The live consumer, dead-lettering at the first failure, ends with the same projection.
    live_settings = env.settings(IndicatorsSettings, name="indicators_live", consumer_max_attempts=1)
    app = create_indicators(live_settings)
    async with running(app):
        async def all_handled() -> bool:
            async with app.state.sessionmaker() as session:
                done = (await session.execute(select(func.count()).select_from(ProcessedEvent))).scalar_one()
                dead = (await session.execute(select(func.count()).select_from(DeadLetter))).scalar_one()
            return done + dead == 42
        await eventually(all_handled, timeout=30)
    assert await snapshot(live_settings) == rebuilt


@pytest.mark.parametrize("way", ["live handlers", "fallback"])
async def test_rebuild_through_the_live_handlers_gives_what_the_replay_gives(
        env: Env, way: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """``rebuild_in_memory=false``, or a replay that cannot take an event (it then starts again through the live
    handlers), gives the projection the in-memory replay gives."""
    from services.indicators.replay import IndicatorsReplay
    from shared.rebuild import ReplayUnsupported

    settings = env.settings(IndicatorsSettings)
    events = history(80)
    assert any(e.type == BeneficiaryMerged.event_type() for e in events)
    await fill(settings, [*events[:30], b"{not an envelope", *events[30:]])
    in_memory = await run_rebuild(settings)
    expected = await snapshot(settings)
    assert (in_memory.read, in_memory.applied, in_memory.dead_letters) == (81, 80, 1)

    if way == "fallback":
        def unsupported(self: IndicatorsReplay, event: CloudEvent) -> None:
            raise ReplayUnsupported(event.type)

        monkeypatch.setattr(IndicatorsReplay, "on_merged", unsupported)
    else:
        settings = settings.model_copy(update={"rebuild_in_memory": False})
    stats = await run_rebuild(settings)
    assert (stats.read, stats.applied, stats.dead_letters) == (81, 80, 1)
    assert await snapshot(settings) == expected
    assert not await aside_exists(settings)


# -- (c) an empty or recreated stream does not replace a non-empty projection ------------------------
@pytest.mark.parametrize("stream", ["empty", "recreated"])
async def test_rebuild_refuses_an_empty_or_recreated_stream_unless_allowed(env: Env, stream: str) -> None:
    settings = env.settings(IndicatorsSettings)
    await fill(settings, list(history(30)))
    await run_rebuild(settings)
    before = await snapshot(settings)
    assert len(before["processed"]) == 30

    await recreate_stream(settings)
    newer = history(5, seed=500) if stream == "recreated" else []
    await fill(settings, list(newer))
    message = r"empty but the live projection has applied 30 events" if stream == "empty" else (
        r"30 of the 30 events applied to the live projection are not in the stream")
    with pytest.raises(RebuildRefused, match=message + r".*--allow-empty"):
        await run_rebuild(settings)
    assert await snapshot(settings) == before
    assert not await aside_exists(settings)

    stats = await run_rebuild(settings, allow_empty=True)
    assert stats.read == len(newer)
    assert (await snapshot(settings))["processed"] == {e.id for e in newer}


async def test_readers_never_see_a_half_swapped_projection(env: Env) -> None:
    settings = env.settings(IndicatorsSettings)
    await fill(settings, list(history(60)))
    await run_rebuild(settings)
    before = len((await snapshot(settings))["persons"])
    await recreate_stream(settings)
    await fill(settings, list(history(20, seed=300)))
    engine = create_engine(settings)
    seen: set[int] = set()
    done = asyncio.Event()

    async def read_counts() -> None:
        while not done.is_set():
            async with engine.connect() as conn:
                seen.add((await conn.execute(select(func.count()).select_from(Person))).scalar_one())
            await asyncio.sleep(0)

    reader = asyncio.create_task(read_counts())
    try:
        await run_rebuild(settings, allow_empty=True)
    finally:
        done.set()
        await reader
        await engine.dispose()
    after = len((await snapshot(settings))["persons"])
    assert before != after
    assert seen <= {before, after}, seen  # never an empty or partly filled table in between


async def test_rebuild_of_a_purged_stream_head_is_refused(env: Env) -> None:
    """Events the live projection holds that the stream no longer has: refused, even though it is not empty."""
    settings = env.settings(IndicatorsSettings)
    await fill(settings, list(history(30)))
    await run_rebuild(settings)
    nc = await nats.connect(settings.nats_url)
    try:
        await nc.jetstream().purge_stream(settings.nats_stream, keep=10)
    finally:
        await nc.close()
    with pytest.raises(RebuildRefused, match="20 of the 30 events"):
        await run_rebuild(settings)
    assert len((await snapshot(settings))["processed"]) == 30


async def test_a_second_rebuild_at_the_same_time_is_refused(env: Env) -> None:
    """Two rebuilds would share the aside: the second stops at once and touches nothing."""
    settings = env.settings(IndicatorsSettings)
    await fill(settings, list(history(10)))
    async with rebuild_lock(settings):  # as a running rebuild holds it
        with pytest.raises(RebuildBusy, match="another rebuild"):
            await run_rebuild(settings)
    assert (await run_rebuild(settings)).read == 10


# -- (d) rebuild equals live, with the live consumer running and events arriving -------------------
async def test_rebuild_while_live_consumer_runs_equals_live_and_in_order_truth(env: Env) -> None:
    settings = env.settings(IndicatorsSettings, rebuild_batch_size=20)
    app = create_indicators(settings)
    events = history(400)
    async with running(app):
        await app.state.bus.wait_ready(10)
        await fill(settings, events[:150])
        stop = asyncio.Event()
        arriving = iter(events[150:370])

        async def keep_publishing() -> int:
            nc = await nats.connect(settings.nats_url)
            sent = 0
            try:
                js = nc.jetstream()
                for event in arriving:
                    if stop.is_set():
                        break
                    await js.publish(subject(settings, event), event.model_dump_json().encode(),
                                     headers={"Nats-Msg-Id": event.id})
                    sent += 1
                    await asyncio.sleep(0.01)  # paced, so that some arrive while the rebuild runs
            finally:
                await nc.close()
            return sent

        publisher = asyncio.create_task(keep_publishing())
        stats = await run_rebuild(settings)
        stop.set()
        sent = await publisher
        assert stats.caught_up > 0  # events that arrived while it ran are in the swapped-in projection
        await fill(settings, events[370:])  # and the live consumer applies newer ones on top

        total = 150 + sent + 30

        async def caught_up() -> bool:
            async with app.state.sessionmaker() as session:
                return (await session.execute(select(func.count()).select_from(ProcessedEvent))).scalar_one() == total

        await eventually(caught_up, timeout=60)
        live = await snapshot(settings)

    fresh_settings = env.settings(IndicatorsSettings, name="indicators_fresh")
    await run_rebuild(fresh_settings)
    fresh = await snapshot(fresh_settings)
    truth = await in_order_truth(env.settings(IndicatorsSettings, name="indicators_truth"), settings)
    assert len(live["processed"]) == total and not live["dead_letters"]
    assert live == fresh == truth
    assert any(p["merged_into_id"] for p in live["persons"].values())
    assert any(p["revision"] > 1 for p in live["persons"].values())


# -- (e) the command: progress lines and exit codes --------------------------------------------------
def cli_env(settings: IndicatorsSettings, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CRP_")}
    env.update(CRP_NATS_URL=settings.nats_url, CRP_NATS_STREAM=settings.nats_stream,
               CRP_SUBJECT_PREFIX=settings.subject_prefix, CRP_DATABASE_URL=settings.database_url or "", **extra)
    if settings.database_schema:
        env["CRP_DATABASE_SCHEMA"] = settings.database_schema
    return env


async def crp_rebuild(settings: IndicatorsSettings, *args: str, **extra: str) -> subprocess.CompletedProcess[str]:
    return await asyncio.to_thread(
        subprocess.run, [sys.executable, "-m", "services.cli", "indicators", "rebuild", *args],
        env=cli_env(settings, **extra), capture_output=True, text=True, timeout=90)


async def test_cli_rebuild_prints_progress_and_exit_codes(env: Env) -> None:
    settings = env.settings(IndicatorsSettings)
    events = history(120)
    await fill(settings, [*events[:60], b"{not an envelope", *events[60:]])

    result = await crp_rebuild(settings, CRP_REBUILD_BATCH_SIZE="25")
    assert result.returncode == 0, result.stderr
    lines = result.stderr.splitlines()
    assert "rebuild: reading stream sequences 1..121 into a projection aside" in lines
    assert any(line.startswith("rebuild: reading sequence 121 of 121 (100.0%), ") and "events/s" in line
               for line in lines), lines
    assert any(line.startswith("rebuild: done: 120 events applied, 1 dead letters, 0 duplicates, up to stream "
                               "sequence 121") for line in lines), lines
    assert "projection rebuilt from 121 events (1 dead letters) up to stream sequence 121" in result.stdout

    await recreate_stream(settings)
    refused = await crp_rebuild(settings)
    assert refused.returncode == 3, refused.stderr
    assert "empty but the live projection has applied 120 events" in refused.stderr
    assert "--allow-empty" in refused.stderr
    assert len((await snapshot(settings))["processed"]) == 120

    allowed = await crp_rebuild(settings, "--allow-empty")
    assert allowed.returncode == 0, allowed.stderr
    assert (await snapshot(settings))["processed"] == set()


async def test_cli_rebuild_with_nats_stalled_exits_4(env: Env, own_nats: NatsProcess) -> None:
    settings = env.settings(IndicatorsSettings, nats_url=own_nats.url)
    await fill(settings, list(history(20)))
    os.kill(own_nats.proc.pid, signal.SIGSTOP)
    try:
        result = await crp_rebuild(settings, CRP_REBUILD_STALL_SECONDS="2")
    finally:
        os.kill(own_nats.proc.pid, signal.SIGCONT)
    assert result.returncode == 4, result.stderr
    assert "indicators rebuild failed: NATS did not answer within 2s" in result.stderr
    assert not await aside_exists(settings)


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)  # the database is replaced by an unreachable one
async def test_cli_rebuild_with_the_database_unreachable_exits_4(env: Env) -> None:
    settings = env.settings(IndicatorsSettings, database_url="postgresql://postgres@127.0.0.1:1/nowhere",
                            database_schema="indicators")
    await fill(settings, list(history(5)))
    result = await crp_rebuild(settings)
    assert result.returncode == 4, result.stderr
    assert "indicators rebuild failed:" in result.stderr and "nothing was replaced" in result.stderr
    assert "Traceback" not in result.stderr
