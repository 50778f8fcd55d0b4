"""The training service against a real beneficiaries service (over ASGI, with the caller's token)."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from services.beneficiaries.app import create_app as create_beneficiaries
from services.beneficiaries.config import BeneficiariesSettings
from services.training.app import create_app as create_training
from services.training.config import TrainingSettings
from tests.conftest import Env, running

_names = itertools.count()


class SeparateASGITransport(httpx.ASGITransport):
    """The beneficiaries app over ASGI, each request in its own task: in production it is another process,
    so nothing it sets in its context (e.g. a GET's read-only session flag) may leak into the caller's."""

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        return await asyncio.create_task(super().handle_async_request(request))


@dataclass
class Platform:
    env: Env
    training: httpx.AsyncClient
    beneficiaries: httpx.AsyncClient
    app: Any  # the training app
    peer_client: httpx.AsyncClient  # how the training app reaches the beneficiaries service

    def token(self, *roles: str, **kw: Any) -> dict[str, str]:
        return self.env.token(*roles, **kw)

    async def community(self, district: str = "IQG15Q05") -> str:
        resp = await self.beneficiaries.post("/api/v1/communities", headers=self.token("programme_manager"),
                                             json={"name": f"Community {next(_names)}", "district_pcode": district})
        assert resp.status_code == 201, resp.text
        return resp.json()["id"]

    async def person(self, community_id: str) -> str:
        n = next(_names)
        resp = await self.beneficiaries.post("/api/v1/beneficiaries", headers=self.token("programme_manager"), json={
            "first_name": f"Trainee{n}", "father_name": f"Father{n}", "sex": "female" if n % 2 else "male",
            "date_of_birth": f"{1960 + n % 40}-0{1 + n % 9}-1{n % 10}", "displacement_status": "returnee",
            "community_id": community_id, "consent": {"given": True, "obtained_on": "2026-11-01"},
            "confirm_not_duplicate": True})
        assert resp.status_code == 201, resp.text
        return resp.json()["id"]

    async def course(self, community_id: str, **overrides: Any) -> dict[str, Any]:
        body = {"title": "Tailoring for beginners", "skill_area": "tailoring", "provider": "Mosul VTC",
                "community_id": community_id, "start_date": "2026-01-01", "end_date": "2026-03-01",
                "capacity": 10, "planned_sessions": 5, **overrides}
        resp = await self.training.post("/api/v1/courses", json=body, headers=self.token("programme_manager"))
        assert resp.status_code == 201, resp.text
        return resp.json()

    async def enrol(self, course_id: str, beneficiary_id: str, **extra: Any) -> httpx.Response:
        return await self.training.post(f"/api/v1/courses/{course_id}/enrolments",
                                        json={"beneficiary_id": beneficiary_id, **extra},
                                        headers=self.token("case_worker"))

    async def attend(self, course_id: str, session: int, present: dict[str, bool]) -> httpx.Response:
        return await self.training.post(f"/api/v1/courses/{course_id}/attendance", headers=self.token("case_worker"),
                                        json={"session": session, "held_on": "2026-01-05", "records": [
                                            {"enrolment_id": e, "present": p} for e, p in present.items()]})

    async def count(self, model: Any, *where: Any) -> int:
        async with self.app.state.sessionmaker() as session:
            return (await session.execute(select(func.count()).select_from(model).where(*where))).scalar_one()


@pytest.fixture
async def platform(env: Env) -> AsyncIterator[Platform]:
    beneficiaries_app = create_beneficiaries(env.settings(BeneficiariesSettings))
    training_app = create_training(env.settings(TrainingSettings,
                                                upstreams={"beneficiaries": "http://beneficiaries"}))
    async with running(beneficiaries_app) as beneficiaries, running(training_app) as training:
        peer_client = httpx.AsyncClient(transport=SeparateASGITransport(app=beneficiaries_app),
                                        base_url="http://beneficiaries")
        real_client = training_app.state.http
        training_app.state.http = peer_client
        try:
            yield Platform(env, training, beneficiaries, training_app, peer_client)
        finally:
            training_app.state.http = real_client
            await peer_client.aclose()
