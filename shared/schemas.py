"""What every service's request input shares: strict bodies, no control characters anywhere, no future dates.

Text with a NUL byte makes PostgreSQL fail (and a failing statement is where personal data used to
leak into logs); other C0 control characters, DEL and lone surrogates are never legitimate in names,
addresses or references either. They are refused with a 422 in request bodies (``Strict``, the base of
every request body) and in query and path parameters (``refuse_control_characters``, a dependency of
every service app). Tab, line feed and carriage return stay allowed (free text may have lines).
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta
from typing import Annotated, Any

from fastapi import Request
from fastapi.params import Form
from pydantic import AfterValidator, BaseModel, ConfigDict, field_validator
from pydantic_core import PydanticCustomError

from shared.errors import Unprocessable, UnsupportedMediaType

_FORBIDDEN = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ud800-\udfff]")
CONTROL_CHARACTER_MSG = "control characters (such as NUL) are not allowed"


def has_control_characters(value: str) -> bool:
    """True when ``value`` holds a C0 control character other than tab, LF and CR, DEL or a lone surrogate."""
    return _FORBIDDEN.search(value) is not None


def _check(value: Any) -> None:
    if isinstance(value, str):
        if has_control_characters(value):
            raise PydanticCustomError("control_character", CONTROL_CHARACTER_MSG)
    elif isinstance(value, list | tuple | set | frozenset):
        for item in value:
            _check(item)
    elif isinstance(value, dict):
        for key, item in value.items():
            _check(key)
            _check(item)
    elif isinstance(value, BaseModel) and not isinstance(value, Strict):  # a Strict one checked itself
        for item in value.__dict__.values():
            _check(item)


class Strict(BaseModel):
    """Base of request bodies: unknown fields and control characters in any string (nested too) are 422."""

    model_config = ConfigDict(extra="forbid")

    @field_validator("*", mode="after")
    @classmethod
    def _no_control_characters(cls, value: Any) -> Any:
        _check(value)
        return value


async def refuse_control_characters(request: Request) -> None:
    """Refuse control characters in query and path parameters (names and values) with a 422 problem."""
    errors: list[dict[str, Any]] = []
    for name, value in request.path_params.items():
        if isinstance(value, str) and has_control_characters(value):
            errors.append({"loc": ["path", name], "msg": CONTROL_CHARACTER_MSG})
    if request.scope.get("query_string"):  # no query string, nothing to parse
        errors.extend(_query_errors(request))
    if errors:
        raise Unprocessable("The request is not valid; see errors.", title="Validation failed", errors=errors)


def _query_errors(request: Request) -> list[dict[str, Any]]:
    errors: list[dict[str, Any]] = []
    for name, value in request.query_params.multi_items():
        if has_control_characters(name) or has_control_characters(value):
            loc_name = name if not has_control_characters(name) else "?"
            errors.append({"loc": ["query", loc_name], "msg": CONTROL_CHARACTER_MSG})
    return errors


_JSON_MEDIA = re.compile(r"application/(?:[\w.-]+\+)?json")


async def require_json_body(request: Request) -> None:
    """A body sent to an operation that reads a JSON body must be declared JSON (``Content-Type``): 415
    otherwise, rather than a 422 that blames the fields. Operations that read their body themselves (a file
    upload, a form) are left to decide for themselves."""
    if request.method not in ("POST", "PUT", "PATCH"):
        return
    route = request.scope.get("route")
    body_params = getattr(getattr(route, "dependant", None), "body_params", None)
    if not body_params or any(isinstance(p.field_info, Form) for p in body_params):
        return
    if request.headers.get("content-length", "0") == "0" and "transfer-encoding" not in request.headers:
        return  # no body: the missing fields are a 422
    media = request.headers.get("content-type", "").partition(";")[0].strip().lower()
    if not _JSON_MEDIA.fullmatch(media):
        raise UnsupportedMediaType(f"The body must be JSON (Content-Type: application/json), not {media[:100]!r}"
                                   if media else "The body must be JSON (Content-Type: application/json)")


async def check_request(request: Request) -> None:
    """``refuse_control_characters`` then ``require_json_body``: the one dependency every service app runs on
    every request (one dependency rather than two: FastAPI's cost is per dependency)."""
    await refuse_control_characters(request)
    await require_json_body(request)


def latest_date_today() -> date:
    """The latest calendar date anywhere on earth now (UTC+14): a date after it is in the future everywhere."""
    return (datetime.now(UTC) + timedelta(hours=14)).date()


def _not_in_future(value: date) -> date:
    if value > latest_date_today():
        raise PydanticCustomError("date_in_future", "the date is in the future")
    return value


PastDate = Annotated[date, AfterValidator(_not_in_future)]
"""A date that has happened (today included, in any time zone): consent, disbursement, completion dates."""
