"""Every error is problem+json, and a crash never shows a trace."""

from __future__ import annotations

import httpx
from fastapi import FastAPI

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
