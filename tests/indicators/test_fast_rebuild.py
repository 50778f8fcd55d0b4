"""The rebuild's in-memory replay (``services.indicators.replay``) gives exactly what the live handlers give.

Randomized histories of every producing service (registrations, updates, merges into merged records, consent
withdrawals and erasures, grants with reversals, trainings, infrastructure, feedback), some registrations never
sent, shuffled with redeliveries, with a poison, an invalid envelope and an event of a type no handler knows:
applied once through the live consumer's policy (``apply_or_dead_letter``, one event at a time) and once folded
by the replay and written in bulk, into fresh databases. Every projection table must be the same row by row,
and so must the consumer's own tables (events applied, parked, dead-lettered).
"""

from __future__ import annotations

import random
from typing import Any

from sqlalchemy import delete, select

from services.indicators.app import service
from services.indicators.config import IndicatorsSettings
from services.indicators.models import PROJECTION_TABLES
from services.indicators.projection import HANDLERS
from services.indicators.replay import IndicatorsReplay
from shared.consumer import DeadLetter, ParkedEvent, ProcessedEvent, apply_or_dead_letter
from shared.db import create_engine, create_sessionmaker
from shared.events import CloudEvent
from tests.conftest import Env
from tests.indicators.test_projection_order import SEQUENCE, Producers, _dump

HISTORIES = {"sqlite": 8, "postgresql": 3}
DISTRICTS = ("IQG15Q05", "IQG07Q01", "IQG01Q03")


