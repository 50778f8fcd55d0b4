"""Asking the beneficiaries service over HTTP with the caller's token (shared.peers), against the real service."""

from __future__ import annotations

import httpx
import pytest

from services.beneficiaries.app import create_app
from services.beneficiaries.config import BeneficiariesSettings
from services.cli import free_port
from shared.errors import ServiceUnavailable, Unprocessable
from shared.peers import Beneficiaries
from tests.beneficiaries.test_api import community, person
from tests.conftest import Env, running


async def test_lookup_follows_merges_hides_what_is_out_of_scope_and_reports_consent(env: Env) -> None:
    settings = env.settings(BeneficiariesSettings)
    app = create_app(settings)
    async with running(app) as client:
        manager = env.token("programme_manager")
        community_id = await community(client, env)
        survivor = (await client.post("/api/v1/beneficiaries", headers=manager, json=person(community_id))).json()
        duplicate = (await client.post("/api/v1/beneficiaries", headers=manager, json=person(
            community_id, first_name="Zaid", father_name="Karim", date_of_birth="1970-01-01",
            confirm_not_duplicate=True))).json()
        merged = await client.post(f"/api/v1/beneficiaries/{survivor['id']}/merge", headers=manager,
                                   json={"duplicate_id": duplicate["id"]})
        assert merged.status_code == 200, merged.text
        etag = merged.headers["etag"]
        withdrawn = await client.post(f"/api/v1/beneficiaries/{survivor['id']}/consent-withdrawal",
                                      headers={**manager, "If-Match": etag}, json={"withdrawn_on": "2026-11-20"})
        assert withdrawn.status_code == 200, withdrawn.text

        over_asgi = httpx.AsyncClient(transport=httpx.ASGITransport(app=app))
        settings = settings.model_copy(update={"upstreams": {"beneficiaries": "http://beneficiaries"}})
        async with over_asgi:
            peers = Beneficiaries(over_asgi, settings, manager["Authorization"])
            ref = await peers.get(duplicate["id"])
            assert (ref.id, ref.requested_id) == (survivor["id"], duplicate["id"])  # merged: the survivor
            assert await peers.records_of(await peers.get(survivor["id"])) == {survivor["id"], duplicate["id"]}
            assert ref.governorate_pcode == "IQG15" and ref.sex == survivor["sex"]
            assert ref.consent_given is False and str(ref.consent_withdrawn_on) == "2026-11-20"
            place = await peers.community(community_id)
            assert (place.id, place.district_pcode, place.governorate_pcode) == (community_id, "IQG15Q05", "IQG15")

            elsewhere = Beneficiaries(over_asgi, settings, env.token("programme_manager",
                                                                     governorates=("IQG01",))["Authorization"])
            for unknown in (survivor["id"], "00000000-0000-4000-8000-000000000000", "../../healthz"):
                with pytest.raises(Unprocessable) as out_of_scope:
                    await (elsewhere if unknown == survivor["id"] else peers).get(unknown)
                assert out_of_scope.value.extra["errors"] == [{"loc": ["body", "beneficiary_id"],
                                                              "msg": "unknown beneficiary"}]
            with pytest.raises(Unprocessable):
                await elsewhere.community(community_id)


async def test_an_unreachable_beneficiaries_service_is_503() -> None:
    settings = BeneficiariesSettings(upstreams={"beneficiaries": f"http://127.0.0.1:{free_port()}"})
    async with httpx.AsyncClient() as client:
        with pytest.raises(ServiceUnavailable):
            await Beneficiaries(client, settings, "Bearer x").get("00000000-0000-4000-8000-000000000000")
