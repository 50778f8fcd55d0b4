"""The feedback service against a real beneficiaries service (over ASGI, with the caller's token), with a clock
the tests move."""

from __future__ import annotations

import itertools
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from services.beneficiaries.app import create_app as create_beneficiaries
from services.beneficiaries.config import BeneficiariesSettings
from services.feedback.app import create_app as create_feedback
from services.feedback.config import FeedbackSettings
from shared.outbox import OutboxMessage
from tests.conftest import Env, running
from tests.training.conftest import SeparateASGITransport

_names = itertools.count()
START = datetime(2026, 11, 2, 8, 0, tzinfo=UTC)


@dataclass
class Clock:
    now: datetime = START

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@dataclass
class Platform:
    env: Env
    feedback: httpx.AsyncClient
    beneficiaries: httpx.AsyncClient
    app: Any  # the feedback app
    clock: Clock = field(default_factory=Clock)

    def token(self, *roles: str, **kw: Any) -> dict[str, str]:
        return self.env.token(*roles, **kw)

    async def community(self, district: str = "IQG15Q05") -> str:
        resp = await self.beneficiaries.post("/api/v1/communities", headers=self.token("programme_manager"),
                                             json={"name": f"Community {next(_names)}", "district_pcode": district})
        assert resp.status_code == 201, resp.text
        return resp.json()["id"]

    async def submit(self, community_id: str | None, category: str = "minor_dissatisfaction", *,
                     role: str = "cfm_officer", **extra: Any) -> dict[str, Any]:
        body = {"channel": "hotline", "category": category, "description": f"The water point is broken {next(_names)}",
                "anonymous": False, "contact": "+964 770 123 4567", **extra}
        if community_id is not None:
            body["community_id"] = community_id
        resp = await self.feedback.post("/api/v1/feedback", json=body, headers=self.token(role))
        assert resp.status_code == 201, resp.text
        return resp.json()

    async def move(self, case_id: str, status: str, role: str = "cfm_officer", **extra: Any) -> httpx.Response:
        return await self.feedback.post(f"/api/v1/feedback/{case_id}/status", json={"status": status, **extra},
                                        headers=self.token(role))

    async def centre(self, community_id: str, **extra: Any) -> dict[str, Any]:
        resp = await self.feedback.post("/api/v1/resource-centres", headers=self.token("programme_manager"),
                                        json={"name": f"Centre {next(_names)}", "community_id": community_id,
                                              "opening_hours": "Sun-Thu 08:00-14:00",
                                              "contact_channel": "hotline 80069", **extra})
        assert resp.status_code == 201, resp.text
        return resp.json()

    async def count(self, model: Any, *where: Any) -> int:
        async with self.app.state.sessionmaker() as session:
            return (await session.execute(select(func.count()).select_from(model).where(*where))).scalar_one()

    async def events(self, type_suffix: str = "") -> list[dict[str, Any]]:
        async with self.app.state.sessionmaker() as session:
            rows = (await session.execute(select(OutboxMessage).order_by(OutboxMessage.seq))).scalars().all()
        return [e for e in (json.loads(r.payload) for r in rows) if e["type"].endswith(type_suffix)]


async def start(env: Env, **settings: Any) -> AsyncIterator[Platform]:
    beneficiaries_app = create_beneficiaries(env.settings(BeneficiariesSettings))
    feedback_app = create_feedback(env.settings(FeedbackSettings, upstreams={"beneficiaries": "http://beneficiaries"},
                                                **settings))
    async with running(beneficiaries_app) as beneficiaries, running(feedback_app) as feedback:
        peer_client = httpx.AsyncClient(transport=SeparateASGITransport(app=beneficiaries_app),
                                        base_url="http://beneficiaries")
        real_client = feedback_app.state.http
        feedback_app.state.http = peer_client
        platform = Platform(env, feedback, beneficiaries, feedback_app)
        feedback_app.state.clock = platform.clock
        try:
            yield platform
        finally:
            feedback_app.state.http = real_client
            await peer_client.aclose()


@pytest.fixture
async def platform(env: Env) -> AsyncIterator[Platform]:
    async for p in start(env):
        yield p
