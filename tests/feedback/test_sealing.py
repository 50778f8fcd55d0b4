"""Sealed text (``shared.pii.seal``): AES-GCM under a key derived from the PII key; a case sealed under k1 is
still read (and its PIN still checked) after k2 becomes current with k1 retired; tampering and a missing key
fail closed."""

from __future__ import annotations

import pytest
from cryptography.exceptions import InvalidTag

from services.feedback.config import FeedbackSettings
from shared.pii import PiiKeyMissing, seal, unseal
from tests.conftest import Env
from tests.feedback.conftest import start

KEY_ONE = "the-first-feedback-key-0123456789abcdef"
KEY_TWO = "the-second-feedback-key-0123456789abcdef"


def test_seal_round_trip_rotation_and_tampering() -> None:
    k1 = FeedbackSettings(pii_key=KEY_ONE, pii_key_id="k1")
    k2 = FeedbackSettings(pii_key=KEY_TWO, pii_key_id="k2", pii_retired_keys={"k1": KEY_ONE})
    sealed = seal(k1, "شكوى: the guard asked for money")
    assert sealed.startswith("s1.k1.") and "guard" not in sealed
    assert seal(k1, "same") != seal(k1, "same")  # a fresh nonce each time
    assert unseal(k2, sealed) == "شكوى: the guard asked for money"  # the retired key still opens it
    assert seal(k2, "new").startswith("s1.k2.")
    version, key_id, body = sealed.split(".", 2)
    flipped = body[:-2] + ("A" if body[-2] != "A" else "B") + body[-1]
    with pytest.raises(InvalidTag):
        unseal(k1, f"{version}.{key_id}.{flipped}")
    with pytest.raises(InvalidTag):  # the key id is authenticated: relabelling fails
        unseal(FeedbackSettings(pii_key=KEY_ONE, pii_key_id="k9", pii_retired_keys={"k1": KEY_ONE}),
               f"s1.k9.{body}")
    with pytest.raises(PiiKeyMissing):
        unseal(FeedbackSettings(pii_key=KEY_TWO, pii_key_id="k2"), sealed)


async def test_cases_survive_a_key_rotation(env: Env) -> None:
    async for platform in start(env, pii_key=KEY_ONE, pii_key_id="k1"):
        receipt = await platform.submit(await platform.community(), description="Sealed under k1")
    async for platform in start(env, pii_key=KEY_TWO, pii_key_id="k2", pii_retired_keys={"k1": KEY_ONE}):
        case = await platform.feedback.get(f"/api/v1/feedback/{receipt['id']}", headers=platform.token("cfm_officer"))
        assert case.json()["description"] == "Sealed under k1"
        status = await platform.feedback.get(f"/api/v1/public/feedback/{receipt['reference']}/status",
                                             headers={"X-Feedback-PIN": receipt["pin"]})
        assert status.status_code == 200
