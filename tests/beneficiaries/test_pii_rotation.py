"""Rotating the national-ID key end to end: register under k1, rotate to k2 with `crp pii rotate`, still one person."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from services.beneficiaries.app import create_app
from services.beneficiaries.config import BeneficiariesSettings
from services.beneficiaries.models import Beneficiary
from shared.pii import keyed_hash
from shared.settings import CommonSettings
from tests.beneficiaries.test_api import assert_problem, community, person
from tests.conftest import Env, running

ROOT = Path(__file__).resolve().parents[2]
KEY_ONE = "the-first-national-id-key-0123456789abcdef"
KEY_TWO = "the-second-national-id-key-0123456789abcdef"
K1 = {"pii_key": KEY_ONE, "pii_key_id": "k1"}
K2 = {"pii_key": KEY_TWO, "pii_key_id": "k2", "pii_retired_keys": {"k1": KEY_ONE}}


def crp_pii_rotate(settings: BeneficiariesSettings, pii: dict[str, Any]) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CRP_")}
    env.update(CRP_DATABASE_URL=settings.database_url or "", CRP_PII_KEY=pii["pii_key"],
               CRP_PII_KEY_ID=pii["pii_key_id"], CRP_PII_RETIRED_KEYS=json.dumps(pii.get("pii_retired_keys", {})))
    if settings.database_schema:
        env["CRP_DATABASE_SCHEMA"] = settings.database_schema
    return subprocess.run([sys.executable, "-m", "services.cli", "pii", "rotate"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=60)


async def stored(app: Any) -> list[tuple[str, str | None, str | None]]:
    async with app.state.sessionmaker() as session:
        rows = (await session.execute(select(Beneficiary).order_by(Beneficiary.created_at))).scalars().all()
    return [(r.id, r.national_id_hash, r.national_id_key) for r in rows]


async def test_rotate_national_id_key_end_to_end(env: Env) -> None:
    headers = env.token("case_worker")
    app = create_app(env.settings(BeneficiariesSettings, **K1))
    async with running(app) as client:
        community_id = await community(client, env)
        first = await client.post("/api/v1/beneficiaries", json=person(community_id, national_id="1987-445566"),
                                  headers=headers)
        assert first.status_code == 201, first.text
        [(first_id, k1_hash, chain)] = await stored(app)
        assert chain == "k1" and k1_hash == keyed_hash(CommonSettings(**K1), "1987445566")

    # The new key is configured (k1 retired) but not rotated yet: lookups follow the stored chain.
    settings = env.settings(BeneficiariesSettings, **K2)
    app = create_app(settings)
    async with running(app) as client:
        again = person(community_id, first_name="Zainab", father_name="Kadhim", sex="female",
                       national_id="1987 445566", confirm_not_duplicate=True)
        assert_problem(await client.post("/api/v1/beneficiaries", json=again, headers=headers), 409)

    missing = crp_pii_rotate(settings, {"pii_key": KEY_TWO, "pii_key_id": "k2"})  # k1 forgotten: refused
    assert missing.returncode == 1 and "'k1'" in missing.stderr and KEY_ONE not in missing.stderr
    result = crp_pii_rotate(settings, K2)
    assert result.returncode == 0, result.stderr
    assert "1 national-ID hashes wrapped under key k2" in result.stdout
    assert crp_pii_rotate(settings, K2).stdout.startswith("beneficiaries: 0 ")  # idempotent

    app = create_app(settings)
    async with running(app) as client:
        [(same_id, k2_hash, chain)] = await stored(app)
        assert same_id == first_id and chain == "k1>k2" and k2_hash not in (k1_hash, None)
        # The same national ID, typed another way, is still a 409; a new one registers under k2 alone.
        body = assert_problem(await client.post("/api/v1/beneficiaries", json=again, headers=headers), 409)
        assert body["type"] == "urn:crp:problem:duplicate-national-id"
        other = {**again, "national_id": "1990-000111"}
        created = await client.post("/api/v1/beneficiaries", json=other, headers=headers)
        assert created.status_code == 201, created.text
        rows = await stored(app)
        assert rows[1][2] == "k2" and rows[1][1] == keyed_hash(CommonSettings(**K2), "1990000111")
        # Setting a record's own national ID again changes nothing; taking the other one's is 409.
        url = f"/api/v1/beneficiaries/{first_id}"
        etag = (await client.get(url, headers=headers)).headers["etag"]
        same = await client.patch(url, json={"national_id": "1987445566"}, headers={**headers, "If-Match": etag})
        assert same.status_code == 200 and same.json()["version"] == 1
        taken = await client.patch(url, json={"national_id": "1990 000111"}, headers={**headers, "If-Match": etag})
        assert_problem(taken, 409)


def test_key_ids_are_never_reused() -> None:
    with pytest.raises(ValueError):
        CommonSettings(pii_key=KEY_TWO, pii_key_id="k1", pii_retired_keys={"k1": KEY_ONE})
    with pytest.raises(ValueError):
        CommonSettings(pii_key_id="k1>k2")
