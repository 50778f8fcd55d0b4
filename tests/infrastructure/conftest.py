"""The infrastructure service against a real beneficiaries service (over ASGI, with the caller's token)."""

from __future__ import annotations

import itertools
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from services.beneficiaries.app import create_app as create_beneficiaries
from services.beneficiaries.config import BeneficiariesSettings
from services.infrastructure.app import create_app as create_infrastructure
from services.infrastructure.config import InfrastructureSettings
from shared.outbox import OutboxMessage
from tests.conftest import Env, running
from tests.training.conftest import SeparateASGITransport

_names = itertools.count()

ASSESSMENT = {
    "assessed_on": "2026-09-10",
    "participants": {"female": 14, "male": 17, "idp": 9, "returnee": 12, "host_community": 10},
    "local_authority": "Al-Mosul municipality, water directorate",
    "priorities": [{"sector": "water", "need": "The west network loses half its water"},
                   {"sector": "education", "need": "The girls' school has no roof"},
                   {"sector": "roads", "need": "The market road floods in winter"}],
    "contributions": [{"kind": "labour", "description": "40 volunteer days of unskilled labour"},
                      {"kind": "land", "description": "A plot for the new tank"}],
    "conflict_sensitivity": {
        "groups_present": ["returnee families from the old city", "host families", "displaced families"],
        "dividers": ["Returnees say hosts took the best plots"],
        "connectors": ["The shared market", "The mosque committee"],
        "risks": [{"description": "Hiring only from one group for the works", "mitigation": "Mixed crews"},
                  {"description": "Water reaching one neighbourhood first"}]},
}


@dataclass
class Platform:
    env: Env
    infrastructure: httpx.AsyncClient
    beneficiaries: httpx.AsyncClient
    app: Any  # the infrastructure app
    peer_client: httpx.AsyncClient

    def token(self, *roles: str, **kw: Any) -> dict[str, str]:
        return self.env.token(*roles, **kw)

    async def community(self, district: str = "IQG15Q05") -> str:
        resp = await self.beneficiaries.post("/api/v1/communities", headers=self.token("programme_manager"),
                                             json={"name": f"Community {next(_names)}", "district_pcode": district})
        assert resp.status_code == 201, resp.text
        return resp.json()["id"]

    async def assessment(self, community_id: str, *, complete: bool = True, **overrides: Any) -> dict[str, Any]:
        resp = await self.infrastructure.post("/api/v1/community-assessments",
                                              headers=self.token("programme_manager"),
                                              json={**ASSESSMENT, "community_id": community_id, **overrides})
        assert resp.status_code == 201, resp.text
        if not complete:
            return resp.json()
        done = await self.infrastructure.post(f"/api/v1/community-assessments/{resp.json()['id']}/completion",
                                              headers=self.token("programme_manager"),
                                              json={"completed_on": "2026-09-12"})
        assert done.status_code == 200, done.text
        return done.json()

    async def project(self, community_id: str, priority_id: str | None = None, **overrides: Any) -> dict[str, Any]:
        body: dict[str, Any] = {"title": "West network rehabilitation", "sector": "water",
                                "community_id": community_id, "catchment_population": 1200,
                                "latitude": 36.341717, "longitude": 43.131171}
        body["assessment_priority_id"] = priority_id
        if priority_id is None:
            body["justification"] = "An emergency repair the governorate asked for"
        body.update(overrides)
        resp = await self.infrastructure.post("/api/v1/infrastructure-projects", json=body,
                                              headers=self.token("programme_manager"))
        assert resp.status_code == 201, resp.text
        return resp.json()

    async def status(self, project_id: str, status: str, on: str = "2026-10-01", role: str = "programme_manager",
                     **extra: Any) -> httpx.Response:
        return await self.infrastructure.post(f"/api/v1/infrastructure-projects/{project_id}/status",
                                              json={"status": status, "on": on, **extra}, headers=self.token(role))

    async def count(self, model: Any, *where: Any) -> int:
        async with self.app.state.sessionmaker() as session:
            return (await session.execute(select(func.count()).select_from(model).where(*where))).scalar_one()

    async def events(self, type_suffix: str = "") -> list[dict[str, Any]]:
        async with self.app.state.sessionmaker() as session:
            rows = (await session.execute(select(OutboxMessage).order_by(OutboxMessage.seq))).scalars().all()
        events = [json.loads(row.payload) for row in rows]
        return [e for e in events if e["type"].endswith(type_suffix)]


@pytest.fixture
async def platform(env: Env) -> AsyncIterator[Platform]:
    beneficiaries_app = create_beneficiaries(env.settings(BeneficiariesSettings))
    app = create_infrastructure(env.settings(InfrastructureSettings, upstreams={"beneficiaries": "http://beneficiaries"}))
    async with running(beneficiaries_app) as beneficiaries, running(app) as infrastructure:
        peer_client = httpx.AsyncClient(transport=SeparateASGITransport(app=beneficiaries_app),
                                        base_url="http://beneficiaries")
        real_client = app.state.http
        app.state.http = peer_client
        try:
            yield Platform(env, infrastructure, beneficiaries, app, peer_client)
        finally:
            app.state.http = real_client
            await peer_client.aclose()
