"""The consumer's policy under failure: outages never count, poisons become one dead letter, unknown
types wait for a version that handles them, extra fields are ignored.

Real NATS JetStream and real databases. A PostgreSQL outage is a cut in a loopback TCP proxy between
the indicators service and the server; SQLite has no connection to cut, so its outage is injected where
the driver meets the database file (every statement fails as an unreachable disk would).
"""

from __future__ import annotations

import asyncio
import sqlite3
import uuid
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import nats
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from sqlalchemy import event as sa_event
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from services.cli import free_port
from services.indicators.app import create_app as create_indicators
from services.indicators.app import service
from services.indicators.config import IndicatorsSettings
from services.indicators.projection import HANDLERS
from shared.bus import Bus, stream_config
from shared.consumer import UNAVAILABLE, DeadLetter, EventApplier, EventConsumer, ParkedEvent, ProcessedEvent
from shared.db import create_engine, create_sessionmaker
from shared.events import CloudEvent
from shared.events.beneficiaries import BeneficiaryRegistered, CommunityCreated
from tests.conftest import POSTGRES_URL, Env, eventually, running
from tests.pipeline.test_outbox_consumer import publish_raw, registered_event, summary


class TcpProxy:
    """A loopback TCP proxy in front of PostgreSQL: ``cut`` closes every connection and refuses new ones."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.listen_port = free_port()
        self.server: asyncio.Server | None = None
        self.transports: set[asyncio.BaseTransport] = set()

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", self.listen_port)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(self.host, self.port)
        except OSError:
            writer.transport.abort()
            return
        self.transports |= {writer.transport, up_writer.transport}
        await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer), return_exceptions=True)

    @staticmethod
    async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        finally:
            writer.transport.abort()

    async def cut(self) -> None:
        assert self.server is not None
        self.server.close()
        for transport in self.transports:
            transport.abort()
        self.transports.clear()
        await self.server.wait_closed()

    async def restore(self) -> None:
        await self.start()


class DatabaseOutage:
    """Makes the indicators database unreachable on demand, on either backend.

    ``only`` limits a SQLite-style injected outage to statements containing that text (e.g. the
    dead-letter insert); without it every statement fails, and on PostgreSQL the TCP proxy is cut.
    """

    def __init__(self, env: Env, only: str | None = None) -> None:
        self.env = env
        self.only = only
        self.down = False
        self.proxy: TcpProxy | None = None
        if env.backend == "postgresql" and only is None:
            assert POSTGRES_URL
            url = urlsplit(POSTGRES_URL)
            self.proxy = TcpProxy(url.hostname or "127.0.0.1", url.port or 5432)

    async def __aenter__(self) -> DatabaseOutage:
        if self.proxy is not None:
            await self.proxy.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self.proxy is not None and self.proxy.server is not None:
            await self.proxy.cut()

    def settings_overrides(self) -> dict[str, Any]:
        if self.proxy is None:
            return {}
        url = urlsplit(POSTGRES_URL or "")
        user = f"{url.username}@" if url.username else ""
        return {"database_url": urlunsplit(url._replace(netloc=f"{user}127.0.0.1:{self.proxy.listen_port}"))}

    def attach(self, engine: AsyncEngine) -> None:
        if self.proxy is not None:
            return
        error: Exception = (sqlite3.OperationalError("disk I/O error") if self.env.backend == "sqlite"
                            else ConnectionResetError(104, "Connection reset by peer"))

        @sa_event.listens_for(engine.sync_engine, "before_cursor_execute")
        def _unreachable(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
            if self.down and (self.only is None or self.only in statement):
                raise error

    async def cut(self) -> None:
        self.down = True
        if self.proxy is not None:
            await self.proxy.cut()

    async def restore(self) -> None:
        self.down = False
        if self.proxy is not None:
            await self.proxy.restore()


def unavailable_count() -> float:
    return UNAVAILABLE.labels("indicators")._value.get()


async def consumer_info(env: Env, durable: str = "indicators") -> Any:
    nc = await nats.connect(env.nats_url)
    try:
        return await nc.jetstream().consumer_info(env.stream, durable)
    finally:
        await nc.close()


async def create_old_durable(settings: IndicatorsSettings) -> None:
    """The durable consumer as the previous version made it: JetStream gave up after max_deliver."""
    nc = await nats.connect(settings.nats_url)
    try:
        js = nc.jetstream()
        await js.add_stream(stream_config(settings))
        await js.add_consumer(settings.nats_stream, ConsumerConfig(
            durable_name="indicators", name="indicators",
            filter_subject=f"{settings.subject_prefix}.>", ack_policy=AckPolicy.EXPLICIT, max_deliver=2,
            ack_wait=30, deliver_policy=DeliverPolicy.ALL, max_ack_pending=10_000))
    finally:
        await nc.close()


async def count(sessionmaker: Any, model: Any) -> int:
    async with sessionmaker() as session:
        return (await session.execute(select(func.count()).select_from(model))).scalar_one()


async def applied(sessionmaker: Any, ids: list[str]) -> bool:
    async with sessionmaker() as session:
        found = (await session.execute(select(ProcessedEvent.event_id)
                                       .where(ProcessedEvent.event_id.in_(ids)))).scalars().all()  # type: ignore[attr-defined]
    return len(found) == len(ids)


async def test_database_outage_longer_than_the_old_backoff_loses_no_event(env: Env) -> None:
    """The old consumer used up max_deliver=2 within ~1 s of nak back-off, failed to write the dead letter
    to the same dead database and left the message neither acked nor terminated: gone. Now the outage
    (longer than that back-off and than ack_wait) counts for nothing and every event is applied."""
    async with DatabaseOutage(env) as outage:
        settings = env.settings(IndicatorsSettings, consumer_max_attempts=2, consumer_ack_wait_seconds=2,
                                **outage.settings_overrides())
        await create_old_durable(settings)
        app = create_indicators(settings)
        async with running(app) as client:
            await app.state.bus.wait_ready(10)
            outage.attach(app.state.engine)
            subject = BeneficiaryRegistered.subject(env.prefix)
            first = registered_event()
            await publish_raw(env.nats_url, subject, first)
            await eventually(lambda: applied(app.state.sessionmaker, [first.id]))

            before = unavailable_count()
            await outage.cut()
            during = [registered_event() for _ in range(5)]
            for event in during:
                await publish_raw(env.nats_url, subject, event)
            await eventually(lambda: unavailable_count() > before)  # the consumer is failing against it
            await asyncio.sleep(5)  # well past the old back-off (1 s) and ack_wait (2 s)
            await outage.restore()

            ids = [first.id, *(e.id for e in during)]
            await eventually(lambda: applied(app.state.sessionmaker, ids), timeout=30)
            assert (await summary(client, env))["beneficiaries_registered"] == 6
            assert await count(app.state.sessionmaker, DeadLetter) == 0
            info = await consumer_info(env)
            assert info.config.max_deliver == -1  # the durable made with max_deliver=2 was updated
            await eventually(lambda: _settled(env))


async def _settled(env: Env) -> bool:
    info = await consumer_info(env)
    return info.num_ack_pending == 0 and info.num_pending == 0


async def test_poison_event_becomes_one_dead_letter_after_the_attempts_and_the_consumer_moves_on(env: Env) -> None:
    app = create_indicators(env.settings(IndicatorsSettings, consumer_max_attempts=3))
    async with running(app) as client:
        await app.state.bus.wait_ready(10)
        subject = BeneficiaryRegistered.subject(env.prefix)
        broken = registered_event()
        broken.data.pop("sex")  # the handler raises on a healthy database
        after = registered_event()
        await publish_raw(env.nats_url, subject, broken)
        nc = await nats.connect(env.nats_url)
        try:  # not even an envelope: no attempt can fix it
            await nc.jetstream().publish(subject, b'{"specversion": "1.0", "id": 7')
        finally:
            await nc.close()
        await publish_raw(env.nats_url, subject, after)

        await eventually(lambda: applied(app.state.sessionmaker, [after.id]))
        await eventually(lambda: _settled(env))  # the poisons were terminated, not left pending
        async with app.state.sessionmaker() as session:
            letters = (await session.execute(select(DeadLetter).order_by(DeadLetter.id))).scalars().all()
        assert [(d.event_id, d.deliveries) for d in letters] == [(broken.id, 3), (None, 1)]
        assert (await summary(client, env))["beneficiaries_registered"] == 1
        info = await consumer_info(env)
        assert info.num_redelivered == 0  # attempts are the consumer's, not JetStream redeliveries


async def test_dead_letter_write_during_an_outage_waits_and_is_written_once(env: Env) -> None:
    app = create_indicators(env.settings(IndicatorsSettings, consumer_max_attempts=2))
    outage = DatabaseOutage(env, only="INSERT INTO dead_letters")
    async with running(app):
        await app.state.bus.wait_ready(10)
        outage.attach(app.state.engine)
        await outage.cut()
        before = unavailable_count()
        broken = registered_event()
        broken.data.pop("sex")
        after = registered_event()
        await publish_raw(env.nats_url, BeneficiaryRegistered.subject(env.prefix), broken)
        await publish_raw(env.nats_url, BeneficiaryRegistered.subject(env.prefix), after)

        await eventually(lambda: unavailable_count() > before + 1)  # the dead-letter write failed, twice
        info = await consumer_info(env)
        assert info.num_ack_pending >= 1  # held: neither acked nor terminated without its dead letter
        assert await count(app.state.sessionmaker, DeadLetter) == 0
        await outage.restore()

        await eventually(lambda: applied(app.state.sessionmaker, [after.id]), timeout=20)
        await eventually(lambda: _settled(env))
        async with app.state.sessionmaker() as session:
            letters = (await session.execute(select(DeadLetter))).scalars().all()
        assert [(d.event_id, d.deliveries) for d in letters] == [(broken.id, 2)]


async def test_unknown_event_type_is_parked_and_counted_once_a_version_that_handles_it_runs(env: Env) -> None:
    settings = env.settings(IndicatorsSettings)
    registered_type = BeneficiaryRegistered.event_type()
    community = CloudEvent.wrap(CommunityCreated(community_id=str(uuid.uuid4()), district_pcode="IQG15Q05",
                                                 governorate_pcode="IQG15"), source="/crp/beneficiaries")
    people = [registered_event() for _ in range(3)]
    subject = BeneficiaryRegistered.subject(env.prefix)

    # An older indicators version: the same shared machinery, without a handler for registrations.
    engine = create_engine(settings)
    bus = Bus(settings, name="older-indicators")
    older = EventConsumer(settings, create_sessionmaker(engine), bus,
                          EventApplier("indicators", {t: h for t, h in HANDLERS.items() if t != registered_type}),
                          durable="indicators")  # the real app's durable (its service name)
    try:
        await service.migrate(engine, settings)
        bus.start()
        await bus.wait_ready(10)
        older.start()
        for event in people:
            await publish_raw(env.nats_url, subject, event)
        await publish_raw(env.nats_url, subject, people[0])  # a redelivery: another message, the same event
        await publish_raw(env.nats_url, CommunityCreated.subject(env.prefix), community)
        await eventually(lambda: applied(older.sessionmaker, [community.id]))
        await eventually(lambda: _settled(env))  # acked, not left to JetStream
        async with older.sessionmaker() as session:
            parked = (await session.execute(select(ParkedEvent.event_id, ParkedEvent.event_type))).all()
        assert sorted(parked) == sorted((e.id, registered_type) for e in people)  # each once
        assert await count(older.sessionmaker, ProcessedEvent) == 1
    finally:
        await older.stop()
        await bus.close()
        await engine.dispose()

    # The newer version starts: no manual step, each parked event counts once.
    app = create_indicators(settings)
    async with running(app) as client:
        await eventually(lambda: applied(app.state.sessionmaker, [e.id for e in people]))
        assert (await summary(client, env))["beneficiaries_registered"] == 3
        assert await count(app.state.sessionmaker, ParkedEvent) == 0
        late = registered_event()
        await publish_raw(env.nats_url, subject, people[1])  # redelivered once more, after it was applied
        await publish_raw(env.nats_url, subject, late)
        await eventually(lambda: applied(app.state.sessionmaker, [late.id]))
        assert (await summary(client, env))["beneficiaries_registered"] == 4
        assert await count(app.state.sessionmaker, ParkedEvent) == 0


async def test_extra_payload_fields_and_envelope_attributes_are_applied_not_dead_lettered(env: Env) -> None:
    """A newer producer added fields: the live consumer (a tolerant reader) applies what it knows."""
    app = create_indicators(env.settings(IndicatorsSettings, consumer_max_attempts=1))
    async with running(app) as client:
        await app.state.bus.wait_ready(10)
        base = registered_event(sex="male", birth_year=1975)
        newer = CloudEvent.model_validate({
            **base.model_dump(mode="json"),
            "data": {**base.data, "vulnerability_score": 3, "household_role": "head", "tags": ["x"]},
            "traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "crpschemaminor": "3",
        })
        await publish_raw(env.nats_url, BeneficiaryRegistered.subject(env.prefix), newer)
        await eventually(lambda: applied(app.state.sessionmaker, [newer.id]))
        assert (await summary(client, env))["beneficiaries_registered"] == 1
        assert await count(app.state.sessionmaker, DeadLetter) == 0
        resp = await client.get("/api/v1/indicators/breakdown", headers=env.token("me_officer"),
                                params={"indicator": "beneficiaries_registered", "by": "sex"})
        assert resp.json()["items"] == [{"sex": "male", "value": 1}]