def random_history(seed: int, steps: int = 120) -> list[CloudEvent]:
    p = Producers(seed)
    rng = p.rng
    places = [(p.community(d), d) for d in DISTRICTS for _ in range(2)]
    people: list[str] = []
    grants: list[str] = []
    made: list[dict[str, Any]] = []
    enrolments: list[str] = []
    projects: list[str] = []
    cases: list[str] = []
    centres: list[str] = []
    for _ in range(steps):
        roll = rng.random()
        if roll < 0.2 or len(people) < 3:
            people.append(p.register(*rng.choice(places)))
        elif roll < 0.3:
            community, district = rng.choice(places)
            p.update(rng.choice(people), **rng.choice([
                {"displacement_status": rng.choice(["idp", "returnee", "host_community"])},
                {"community_id": community, "district_pcode": district, "governorate_pcode": district[:5]},
                {"birth_year": rng.randint(1940, 2022)}, {"has_disability": rng.random() < 0.5}]))
        elif roll < 0.36:
            survivor, duplicate = rng.sample(people, 2)  # merged records too: chains and survivors merged later
            p.merge(survivor, duplicate)
        elif roll < 0.38:
            person = rng.choice(people)
            p.withdraw_consent(person) if rng.random() < 0.5 else p.erase(person)
        elif roll < 0.5:
            grant = p.apply_for_grant(rng.choice(people), rng.choice([None, "call-1"]))
            grants.append(grant)
            rng.choice([p.approve, p.reject, p.cancel])(grant)
        elif roll < 0.58 and grants:
            made.append(p.disburse(rng.choice(grants), f"{rng.randint(1, 9) * 100}.00", tranche=rng.randint(1, 3)))
        elif roll < 0.62 and made:
            p.reverse(rng.choice(made))
        elif roll < 0.64 and grants:
            p.monitor(rng.choice(grants), operating=rng.random() < 0.7)
        elif roll < 0.7:
            enrolments.append(p.enrol(rng.choice(people), *rng.choice(places),
                                      audience=rng.choice(["community_members", "local_authority_staff"])))
        elif roll < 0.76 and enrolments:
            enrolment = rng.choice(enrolments)
            rng.choice([p.complete, p.complete, p.drop, p.promote])(enrolment)
        elif roll < 0.78 and enrolments:
            p.follow_up(rng.choice(enrolments), rng.choice([3, 6]), rng.choice(["employed", "unemployed"]))
        elif roll < 0.84:
            if not projects or rng.random() < 0.4:
                projects.append(p.plan_project(*rng.choice(places), rng.choice(["water", "roads"]),
                                               rng.randint(100, 5000)))
            else:
                project = rng.choice(projects)
                status = p.snapshot[project]["status"]
                nxt = {"planned": "in_progress", "in_progress": "completed", "completed": "handed_over"}.get(status)
                if nxt:
                    p.move_project(project, nxt)
                else:
                    p.report_progress(project, rng.randint(0, 100))
        elif roll < 0.86:
            p.assess(*rng.choice(places))
        elif roll < 0.94:
            if not cases or rng.random() < 0.5:
                place = rng.choice([*places, (None, None)])
                cases.append(p.feedback(rng.choice(["sea", "appreciation", "information_request"]), *place))
            else:
                p.move(rng.choice(cases), rng.choice(["acknowledged", "resolved", "closed"]),
                       acknowledged=rng.random() < 0.5, resolved=rng.random() < 0.5)
        elif roll < 0.97:
            if not centres or rng.random() < 0.5:
                centres.append(p.centre(*rng.choice(places)))
            else:
                p.set_centre_active(rng.choice(centres), rng.random() < 0.5)
        else:
            p.activity(rng.choice(["reconciliation", "dialogue"]), *rng.choice(places), rng.randint(5, 50))
    events = p.events
    # Some registrations never arrive (the projection keeps placeholders); then any order, with redeliveries.
    events = [e for e in events if not (e.type.endswith("registered") and rng.random() < 0.05)]
    rng.shuffle(events)
    for event in rng.sample(events, k=len(events) // 5):
        events.insert(rng.randrange(len(events) + 1), event)
    return events


def messages(seed: int) -> list[tuple[str, bytes]]:
    """(subject, body) as the stream holds them: a random history, a poison and an invalid envelope (each twice),
    and an event of a type no handler knows."""
    rng = random.Random(seed)
    events = random_history(seed)
    bodies = [(e.type, e.model_dump_json().encode()) for e in events]
    poison = SEQUENCE[3].model_copy(update={"id": f"poison-{seed}", "data": {"beneficiary_id": 7}})
    unknown = SEQUENCE[3].model_copy(update={"id": f"unknown-{seed}", "type": "crp.future.thing.happened.v1"})
    for extra in ((poison.type, poison.model_dump_json().encode()), ("x", b"{not json"),
                  (poison.type, poison.model_dump_json().encode()), ("x", b"{not json"),
                  (unknown.type, unknown.model_dump_json().encode())):
        bodies.insert(rng.randrange(len(bodies) + 1), extra)
    return bodies


async def _consumer_tables(sessionmaker: Any) -> dict[str, Any]:
    async with sessionmaker() as session:
        return {
            "processed": sorted((await session.execute(select(ProcessedEvent.event_id, ProcessedEvent.event_type)))
                                .all()),
            "parked": sorted((await session.execute(select(ParkedEvent.event_id, ParkedEvent.event_type,
                                                           ParkedEvent.payload))).all()),
            "dead": sorted((d.event_id or "", d.subject, d.payload, d.error, d.deliveries)
                           for d in (await session.execute(select(DeadLetter))).scalars()),
        }


async def _reset(sessionmaker: Any) -> None:
    async with sessionmaker() as session, session.begin():
        for table in (*PROJECTION_TABLES, ProcessedEvent, ParkedEvent, DeadLetter):
            await session.execute(delete(table))


async def test_replay_equals_the_live_handlers_row_by_row(env: Env) -> None:
    settings = env.settings(IndicatorsSettings)
    engine = create_engine(settings)
    try:
        await service.migrate(engine, settings)
        sessionmaker = create_sessionmaker(engine)
        applier = service.applier()
        for seed in range(HISTORIES[env.backend]):
            bodies = messages(seed)
            await _reset(sessionmaker)
            for subject, body in bodies:  # one transaction per event, as the live consumer does
                async with sessionmaker() as session, session.begin():
                    await apply_or_dead_letter(session, applier, subject=subject, payload=body, attempt=1,
                                               max_attempts=1)
            live, live_consumer = await _dump(sessionmaker), await _consumer_tables(sessionmaker)

            await _reset(sessionmaker)
            replay = IndicatorsReplay(HANDLERS)
            outcomes = [replay.fold(subject, body) for subject, body in bodies]
            async with engine.begin() as conn:
                await replay.write(conn)
            fast, fast_consumer = await _dump(sessionmaker), await _consumer_tables(sessionmaker)

            assert outcomes.count("dead") == 4 and len(fast_consumer["dead"]) == 2
            assert len(fast_consumer["parked"]) == 1
            assert live["reach"] and live["reach_residences"] and live["grant_disbursements"]
            assert sum(1 for p in live["persons"] if p["merged_into_id"]) >= 2
            for table in live:
                assert fast[table] == live[table], f"history {seed}: {table} differs"
            assert fast_consumer == live_consumer, f"history {seed}: the consumer's tables differ"
    finally:
        await engine.dispose()


def test_replay_folds_every_handled_type() -> None:
    assert set(IndicatorsReplay(HANDLERS).folds) == set(HANDLERS), "add a fold for the new handler"
