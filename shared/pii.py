"""Personal identifiers that must be matched but never stored in clear."""

from __future__ import annotations

import hashlib
import hmac
import re
import unicodedata

from shared.settings import CommonSettings


def keyed_hash(settings: CommonSettings, value: str) -> str:
    """HMAC-SHA256 of an identifier under CRP_PII_KEY, after folding spaces, dashes, case and digits."""
    folded = "".join(str(unicodedata.digit(c)) if c.isdigit() else c for c in value)  # ١٢٣ -> 123
    folded = re.sub(r"[\s\-./]", "", folded).upper()
    return hmac.new(settings.pii_key.get_secret_value().encode(), folded.encode(), hashlib.sha256).hexdigest()
