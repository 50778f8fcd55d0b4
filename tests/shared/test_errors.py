"""Every error is problem+json, and a crash never shows a trace."""

from __future__ import annotations

import logging
from typing import Any

import httpx
from fastapi import FastAPI
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm.exc import StaleDataError

from shared.errors import Conflict, install_error_handlers


async def test_crash_and_domain_errors_render_as_problems() -> None:
    app = FastAPI()
    install_error_handlers(app)

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("secret connection string postgres://admin:hunter2@db")

    @app.get("/conflict")
    async def conflict() -> None:
        raise Conflict("already there", candidates=[{"id": "x"}])

    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        crash = await client.get("/boom")
        assert crash.status_code == 500
        assert crash.headers["content-type"] == "application/problem+json"
        assert "hunter2" not in crash.text and "Traceback" not in crash.text and "RuntimeError" not in crash.text
        assert crash.json()["type"] == "urn:crp:problem:internal-error"
        body = (await client.get("/conflict")).json()
        assert body == {"type": "urn:crp:problem:conflict", "title": "Conflict", "status": 409,
                        "detail": "already there", "instance": "/conflict", "candidates": [{"id": "x"}]}
        not_allowed = await client.post("/conflict")
        assert not_allowed.status_code == 405 and not_allowed.json()["status"] == 405


async def test_concurrent_change_and_database_errors_render_without_their_text(caplog: Any) -> None:
    app = FastAPI()
    install_error_handlers(app)

    class Orig(Exception):
        def __init__(self, message: str, sqlstate: str) -> None:
            super().__init__(message)
            self.sqlstate = sqlstate

    def db_error(code: str) -> DBAPIError:
        return DBAPIError("INSERT ...", {"first_name": "Zumurrud"},
                          Orig('DETAIL: Failing row contains (Zumurrud, 1961-07-13)', code))

    @app.patch("/stale")
    async def stale() -> None:
        raise StaleDataError("UPDATE statement on table 'x' expected to update 1 row(s); 0 were matched.")

    @app.post("/deadlock")
    async def deadlock() -> None:
        raise db_error("40P01")

    @app.post("/broken")
    async def broken() -> None:
        raise db_error("XX000")

    caplog.set_level(logging.DEBUG)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        with_etag = await client.patch("/stale", headers={"If-Match": '"x.1"'})
        assert with_etag.status_code == 412 and with_etag.json()["type"] == "urn:crp:problem:precondition-failed"
        without = await client.patch("/stale")
        assert without.status_code == 409 and without.json()["type"] == "urn:crp:problem:concurrent-change"
        assert (await client.post("/deadlock")).status_code == 409
        broken = await client.post("/broken")
        assert broken.status_code == 500 and "Zumurrud" not in broken.text
    logged = "\n".join(f"{r.getMessage()} {getattr(r, 'stack', '')}" for r in caplog.records)
    assert "SQLSTATE XX000" in logged and "SQLSTATE 40P01" in logged
    assert "Zumurrud" not in logged and "1961" not in logged
