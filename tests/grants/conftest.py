"""The grants service against the real beneficiaries service (over ASGI): the peer lookups are real."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from services.beneficiaries.app import create_app as create_beneficiaries
from services.beneficiaries.config import BeneficiariesSettings
from services.grants.app import create_app as create_grants
from services.grants.config import GrantsSettings
from shared.outbox import OutboxMessage
from tests.beneficiaries.test_api import community, person
from tests.conftest import Env, running


@dataclass
class Grants:
    client: httpx.AsyncClient  # the grants service
    app: Any
    people: httpx.AsyncClient  # the beneficiaries service
    env: Env

    async def register(self, community_id: str | None = None, **overrides: Any) -> str:
        community_id = community_id or await community(self.people, self.env)
        body = person(community_id, confirm_not_duplicate=True, **overrides)
        resp = await self.people.post("/api/v1/beneficiaries", json=body, headers=self.env.token("case_worker"))
        assert resp.status_code == 201, resp.text
        return resp.json()["id"]

    async def call(self, **overrides: Any) -> dict[str, Any]:
        today = date.today()
        body = {"name": "Ninewa livelihoods round 1", "sector": "agriculture", "budget": "10000.00",
                "currency": "USD", "opens_on": (today - timedelta(days=10)).isoformat(),
                "closes_on": (today + timedelta(days=30)).isoformat(), **overrides}
        resp = await self.client.post("/api/v1/grant-calls", json=body, headers=self.env.token("programme_manager"))
        assert resp.status_code == 201, resp.text
        return resp.json()

    async def apply(self, beneficiary_id: str, call_id: str | None = None, **overrides: Any) -> httpx.Response:
        body = {"beneficiary_id": beneficiary_id, "business_name": "Abu Karim Dairy", "sector": "agriculture",
                "amount_requested": "1500.00", "currency": "USD", **overrides}
        if call_id:
            body["call_id"] = call_id
        return await self.client.post("/api/v1/grants", json=body, headers=self.env.token("case_worker"))

    async def approved(self, amount: str = "1500.00", call_id: str | None = None, **overrides: Any) -> dict[str, Any]:
        resp = await self.apply(await self.register(), call_id, **overrides)
        assert resp.status_code == 201, resp.text
        resp = await self.client.post(f"/api/v1/grants/{resp.json()['id']}/approval",
                                      json={"amount_approved": amount}, headers=self.env.token("programme_manager"))
        assert resp.status_code == 200, resp.text
        return resp.json()

    async def disburse(self, grant_id: str, amount: str, on: str | None = None,
                       headers: dict[str, str] | None = None) -> httpx.Response:
        return await self.client.post(f"/api/v1/grants/{grant_id}/disbursements",
                                      json={"amount": amount, "disbursed_on": on or date.today().isoformat()},
                                      headers={**self.env.token("programme_manager"), **(headers or {})})

    async def count(self, model: Any) -> int:
        async with self.app.state.sessionmaker() as session:
            return (await session.execute(select(func.count()).select_from(model))).scalar_one()

    async def events(self, type_suffix: str = "") -> list[dict[str, Any]]:
        async with self.app.state.sessionmaker() as session:
            rows = (await session.execute(select(OutboxMessage).order_by(OutboxMessage.seq))).scalars().all()
        return [e for e in (json.loads(r.payload) for r in rows) if e["type"].endswith(type_suffix)]


class InProcess(httpx.ASGITransport):
    """The beneficiaries app in process, each request in its own task: as over a real network, nothing it sets
    in its context (its request id, its read-only transaction flag) leaks back into the caller's request."""

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        return await asyncio.create_task(super().handle_async_request(request))


@pytest.fixture
async def grants(env: Env) -> AsyncIterator[Grants]:
    people_app = create_beneficiaries(env.settings(BeneficiariesSettings))
    app = create_grants(env.settings(GrantsSettings, upstreams={"beneficiaries": "http://beneficiaries"}))
    async with running(people_app) as people, running(app) as client:
        # The grants service asks the real beneficiaries service, in process.
        app.state.http = httpx.AsyncClient(transport=InProcess(app=people_app))
        try:
            yield Grants(client, app, people, env)
        finally:
            await app.state.http.aclose()
