"""Personal data never reaches logs: control characters are refused, database errors are logged without values.

Runs on SQLite and PostgreSQL. The database is made to fail on purpose (a trigger, a check constraint)
while registering or updating a person with distinctive values; every captured log record, raw and as the JSON
formatter writes it (sqlalchemy's loggers included, at DEBUG), is then searched for those values.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from pydantic import ValidationError
from sqlalchemy import text

from services.beneficiaries.app import create_app
from services.beneficiaries.config import BeneficiariesSettings
from services.beneficiaries.models import Beneficiary
from shared.schemas import Strict
from tests.beneficiaries.test_api import assert_problem, community, count, person
from tests.conftest import Env, running

SECRETS = ("Zumurrudah", "Xanthippos", "Qirmizi", "zumuruda", "xanthipos", "qirmizi", "987 6543", "9876543",
           "1961-07-13", "1961, 7, 13", "55501234")


@pytest.fixture
async def api(env: Env) -> AsyncIterator[tuple[httpx.AsyncClient, Any]]:
    app = create_app(env.settings(BeneficiariesSettings))
    async with running(app) as client:
        yield client, app


def distinctive(community_id: str) -> dict[str, Any]:
    return person(community_id, first_name="Zumurrudah", father_name="Xanthippos", grandfather_name="Qirmizi",
                  sex="female", date_of_birth="1961-07-13", phone="+964 771 987 6543", national_id="NID-55501234")


class Sample(Strict):
    name: str
    tags: list[str] = []
    labels: dict[str, list[str]] = {}


@pytest.mark.parametrize("bad", ["a\x00b", "a\x07b", "a\x1bb", "a\x7fb", "a\ud800b"])
def test_strict_refuses_control_characters_everywhere(bad: str) -> None:
    for body in ({"name": bad}, {"name": "ok", "tags": ["x", bad]}, {"name": "ok", "labels": {"k": [bad]}},
                 {"name": "ok", "labels": {bad: []}}):
        with pytest.raises(ValidationError) as info:
            Sample.model_validate(body)
        assert "control characters" in str(info.value) and bad not in str(info.value)
    assert Sample.model_validate({"name": "line one\nline two\r\n\tindented", "tags": ["أحمد"]})
    with pytest.raises(ValidationError):
        Sample.model_validate({"name": "x", "extra": 1})


async def test_control_characters_are_422_in_body_query_and_path(api: Any, env: Env) -> None:
    client, app = api
    headers = env.token("case_worker")
    community_id = await community(client, env)
    nul = await client.post("/api/v1/beneficiaries", json=person(community_id, first_name="Zumurrudah\x00"),
                            headers=headers)
    body = assert_problem(nul, 422)
    assert {"loc": ["body", "first_name"], "msg": "control characters (such as NUL) are not allowed"} in body["errors"]
    assert "Zumurrudah" not in nul.text
    surrogate = b'{"first_name": "A\\ud800", "father_name": "B", "sex": "male", "date_of_birth": "1990-01-01", ' \
                b'"displacement_status": "idp", "community_id": "' + community_id.encode() + \
                b'", "consent": {"given": true, "obtained_on": "2026-11-01"}}'
    resp = await client.post("/api/v1/beneficiaries", content=surrogate,
                             headers={**headers, "content-type": "application/json"})
    assert assert_problem(resp, 422)["errors"][0]["loc"] == ["body", "first_name"]
    community_nul = await client.post("/api/v1/communities", json={"name": "Old\x01City", "district_pcode": "IQG15Q05"},
                                      headers=headers)
    assert assert_problem(community_nul, 422)["errors"][0]["loc"] == ["body", "name"]
    query = await client.get("/api/v1/beneficiaries", params={"q": "Zumurrudah\x00"}, headers=headers)
    assert assert_problem(query, 422)["errors"] == [{"loc": ["query", "q"],
                                                      "msg": "control characters (such as NUL) are not allowed"}]
    path = await client.get("/api/v1/beneficiaries/abc%00def", headers=headers)
    assert assert_problem(path, 422)["errors"][0]["loc"] == ["path", "beneficiary_id"]
    patch = await client.patch("/api/v1/beneficiaries/abc%1Bdef", json={"phone": "+9647700000000"},
                               headers={**headers, "If-Match": "*"})
    assert_problem(patch, 422)
    assert await count(app, Beneficiary) == 0


FAILURES = {
    # name: (sqlite statements, postgresql statements, expected status)
    "trigger": (
        ["CREATE TRIGGER refuse_person BEFORE INSERT ON beneficiaries BEGIN SELECT RAISE(ABORT, 'refused'); END"],
        ["CREATE FUNCTION refuse_person() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
         "RAISE EXCEPTION 'refused % %', NEW.first_name, NEW.father_name "
         "USING DETAIL = 'phone ' || NEW.phone || ' born ' || NEW.date_of_birth || ' ' || NEW.grandfather_name; "
         "END $$",
         "CREATE TRIGGER refuse_person BEFORE INSERT ON beneficiaries FOR EACH ROW EXECUTE FUNCTION refuse_person()"],
        (409, 500)),
    "crash": (
        ["CREATE TABLE gone (x TEXT)",
         "CREATE TRIGGER refuse_person BEFORE INSERT ON beneficiaries BEGIN "
         "INSERT INTO gone VALUES (NEW.first_name || NEW.phone); END",
         "DROP TABLE gone"],
        ["CREATE FUNCTION refuse_person() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
         "PERFORM (NEW.first_name || NEW.phone)::int; RETURN NEW; END $$",
         "CREATE TRIGGER refuse_person BEFORE INSERT ON beneficiaries FOR EACH ROW EXECUTE FUNCTION refuse_person()"],
        (500,)),
    "check": (
        None,
        ["ALTER TABLE beneficiaries ADD CONSTRAINT refuse_person CHECK (first_name <> 'Zumurrudah') NOT VALID"],
        (409,)),
    "update-trigger": (
        ["CREATE TRIGGER refuse_person BEFORE UPDATE ON beneficiaries BEGIN SELECT RAISE(ABORT, 'refused'); END"],
        ["CREATE FUNCTION refuse_person() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
         "RAISE EXCEPTION 'refused % %', NEW.first_name, NEW.search_key "
         "USING DETAIL = 'phone ' || NEW.phone || ' born ' || NEW.date_of_birth; END $$",
         "CREATE TRIGGER refuse_person BEFORE UPDATE ON beneficiaries FOR EACH ROW EXECUTE FUNCTION refuse_person()"],
        (409, 500)),
}


@pytest.mark.parametrize("failure", sorted(FAILURES))
async def test_database_errors_never_log_personal_values(api: Any, env: Env, failure: str,
                                                        caplog: pytest.LogCaptureFixture) -> None:
    client, app = api
    sqlite_sql, pg_sql, statuses = FAILURES[failure]
    statements = pg_sql if env.backend == "postgresql" else sqlite_sql
    if statements is None:
        pytest.skip(f"no {failure} failure on {env.backend}")
    headers = env.token("case_worker")
    community_id = await community(client, env)
    # Someone with the same values is already registered: the duplicate check reads their row back.
    first = await client.post("/api/v1/beneficiaries", json=distinctive(community_id), headers=headers)
    assert first.status_code == 201, first.text
    async with app.state.engine.begin() as conn:
        for statement in statements:
            await conn.execute(text(statement))

    root = logging.getLogger()
    formatter = root.handlers[0].formatter  # the service's JSON formatter (configure_logging)
    filters = list(root.handlers[0].filters)
    root.addHandler(caplog.handler)  # the service's configure_logging replaced the root handlers
    caplog.set_level(logging.DEBUG)
    for name in ("sqlalchemy", "sqlalchemy.engine", "sqlalchemy.pool", "crp", "asyncpg", "aiosqlite"):
        caplog.set_level(logging.DEBUG, logger=name)
    try:
        if failure.startswith("update"):
            resp = await client.patch(f"/api/v1/beneficiaries/{first.json()['id']}", json={"family_name": "Qirmizi"},
                                      headers={**headers, "If-Match": first.headers["etag"]})
        else:
            again = {**distinctive(community_id), "national_id": None, "confirm_not_duplicate": True}
            resp = await client.post("/api/v1/beneficiaries", json=again, headers=headers)
    finally:
        root.removeHandler(caplog.handler)

    assert resp.status_code in statuses, resp.text
    assert_problem(resp, resp.status_code)
    for secret in SECRETS:
        assert secret not in resp.text
    assert caplog.records, "nothing was logged: the scan would prove nothing"
    assert any(r.levelno >= logging.WARNING and r.name == "crp.errors" for r in caplog.records)
    lines = []
    for record in caplog.records:
        for f in filters:
            f.filter(record)
        lines.append(formatter.format(record) if formatter else record.getMessage())
        lines.append(repr(record.__dict__))
    logged = "\n".join(lines)
    for secret in SECRETS:
        assert secret not in logged, f"{secret!r} reached the logs"
    assert await count(app, Beneficiary) == 1
