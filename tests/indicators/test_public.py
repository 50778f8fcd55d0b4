"""Public outputs: small cells suppressed with complementary cells, so that no hidden cell can be worked out
from the other cells, the totals or another public output. The attack is written out: for every published
table and total, solve for the hidden cells."""

from __future__ import annotations

import random
import uuid
from datetime import date
from typing import Any

from services.indicators import service as svc
from services.indicators.app import create_app
from services.indicators.config import IndicatorsSettings
from shared.consumer import Outcome, apply_or_dead_letter
from shared.events import CloudEvent
from tests.conftest import Env, running
from tests.indicators.test_reach import completion, disbursement, registered

THRESHOLD = 5


def attack(tables: dict[str, dict[str, Any]], known_cells: dict[tuple[str, str], int],
           totals: list[int | None]) -> dict[tuple[str, str], tuple[int, int]]:
    """What someone holding every public output learns about each hidden cell: its possible range.

    ``tables``: one-dimension tables of the same population {dimension: {"items": [...], "total": n}};
    ``known_cells``: cell values published elsewhere (e.g. a governorate's figure in the public summary);
    ``totals``: every published total of that population. Each table's cells sum to the total; cells are
    whole numbers >= 0. Propagates until nothing changes: a table with one unknown cell left gives it away.
    Returns {(dimension, value): (lowest, highest)} for the cells still unknown, and (v, v) when recovered.
    """
    total = next((t for t in totals if t is not None), None)
    for table in tables.values():
        total = total if total is not None else table["total"]
    known = dict(known_cells)
    for dimension, table in tables.items():
        for item in table["items"]:
            if item["value"] is not None:
                known[dimension, item[dimension]] = item["value"]
    ranges: dict[tuple[str, str], tuple[int, int]] = {}
    changed = True
    while changed:
        changed = False
        for dimension, table in tables.items():
            hidden = [(dimension, item[dimension]) for item in table["items"]
                      if (dimension, item[dimension]) not in known]
            if not hidden or total is None:
                continue
            rest = total - sum(known[dimension, item[dimension]] for item in table["items"]
                               if (dimension, item[dimension]) in known)
            if len(hidden) == 1 or rest == 0:
                for cell in hidden:
                    known[cell] = rest if len(hidden) == 1 else 0
                changed = True
                continue
            for cell in hidden:
                ranges[cell] = (0, rest)
    for dimension, table in tables.items():
        for item in table["items"]:
            cell = (dimension, item[dimension])
            if item["value"] is None and cell in known:
                ranges[cell] = (known[cell], known[cell])
    return ranges


def test_the_attack_recovers_cells_that_only_primary_suppression_hides() -> None:
    """The attack is real: with small cells hidden alone, subtraction from the total gives them away."""
    naive = {"sex": {"items": [{"sex": "female", "value": 9}, {"sex": "male", "value": None},
                               {"sex": "unknown", "value": 0}], "total": 12}}
    assert attack(naive, {}, [12])[("sex", "male")] == (3, 3)
    values = [9, 3, 0]
    hidden, total_hidden = svc.suppress(values, THRESHOLD)
    protected = {"sex": {"items": [{"sex": k, "value": None if i in hidden else v}
                                   for i, (k, v) in enumerate(zip(("female", "male", "unknown"), values, strict=True))],
                         "total": 12}}
    assert not total_hidden and attack(protected, {}, [12])[("sex", "male")] == (0, 12)


def test_suppression_always_leaves_the_hidden_cells_undetermined() -> None:
    rng = random.Random(11)
    for _ in range(3000):
        values = [rng.choice([0, 0, 1, 2, 3, 4, 5, 6, 8, 13, 40]) for _ in range(rng.randint(2, 20))]
        hidden, total_hidden = svc.suppress(values, THRESHOLD)
        assert {i for i, v in enumerate(values) if 0 < v < THRESHOLD} <= hidden  # primary cells always hidden
        assert total_hidden == (0 < sum(values) < THRESHOLD)
        if total_hidden:
            assert hidden == set(range(len(values)))
        elif hidden:
            # At least two hidden cells. Zeros shown: a hidden cell holds at least one person, and could hold
            # anything up to H - (n - 1) >= the threshold. Zeros hidden too (no other way): from 0 to H.
            # (Which of the two a reader cannot tell: a table of small cells hides its zeros too, if it has any.)
            held = sum(values[i] for i in hidden)
            zeros_shown = held - (len(hidden) - 1) >= THRESHOLD
            zeros_hidden = held >= THRESHOLD and {i for i, v in enumerate(values) if v < THRESHOLD} <= hidden
            assert len(hidden) >= 2 and (zeros_shown or zeros_hidden)
            if any(values[i] == 0 for i in hidden):
                assert zeros_hidden
        else:
            assert all(v == 0 or v >= THRESHOLD for v in values)


def test_zeros_are_shown_so_an_empty_group_does_not_hide_a_large_one() -> None:
    """Seen on the dashboard at the programme's scale: nobody of unknown sex hid the 20,517 men."""
    assert svc.suppress([20_683, 20_517, 0], THRESHOLD) == (set(), False)
    assert svc.suppress([0, 0, 0, 0, 29_266, 11_934, 0], THRESHOLD) == (set(), False)
    assert svc.suppress([3, 0, 1000, 900], THRESHOLD) == ({0, 3}, False)  # the small cell and one complement
    assert svc.suppress([0, 0, 0], THRESHOLD) == (set(), False)


