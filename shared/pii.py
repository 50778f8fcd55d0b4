"""Personal identifiers that must be matched but never stored in clear, under a key that can be rotated.

A national ID is stored as HMAC-SHA256 of its folded form under ``CRP_PII_KEY``, together with the
*chain* of key ids that made the hash: ``k1`` for a hash made under key ``k1``. The clear value is never
kept, so rotation cannot hash it again; instead ``crp pii rotate`` wraps each stored hash under the new
current key, ``HMAC(k2, hash)``, and records the chain ``k1>k2``. A lookup computes the input's hash
along every chain present in the table. New hashes are made under the current key alone.

Rotating (``CRP_PII_KEY_ID`` names the current key, ``CRP_PII_RETIRED_KEYS`` the others, as JSON):
1. configure a new key and id, keeping the old one among the retired keys
   (``CRP_PII_KEY=<new>``, ``CRP_PII_KEY_ID=k2``, ``CRP_PII_RETIRED_KEYS='{"k1": "<old>"}'``) and restart;
2. run ``crp pii rotate``: every stored hash is then also under ``k2``, so the old key alone no
   longer lets anyone test guessed IDs against a copy of the database.
Retired keys stay configured as long as a chain uses them (every rotated hash starts with its first key).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import os
import re
import unicodedata

from shared.errors import ProblemError
from shared.settings import CommonSettings

log = logging.getLogger("crp.pii")
CHAIN_SEPARATOR = ">"


class PiiKeyMissing(ProblemError):
    status = 500
    slug = "pii-key-missing"


def fold(value: str) -> str:
    """The form an identifier is hashed in: spaces, dashes, dots, slashes and case folded, any digits as ASCII."""
    folded = "".join(str(unicodedata.digit(c)) if c.isdigit() else c for c in value)  # ١٢٣ -> 123
    return re.sub(r"[\s\-./]", "", folded).upper()


def _key(settings: CommonSettings, key_id: str) -> bytes:
    if key_id == settings.pii_key_id:
        return settings.pii_key.get_secret_value().encode()
    retired = settings.pii_retired_keys.get(key_id)
    if retired is None:
        log.error("the PII key %r of stored hashes is not configured (CRP_PII_RETIRED_KEYS)", key_id)
        raise PiiKeyMissing(f"The identifier key {key_id!r} is not configured")
    return retired.get_secret_value().encode()


def _hmac(key: bytes, data: str) -> str:
    return hmac.new(key, data.encode(), hashlib.sha256).hexdigest()


def current_chain(settings: CommonSettings) -> str:
    """The chain new hashes are made with: the current key alone."""
    return settings.pii_key_id


def keyed_hash(settings: CommonSettings, value: str, chain: str | None = None) -> str:
    """The hash of an identifier along ``chain`` (key ids separated by ``>``; default the current key)."""
    first, *rest = (chain or current_chain(settings)).split(CHAIN_SEPARATOR)
    digest = _hmac(_key(settings, first), fold(value))
    for key_id in rest:
        digest = _hmac(_key(settings, key_id), digest)
    return digest


def check_chain(settings: CommonSettings, chain: str) -> None:
    """PiiKeyMissing unless every key of ``chain`` is configured."""
    for key_id in chain.split(CHAIN_SEPARATOR):
        _key(settings, key_id)


def needs_rewrap(settings: CommonSettings, chain: str) -> bool:
    """True when a hash made along ``chain`` is not yet under the current key."""
    return chain.split(CHAIN_SEPARATOR)[-1] != settings.pii_key_id


def rewrap(settings: CommonSettings, stored_hash: str, chain: str) -> tuple[str, str]:
    """A stored hash wrapped under the current key, and its new chain: no clear value needed."""
    return (_hmac(_key(settings, settings.pii_key_id), stored_hash),
            f"{chain}{CHAIN_SEPARATOR}{settings.pii_key_id}")


# -- sealed text: personal free text that must be read back (feedback descriptions, contact details) -----
# AES-256-GCM under a key derived from the PII key (HMAC with a fixed label: the hashing key itself is never
# used for two purposes). A sealed value names the key id it was made under, so a rotated key still opens
# what the retired one sealed (as long as it stays configured, like the hashes' chains).
SEAL_VERSION = "s1"
_SEAL_LABEL = b"crp-seal-v1"


def _seal_key(settings: CommonSettings, key_id: str) -> bytes:
    return hmac.new(_key(settings, key_id), _SEAL_LABEL, hashlib.sha256).digest()


def seal(settings: CommonSettings, value: str) -> str:
    """``value`` encrypted and authenticated under the current key: ``s1.<key id>.<base64 nonce+ciphertext>``."""
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    nonce = os.urandom(12)
    key_id = settings.pii_key_id
    sealed = AESGCM(_seal_key(settings, key_id)).encrypt(nonce, value.encode(), key_id.encode())
    return f"{SEAL_VERSION}.{key_id}.{base64.urlsafe_b64encode(nonce + sealed).decode()}"


def unseal(settings: CommonSettings, sealed: str) -> str:
    """The clear text of a ``seal``ed value (PiiKeyMissing when its key is not configured)."""
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    version, key_id, body = sealed.split(".", 2)
    if version != SEAL_VERSION:
        raise ValueError("unknown sealed value version")
    raw = base64.urlsafe_b64decode(body)
    return AESGCM(_seal_key(settings, key_id)).decrypt(raw[:12], raw[12:], key_id.encode()).decode()
