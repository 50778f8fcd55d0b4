"""``ETag`` on single resources and ``If-Match`` on PATCH (428 without it, 412 when stale)."""

from __future__ import annotations

from fastapi import Request

from shared.errors import PreconditionFailed, PreconditionRequired


def make_etag(id_: str, version: int) -> str:
    return f'"{id_}.{version}"'


def check_if_match(request: Request, current: str, *, required: bool = True) -> None:
    """412 when ``If-Match`` does not name ``current``; 428 without it, unless not ``required`` (a
    transition: the version check of ``shared.concurrency`` already makes a raced one happen once)."""
    header = request.headers.get("if-match")
    if header is None:
        if not required:
            return
        raise PreconditionRequired("PATCH needs an If-Match header with the resource's ETag")
    candidates = [c.strip().removeprefix("W/") for c in header.split(",")]
    if "*" not in candidates and current not in candidates:
        raise PreconditionFailed("The resource has changed since you read it; fetch it again",
                                 current_etag=current)