async def test_no_public_output_reveals_a_hidden_cell(env: Env) -> None:
    app = create_app(env.settings(IndicatorsSettings))
    rng = random.Random(5)
    events: list[CloudEvent] = []
    # Ninewa 14 people, Erbil 6, Anbar 3, Basra 1; some assisted before their registration arrives
    for governorate, count in (("IQG15", 14), ("IQG07", 6), ("IQG01", 3), ("IQG02", 1)):
        for i in range(count):
            person = str(uuid.uuid4())
            if i % 5 != 4:
                events.append(registered(person, sex=rng.choice(["female", "male"]),
                                         birth_year=rng.choice([1950, 1980, 1995, 2012, 2016])))
            on = date(2026, rng.randint(1, 4), rng.randint(1, 28))
            events.append(disbursement(person, on, governorate=governorate) if i % 3 else
                          completion(person, on, governorate=governorate))
    async with running(app) as client:
        async with app.state.sessionmaker() as session, session.begin():
            for event in events:
                outcome = await apply_or_dead_letter(session, app.state.applier, subject=event.type,
                                                     payload=event.model_dump_json().encode(), attempt=1,
                                                     max_attempts=1)
                assert outcome is Outcome.SETTLED
        for indicator in svc.PERSON_INDICATORS:
            dims = [d for d in svc.PUBLIC_DIMENSIONS if d != "pillar" or indicator == "individuals_directly_assisted"]
            tables = {}
            for dimension in dims:
                resp = await client.get("/api/v1/public/indicators/breakdown",
                                        params={"indicator": indicator, "by": dimension})
                assert resp.status_code == 200, resp.text
                tables[dimension] = resp.json()
            totals: list[int | None] = [t["total"] for t in tables.values()]
            known: dict[tuple[str, str], int] = {}
            if indicator == "individuals_directly_assisted":
                overall = (await client.get("/api/v1/public/indicators/summary")).json()
                totals.append(overall["individuals_directly_assisted"])
                for item in tables["governorate"]["items"]:
                    if item["governorate"] == "unknown":
                        continue
                    one = (await client.get("/api/v1/public/indicators/summary",
                                            params={"governorate": item["governorate"]})).json()
                    if one["individuals_directly_assisted"] is not None:
                        known["governorate", item["governorate"]] = one["individuals_directly_assisted"]
            # the truth, to check the attack against
            truth = {}
            async with app.state.sessionmaker() as session:
                for dimension in dims:
                    for cell in await svc.breakdown(session=session, indicator=indicator, by=[dimension],
                                                    governorates=None):
                        truth[dimension, cell[dimension]] = cell["value"]
            hidden = [(d, item[d]) for d, t in tables.items() for item in t["items"] if item["value"] is None]
            shown = [(d, item[d]) for d, t in tables.items() for item in t["items"] if item["value"] is not None]
            assert hidden and shown, "the data must exercise suppression"
            for cell in shown:
                assert truth.get(cell, 0) == 0 or truth.get(cell, 0) >= THRESHOLD
            learned = attack(tables, known, totals)
            for cell in hidden:
                low, high = learned[cell]
                assert low <= truth.get(cell, 0) <= high
                assert low < high, f"{indicator}: the hidden cell {cell} is recovered as {low}"
                assert high >= THRESHOLD, f"{indicator}: the hidden cell {cell} is shown to be small (<= {high})"
        # the old leak: a public table per governorate beside the governorate's figure
        refused = await client.get("/api/v1/public/indicators/breakdown",
                                   params={"indicator": "individuals_directly_assisted", "by": "sex",
                                           "governorate": "IQG02"})
        assert refused.status_code == 422 and refused.headers["content-type"] == "application/problem+json"
        basra = (await client.get("/api/v1/public/indicators/summary", params={"governorate": "IQG02"})).json()
        assert basra["individuals_directly_assisted"] is None  # 1 person: hidden as in the governorate table
        for bad in ({"indicator": "individuals_directly_assisted", "by": "sex,age_group"},
                    {"indicator": "individuals_directly_assisted", "by": "community"},
                    {"indicator": "beneficiaries_registered", "by": "pillar"}):
            resp = await client.get("/api/v1/public/indicators/breakdown", params=bad)
            assert resp.status_code == 422 and resp.json()["errors"][0]["loc"] == ["query", "by"], bad


async def test_a_programme_under_the_threshold_publishes_no_total(env: Env) -> None:
    app = create_app(env.settings(IndicatorsSettings, public_suppression_threshold=10))
    async with running(app) as client:
        async with app.state.sessionmaker() as session, session.begin():
            for i in range(7):
                event = disbursement(str(uuid.uuid4()), date(2026, 1, 1 + i))
                await apply_or_dead_letter(session, app.state.applier, subject=event.type,
                                           payload=event.model_dump_json().encode(), attempt=1, max_attempts=1)
        body = (await client.get("/api/v1/public/indicators/summary")).json()
        assert body["individuals_directly_assisted"] is None  # 7 < the configured threshold of 10
        table = (await client.get("/api/v1/public/indicators/breakdown",
                                  params={"indicator": "individuals_directly_assisted", "by": "month"})).json()
        assert table["total"] is None and all(item["suppressed"] for item in table["items"])
        officer = env.token("me_officer")
        inside = (await client.get("/api/v1/indicators/summary", headers=officer)).json()
        assert inside["individuals_directly_assisted"] == 7  # the internal figures are not suppressed
