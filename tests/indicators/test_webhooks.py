"""Outbound webhooks against a real HTTP receiver that verifies Standard Webhooks signatures on its own."""

from __future__ import annotations

import json
import socket
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web
from standardwebhooks.webhooks import Webhook

from services.indicators.app import create_app
from services.indicators.config import IndicatorsSettings
from shared.events.beneficiaries import BeneficiaryRegistered
from tests.beneficiaries.test_api import assert_problem
from tests.conftest import Env, eventually, running
from tests.pipeline.test_outbox_consumer import publish_raw, registered_event

REGISTERED = "crp.beneficiaries.beneficiary.registered.v1"


class Receiver:
    """A partner's endpoint: verifies each delivery with the `standardwebhooks` package, fails the first
    ``fail_first`` deliveries (or all while ``always_fail``) with 503."""

    def __init__(self) -> None:
        self.secret = ""
        self.fail_first = 0
        self.always_fail = False
        self.requests = 0
        self.accepted: list[tuple[dict[str, str], dict[str, Any]]] = []
        self.bad_signatures = 0
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}/hooks/crp"

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        self.requests += 1
        try:
            Webhook(self.secret).verify(body, dict(request.headers))
        except Exception:
            self.bad_signatures += 1
            return web.Response(status=401)
        if self.always_fail or self.requests <= self.fail_first:
            return web.Response(status=503)
        self.accepted.append((dict(request.headers), json.loads(body)))
        return web.Response(status=204)


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    recv = Receiver()
    app = web.Application()
    app.router.add_post("/hooks/crp", recv.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", recv.port).start()
    yield recv
    await runner.cleanup()


def settings(env: Env, **overrides: Any) -> IndicatorsSettings:
    return env.settings(IndicatorsSettings, webhook_retry_base_seconds=0.05, webhook_retry_max_seconds=0.2,
                        **overrides)


async def subscribe(client: Any, env: Env, receiver: Receiver, **body: Any) -> dict[str, Any]:
    payload = {"name": "partner-mis", "url": receiver.url, "event_types": [REGISTERED], "governorates": ["IQG15"],
               **body}
    resp = await client.post("/api/v1/webhooks", json=payload, headers=env.token("admin"))
    assert resp.status_code == 201, resp.text
    sub = resp.json()
    assert sub["secret"].startswith("whsec_") and sub["enabled"]
    receiver.secret = sub["secret"]
    return sub


async def deliveries(client: Any, env: Env, sub_id: str) -> list[dict[str, Any]]:
    resp = await client.get(f"/api/v1/webhooks/{sub_id}/deliveries", headers=env.token("admin"))
    assert resp.status_code == 200, resp.text
    return resp.json()


async def test_signed_deliveries_retried_logged_and_redelivered(env: Env, receiver: Receiver) -> None:
    receiver.fail_first = 2
    app = create_app(settings(env))
    async with running(app) as client:
        await app.state.bus.wait_ready(10)
        sub = await subscribe(client, env, receiver)
        event = registered_event()
        subject = BeneficiaryRegistered.subject(env.prefix)
        await publish_raw(env.nats_url, subject, event)
        await publish_raw(env.nats_url, subject, event)  # the stream delivers it twice: still one delivery
        await publish_raw(env.nats_url, subject, registered_event(governorate_pcode="IQG01",
                                                                  district_pcode="IQG01Q01"))  # not subscribed

        async def delivered() -> list[dict[str, Any]] | None:
            log = await deliveries(client, env, sub["id"])
            return log if log and log[0]["status"] == "succeeded" else None

        [delivery] = await eventually(delivered, timeout=20)
        assert receiver.bad_signatures == 0 and len(receiver.accepted) == 1
        headers, body = receiver.accepted[0]
        assert headers["webhook-id"] == delivery["id"] and headers["webhook-signature"].startswith("v1,")
        assert body["id"] == event.id and body["type"] == REGISTERED and body["data"] == event.data
        # Two failures, then success, each attempt in the log with the receiver's status code.
        assert delivery["attempts"] == 3 and delivery["last_status_code"] == 204
        assert [(a["status_code"], a["succeeded"]) for a in delivery["log"]] == [(503, False), (503, False),
                                                                               (204, True)]
        sub_now = (await client.get(f"/api/v1/webhooks/{sub['id']}", headers=env.token("admin"))).json()
        assert sub_now["enabled"] and sub_now["consecutive_failures"] == 0

        # Re-delivery by hand: the same webhook-id and body again.
        resp = await client.post(f"/api/v1/webhooks/{sub['id']}/deliveries/{delivery['id']}/redeliver",
                                 headers=env.token("admin"))
        assert resp.status_code == 202, resp.text
        await eventually(lambda: len(receiver.accepted) == 2, timeout=20)
        assert receiver.accepted[1][0]["webhook-id"] == delivery["id"] and receiver.accepted[1][1] == body
        [again] = await eventually(delivered, timeout=20)
        assert again["redelivered_at"] and len(again["log"]) == 4 and again["log"][-1]["status_code"] == 204
        assert_problem(await client.post(f"/api/v1/webhooks/{sub['id']}/deliveries/nope/redeliver",
                                         headers=env.token("admin")), 404)


async def test_disabled_after_failures_and_enabled_by_hand(env: Env, receiver: Receiver) -> None:
    receiver.always_fail = True
    app = create_app(settings(env, webhook_disable_after_failures=3))
    async with running(app) as client:
        await app.state.bus.wait_ready(10)
        sub = await subscribe(client, env, receiver, event_types=["*"], governorates=["*"])
        subject = BeneficiaryRegistered.subject(env.prefix)
        await publish_raw(env.nats_url, subject, registered_event())

        async def disabled() -> bool:
            got = (await client.get(f"/api/v1/webhooks/{sub['id']}", headers=env.token("admin"))).json()
            return not got["enabled"] and got["disabled_at"] is not None and got["consecutive_failures"] >= 3

        await eventually(disabled, timeout=20)
        # While disabled, new events are kept as deliveries, not sent and not dropped.
        await publish_raw(env.nats_url, subject, registered_event(governorate_pcode="IQG01", district_pcode="IQG01Q01"))
        await eventually(lambda: _count(client, env, sub["id"], 2))
        sent = receiver.requests
        receiver.always_fail = False
        resp = await client.post(f"/api/v1/webhooks/{sub['id']}/enable", headers=env.token("admin"))
        assert resp.status_code == 200 and resp.json()["enabled"] and resp.json()["consecutive_failures"] == 0
        await eventually(lambda: len(receiver.accepted) == 2, timeout=20)
        assert receiver.requests == sent + 2 and receiver.bad_signatures == 0

        async def all_succeeded() -> bool:  # each is recorded once its receiver has answered
            return {d["status"] for d in await deliveries(client, env, sub["id"])} == {"succeeded"}

        await eventually(all_succeeded, timeout=20)


async def _count(client: Any, env: Env, sub_id: str, n: int) -> bool:
    return len(await deliveries(client, env, sub_id)) == n


async def test_webhook_access_and_bad_input(env: Env, receiver: Receiver) -> None:
    app = create_app(settings(env))
    async with running(app) as client:
        body = {"name": "x", "url": receiver.url, "event_types": ["*"], "governorates": ["*"]}
        assert_problem(await client.post("/api/v1/webhooks", json=body), 401)
        assert_problem(await client.post("/api/v1/webhooks", json=body, headers=env.token("programme_manager")), 403)
        assert_problem(await client.get("/api/v1/webhooks", headers=env.token("partner_system")), 403)
        admin = env.token("admin")
        for bad in ({"url": "not a url"}, {"url": "ftp://x.example/y"}, {"event_types": []},
                    {"event_types": ["beneficiary registered"]}, {"governorates": ["Ninewa"]}, {"extra": 1}):
            assert_problem(await client.post("/api/v1/webhooks", json={**body, **bad}, headers=admin), 422)
        assert_problem(await client.get("/api/v1/webhooks/nope", headers=admin), 404)
        assert_problem(await client.get("/api/v1/webhooks/nope/deliveries", headers=admin), 404)
        assert_problem(await client.post("/api/v1/webhooks/nope/enable", headers=admin), 404)
        resp = await client.post("/api/v1/webhooks", json=body, headers=admin)
        listed = (await client.get("/api/v1/webhooks", headers=admin)).json()
        assert [s["id"] for s in listed] == [resp.json()["id"]] and "secret" not in listed[0]
