"""The path every figure depends on: outbox → JetStream → idempotent consumer → projection.

Real NATS JetStream and real databases (SQLite, and PostgreSQL when CRP_TEST_POSTGRES_URL is set).
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import uuid
from typing import Any

import nats
import pytest
from sqlalchemy import func, select, update

from services.beneficiaries.app import create_app as create_beneficiaries
from services.beneficiaries.config import BeneficiariesSettings
from services.indicators.app import create_app as create_indicators
from services.indicators.config import IndicatorsSettings
from services.indicators.models import Person
from shared.bus import Bus
from shared.consumer import DeadLetter, ProcessedEvent
from shared.db import create_engine, create_sessionmaker
from shared.events import CloudEvent
from shared.events.beneficiaries import BeneficiaryRegistered, CommunityCreated
from shared.outbox import OutboxMessage
from tests.conftest import Env, NatsProcess, eventually, running

MANAGER = ("programme_manager",)


async def stream_events(nats_url: str, stream: str) -> list[dict[str, Any]]:
    """Every message in the stream, decoded."""
    nc = await nats.connect(nats_url)
    try:
        js = nc.jetstream()
        info = await js.stream_info(stream)
        out = []
        for seq in range(info.state.first_seq, info.state.last_seq + 1):
            if info.state.messages == 0:
                break
            msg = await js.get_msg(stream, seq)
            out.append(json.loads(msg.data))
        return out
    finally:
        await nc.close()


def person_payload(community_id: str, i: int, **extra: Any) -> dict[str, Any]:
    # Distinct people: different fathers and birth years, so no duplicate check fires.
    return {
        "first_name": f"Person{i}", "father_name": f"Father{i}", "grandfather_name": f"Grand{i}",
        "sex": "female" if i % 2 else "male", "date_of_birth": f"{1950 + i % 50}-0{1 + i % 9}-1{i % 9}",
        "displacement_status": ("idp", "returnee", "host_community")[i % 3], "community_id": community_id,
        "consent": {"given": True, "obtained_on": "2026-01-10"}, **extra,
    }


async def make_community(client: Any, env: Env) -> str:
    resp = await client.post("/api/v1/communities", json={"name": "Al-Mosul Old City",
                                                          "district_pcode": "IQG15Q05"},
                             headers=env.token(*MANAGER))
    assert resp.status_code == 201, resp.text
    return resp.json()["id"]


async def test_rolled_back_transaction_publishes_nothing(env: Env) -> None:
    app = create_beneficiaries(env.settings(BeneficiariesSettings))
    async with running(app):
        await app.state.bus.wait_ready(10)  # the stream exists before it is read (the bus connects in background)
        outbox, sessionmaker = app.state.outbox, app.state.sessionmaker
        event = CommunityCreated(community_id=str(uuid.uuid4()), district_pcode="IQG15Q05",
                                 governorate_pcode="IQG15")
        async with sessionmaker() as session:
            rolled_back = outbox.emit(session, event)
            await session.flush()
            await session.rollback()
        async with sessionmaker() as session:
            committed = outbox.emit(session, event)
            await session.commit()
        outbox.wakeup.set()
        events = await eventually(lambda: stream_events(env.nats_url, env.stream))
        await asyncio.sleep(0.3)  # a late publish of the rolled-back row would show now
        ids = [e["id"] for e in await stream_events(env.nats_url, env.stream)]
        assert ids == [committed.id]
        assert rolled_back.id not in ids
        assert events[0]["type"] == "crp.beneficiaries.community.created.v1"


async def test_commit_while_nats_down_is_published_when_it_returns(env: Env, own_nats: NatsProcess) -> None:
    app = create_beneficiaries(env.settings(BeneficiariesSettings, nats_url=own_nats.url))
    async with running(app) as client:
        await eventually(lambda: app.state.bus.connected)
        own_nats.stop()
        await eventually(lambda: not app.state.bus.connected)
        community_id = await make_community(client, env)  # the write succeeds with NATS down
        resp = await client.post("/api/v1/beneficiaries", json=person_payload(community_id, 1),
                                 headers=env.token(*MANAGER))
        assert resp.status_code == 201, resp.text
        await asyncio.sleep(1.0)  # the relay is failing and backing off meanwhile
        async with app.state.sessionmaker() as session:
            pending = (await session.execute(select(func.count()).select_from(OutboxMessage)
                                             .where(OutboxMessage.published_at.is_(None)))).scalar_one()
        assert pending == 2
        own_nats.start()
        events = await eventually(
            lambda: _when(stream_events(own_nats.url, env.stream), lambda ev: len(ev) == 2), timeout=20)
        assert [e["type"].split(".")[2:4] for e in events] == [["community", "created"],
                                                               ["beneficiary", "registered"]]
        assert events[1]["data"]["beneficiary_id"] == resp.json()["id"]


async def _when(coro: Any, predicate: Any) -> Any:
    value = await coro
    return value if predicate(value) else None


async def test_relay_sending_a_row_twice_leaves_one_copy(env: Env) -> None:
    app = create_beneficiaries(env.settings(BeneficiariesSettings))
    async with running(app) as client:
        await make_community(client, env)
        await eventually(lambda: stream_events(env.nats_url, env.stream))
        # As if the relay crashed after publishing but before marking the row sent.
        async with app.state.sessionmaker() as session, session.begin():
            await session.execute(update(OutboxMessage).values(published_at=None))
        app.state.outbox.wakeup.set()

        async def republished() -> bool:
            async with app.state.sessionmaker() as session:
                row = (await session.execute(select(OutboxMessage))).scalars().one()
                return row.published_at is not None

        await eventually(republished)
        events = await stream_events(env.nats_url, env.stream)
        assert len(events) == 1


def registered_event(beneficiary_id: str | None = None, revision: int = 1, **overrides: Any) -> CloudEvent:
    data = dict(beneficiary_id=beneficiary_id or str(uuid.uuid4()), revision=revision, sex="female",
                birth_year=1990, displacement_status="idp", community_id=str(uuid.uuid4()), district_pcode="IQG15Q05",
                governorate_pcode="IQG15", has_disability=False, registered_at="2026-11-01T10:00:00Z")
    data.update(overrides)
    return CloudEvent.wrap(BeneficiaryRegistered(**data), source="/crp/beneficiaries")


async def publish_raw(nats_url: str, subject: str, event: CloudEvent, msg_id: str | None = None) -> None:
    nc = await nats.connect(nats_url)
    try:
        await nc.jetstream().publish(subject, event.model_dump_json().encode(),
                                     headers={"Nats-Msg-Id": msg_id or str(uuid.uuid4())})
    finally:
        await nc.close()


async def summary(client: Any, env: Env) -> dict[str, Any]:
    resp = await client.get("/api/v1/indicators/summary", headers=env.token("me_officer"))
    assert resp.status_code == 200, resp.text
    return resp.json()


async def test_same_event_delivered_twice_counts_once(env: Env) -> None:
    app = create_indicators(env.settings(IndicatorsSettings))
    async with running(app) as client:
        await app.state.bus.wait_ready(10)
        event = registered_event()
        subject = BeneficiaryRegistered.subject(env.prefix)
        # Two different message ids, so JetStream's duplicate window does not hide the second copy.
        await publish_raw(env.nats_url, subject, event)
        await publish_raw(env.nats_url, subject, event)
        marker = registered_event()
        await publish_raw(env.nats_url, subject, marker)  # applied after both copies
        async def marker_applied() -> bool:
            async with app.state.sessionmaker() as session:
                return await session.get(ProcessedEvent, marker.id) is not None

        await eventually(marker_applied)
        figures = await summary(client, env)
        assert figures["beneficiaries_registered"] == 2
        async with app.state.sessionmaker() as session:
            processed = (await session.execute(select(func.count()).select_from(ProcessedEvent))).scalar_one()
        assert processed == 2


async def test_poison_event_goes_to_dead_letters_and_can_be_replayed(env: Env) -> None:
    app = create_indicators(env.settings(IndicatorsSettings, consumer_max_attempts=2))
    admin = env.token("admin")
    async with running(app) as client:
        await app.state.bus.wait_ready(10)
        broken = registered_event()
        broken.data.pop("sex")  # a payload the projection cannot apply
        await publish_raw(env.nats_url, BeneficiaryRegistered.subject(env.prefix), broken)

        async def dead_letters() -> list[dict[str, Any]]:
            resp = await client.get("/api/v1/indicators/dead-letters", headers=admin)
            assert resp.status_code == 200
            return resp.json()

        letters = await eventually(dead_letters, timeout=20)
        assert letters[0]["event_id"] == broken.id and letters[0]["deliveries"] == 2
        resp = await client.post(f"/api/v1/indicators/dead-letters/{letters[0]['id']}/replay", headers=admin)
        assert resp.status_code == 422  # still broken: kept for inspection
        assert resp.headers["content-type"] == "application/problem+json"
        assert len(await dead_letters()) == 1
        forbidden = await client.get("/api/v1/indicators/dead-letters", headers=env.token("me_officer"))
        assert forbidden.status_code == 403

        # A dead letter whose cause has gone (e.g. a transient failure) replays into the projection.
        good = registered_event()
        async with app.state.sessionmaker() as session, session.begin():
            session.add(DeadLetter(event_id=good.id, subject="x", payload=good.model_dump_json(),
                                   error="OperationalError: database is locked", deliveries=5))
        letters = await dead_letters()
        resp = await client.post(f"/api/v1/indicators/dead-letters/{letters[-1]['id']}/replay", headers=admin)
        assert resp.status_code == 200 and resp.json() == {"applied": True}
        assert len(await dead_letters()) == 1
        assert (await summary(client, env))["beneficiaries_registered"] == 1


async def test_nats_restart_mid_stream_loses_nothing(env: Env, own_nats: NatsProcess) -> None:
    ben = create_beneficiaries(env.settings(BeneficiariesSettings, nats_url=own_nats.url))
    # A batch fetched just before NATS stops comes back only after the ack wait: keep it short here.
    ind = create_indicators(env.settings(IndicatorsSettings, nats_url=own_nats.url, consumer_ack_wait_seconds=3))
    writes = 30
    async with running(ben) as bclient, running(ind) as iclient:
        await eventually(lambda: ben.state.bus.connected and ind.state.bus.connected)
        community_id = await make_community(bclient, env)
        headers = env.token(*MANAGER)
        ids = []
        for i in range(writes):
            if i == writes // 3:
                own_nats.stop()
            if i == 2 * writes // 3:
                own_nats.start()
            resp = await bclient.post("/api/v1/beneficiaries", json=person_payload(community_id, i),
                                      headers=headers)
            assert resp.status_code == 201, resp.text
            ids.append(resp.json()["id"])
            await asyncio.sleep(0.02)

        async def all_counted() -> bool:
            return (await summary(iclient, env))["beneficiaries_registered"] == writes

        await eventually(all_counted, timeout=30)
        events = await stream_events(own_nats.url, env.stream)
        registered = [e["data"]["beneficiary_id"] for e in events if e["type"].endswith("registered.v1")]
        assert sorted(registered) == sorted(ids)  # each exactly once, none lost


async def test_rebuild_equals_live_projection(env: Env) -> None:
    ben = create_beneficiaries(env.settings(BeneficiariesSettings))
    ind = create_indicators(env.settings(IndicatorsSettings))
    headers = env.token(*MANAGER)
    async with running(ben) as bclient, running(ind) as iclient:
        community_id = await make_community(bclient, env)
        ids = []
        for i in range(8):
            resp = await bclient.post("/api/v1/beneficiaries", json=person_payload(community_id, i), headers=headers)
            assert resp.status_code == 201
            ids.append(resp.json()["id"])
        got = await bclient.get(f"/api/v1/beneficiaries/{ids[0]}", headers=headers)
        resp = await bclient.patch(f"/api/v1/beneficiaries/{ids[0]}", json={"displacement_status": "returnee"},
                                   headers={**headers, "If-Match": got.headers["etag"]})
        assert resp.status_code == 200, resp.text
        resp = await bclient.post(f"/api/v1/beneficiaries/{ids[1]}/merge", json={"duplicate_id": ids[2]},
                                  headers=headers)
        assert resp.status_code == 200, resp.text

        async def settled() -> bool:
            return (await summary(iclient, env))["beneficiaries_registered"] == 7
        await eventually(settled)
        await asyncio.sleep(0.3)
        live = await _persons(ind.state.sessionmaker)

    # `crp indicators rebuild` into a fresh database must give the same projection.
    fresh = env.settings(IndicatorsSettings, name="indicators_rebuilt")
    cli_env = {**{k: v for k, v in os.environ.items() if not k.startswith("CRP_")},
               "CRP_NATS_URL": fresh.nats_url, "CRP_NATS_STREAM": fresh.nats_stream,
               "CRP_SUBJECT_PREFIX": fresh.subject_prefix, "CRP_DATABASE_URL": fresh.database_url or ""}
    if fresh.database_schema:
        cli_env["CRP_DATABASE_SCHEMA"] = fresh.database_schema
    result = await asyncio.to_thread(
        subprocess.run, [sys.executable, "-m", "services.cli", "indicators", "rebuild"], env=cli_env,
        capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "projection rebuilt from 11 events" in result.stdout  # community, 8 registrations, update, merge
    engine = create_engine(fresh)
    try:
        rebuilt = await _persons(create_sessionmaker(engine))
    finally:
        await engine.dispose()
    assert rebuilt == live
    assert live[ids[0]]["displacement_status"] == "returnee"
    assert live[ids[2]]["merged_into_id"] == ids[1]


async def _persons(sessionmaker: Any) -> dict[str, dict[str, Any]]:
    async with sessionmaker() as session:
        rows = (await session.execute(select(Person))).scalars().all()
        return {p.beneficiary_id: p.model_dump() for p in rows}


def test_event_payloads_carry_no_personal_data() -> None:
    """Payload models forbid unknown fields, so a name or phone cannot ride along."""
    import pydantic

    event = registered_event()
    with pytest.raises(pydantic.ValidationError):
        BeneficiaryRegistered(**{**event.data, "first_name": "Ahmed"})
    fields = set(BeneficiaryRegistered.model_fields)
    assert not fields & {"first_name", "father_name", "phone", "national_id", "name", "contact"}


@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)  # SQLite runs one relay per service
async def test_two_relays_on_postgresql_never_send_the_same_row(env: Env) -> None:
    """FOR UPDATE SKIP LOCKED: replicas share the outbox without publishing a row twice."""
    from services.beneficiaries.app import service
    from shared.outbox import Outbox, OutboxRelay

    settings = env.settings(BeneficiariesSettings)
    engine = create_engine(settings)
    await service.migrate(engine, settings)
    sessionmaker = create_sessionmaker(engine)
    async with sessionmaker() as session:
        outbox = Outbox(settings)
        for _ in range(300):
            outbox.emit(session, CommunityCreated(community_id=str(uuid.uuid4()), district_pcode="IQG15Q05",
                                                  governorate_pcode="IQG15"))
        await session.commit()
    buses = [Bus(settings, name=f"relay-{i}") for i in range(2)]
    sent = [0, 0]
    try:
        for bus in buses:
            bus.start()
            await bus.wait_ready(10)
        relays = [OutboxRelay(settings, sessionmaker, bus, Outbox(settings), batch_size=40) for bus in buses]
        while True:
            counts = await asyncio.gather(*(r.publish_batch() for r in relays))
            sent = [a + b for a, b in zip(sent, counts, strict=True)]
            if sum(counts) == 0:
                break
    finally:
        for bus in buses:
            await bus.close()
        await engine.dispose()
    assert sum(sent) == 300  # every row exactly once across both relays
    assert sent[0] > 0 and sent[1] > 0  # and both did work
    assert len(await stream_events(env.nats_url, env.stream)) == 300


async def test_housekeeping_keeps_unpublished_rows_and_recent_keys(env: Env) -> None:
    from datetime import timedelta

    from services.beneficiaries.app import service
    from shared.db import utcnow
    from shared.housekeeping import purge
    from shared.idempotency import IdempotencyRecord

    settings = env.settings(BeneficiariesSettings)
    engine = create_engine(settings)
    try:
        await service.migrate(engine, settings)
        sessionmaker = create_sessionmaker(engine)
        old, recent = utcnow() - timedelta(days=30), utcnow() - timedelta(hours=1)
        async with sessionmaker() as session, session.begin():
            for name, published in (("old-sent", old), ("recent-sent", recent), ("never-sent", None)):
                session.add(OutboxMessage(event_id=str(uuid.uuid4()), subject=name, payload=b"{}",
                                          created_at=old, published_at=published))
            for key, created in (("old", old), ("recent", recent)):
                session.add(IdempotencyRecord(principal="p", key=key, method="POST", path="/x", request_hash="h",
                                              status_code=201, body="{}", headers="{}", created_at=created))
        async with sessionmaker() as session, session.begin():
            assert await purge(session, settings) == (1, 1)
        async with sessionmaker() as session:
            subjects = set((await session.execute(select(OutboxMessage.subject))).scalars())
            keys = set((await session.execute(select(IdempotencyRecord.key))).scalars())
    finally:
        await engine.dispose()
    assert subjects == {"recent-sent", "never-sent"}  # an unpublished row is never purged, however old
    assert keys == {"recent"}
