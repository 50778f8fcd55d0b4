"""RFC 9457 problem details: one error base, one set of handlers, never a stack trace.

Logs never carry personal data: a database error is logged by its class names and SQLSTATE only
(PostgreSQL's message and DETAIL quote the failing row, and the statement's parameters are hidden by
``shared.db.create_engine``), and a crash is logged with its stack frames but without exception texts.
"""

from __future__ import annotations

import logging
import traceback
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.orm.exc import StaleDataError
from starlette.exceptions import HTTPException as StarletteHTTPException

log = logging.getLogger("crp.errors")

PROBLEM_JSON = "application/problem+json"


class ProblemError(Exception):
    """An error that renders as ``application/problem+json``."""

    status: int = 500
    slug: str | None = None

    def __init__(
        self,
        detail: str | None = None,
        *,
        status: int | None = None,
        title: str | None = None,
        slug: str | None = None,
        headers: dict[str, str] | None = None,
        **extra: Any,
    ) -> None:
        self.status = status or self.status
        self.slug = slug or self.slug
        self.title = title or HTTPStatus(self.status).phrase
        self.detail = detail or self.title
        self.headers = headers or {}
        self.extra = extra
        super().__init__(self.detail)


class BadRequest(ProblemError):
    status = 400


class Unauthorized(ProblemError):
    status = 401
    slug = "unauthorized"

    def __init__(self, detail: str = "A valid bearer token is required", **kw: Any) -> None:
        kw.setdefault("headers", {"WWW-Authenticate": 'Bearer realm="crp"'})
        super().__init__(detail, **kw)


class Forbidden(ProblemError):
    status = 403
    slug = "forbidden"


class NotFound(ProblemError):
    status = 404
    slug = "not-found"


class Conflict(ProblemError):
    status = 409
    slug = "conflict"


class PreconditionFailed(ProblemError):
    status = 412
    slug = "precondition-failed"


class Unprocessable(ProblemError):
    status = 422
    slug = "validation-error"


class PayloadTooLarge(ProblemError):
    status = 413
    slug = "payload-too-large"


class UnsupportedMediaType(ProblemError):
    status = 415
    slug = "unsupported-media-type"


class PreconditionRequired(ProblemError):
    status = 428
    slug = "precondition-required"


class TooManyRequests(ProblemError):
    status = 429
    slug = "rate-limited"


class BadGateway(ProblemError):
    status = 502
    slug = "bad-gateway"


class ServiceUnavailable(ProblemError):
    status = 503
    slug = "service-unavailable"


class GatewayTimeout(ProblemError):
    status = 504
    slug = "gateway-timeout"


def database_unavailable_problem() -> ServiceUnavailable:
    """The answer to a request whose database cannot be reached (a restart, an outage): nothing was stored, the
    client may retry."""
    return ServiceUnavailable("The database is unavailable; nothing was stored, retry later.",
                              headers={"Retry-After": "1"})


def problem_type(slug: str | None) -> str:
    return f"urn:crp:problem:{slug}" if slug else "about:blank"


def problem_body(
    status: int, *, title: str | None = None, detail: str | None = None, slug: str | None = None,
    instance: str | None = None, **extra: Any,
) -> dict[str, Any]:
    title = title or HTTPStatus(status).phrase
    body: dict[str, Any] = {"type": problem_type(slug), "title": title, "status": status,
                            "detail": detail or title}
    if instance:
        body["instance"] = instance
    body.update(extra)
    return body


def problem_response(
    status: int, *, headers: dict[str, str] | None = None, instance: str | None = None, **kw: Any
) -> JSONResponse:
    return JSONResponse(problem_body(status, instance=instance, **kw), status_code=status,
                        media_type=PROBLEM_JSON, headers=headers)


def validation_errors(errors: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{"loc": list(e.get("loc", ())), "msg": e.get("msg", "invalid")} for e in errors]


# A deadlock or a serialization failure aborts a transaction that may simply be retried.
RETRYABLE_SQLSTATES = frozenset({"40001", "40P01"})
# The database went away or is restarting (connection exception, admin or crash shutdown, starting up).
UNAVAILABLE_SQLSTATES = frozenset({"57P01", "57P02", "57P03"})


def database_unavailable(exc: BaseException) -> bool:
    """True when ``exc`` says the database cannot be reached right now (not that the request is wrong)."""
    if isinstance(exc, DBAPIError):
        code = sqlstate(exc) or ""
        if exc.connection_invalidated or code.startswith("08") or code in UNAVAILABLE_SQLSTATES:
            return True
        return isinstance(exc.orig, ConnectionError | OSError)
    return isinstance(exc, ConnectionError | OSError)


def sqlstate(exc: BaseException) -> str | None:
    """The SQLSTATE of a database error (PostgreSQL), or None."""
    orig = getattr(exc, "orig", None)
    return getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None)


def describe(exc: BaseException) -> str:
    """Class names (and SQLSTATE) along the exception chain: what to log about an error without its text,
    which may quote personal data (a database error quotes the failing row)."""
    parts = []
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        code = sqlstate(current)
        parts.append(type(current).__name__ + (f" (SQLSTATE {code})" if code else ""))
        current = current.__cause__ or current.__context__
    return " <- ".join(parts)


def stack(exc: BaseException) -> str:
    """The stack frames of ``exc`` (files, lines, functions, source lines), without its message."""
    return "".join(traceback.format_tb(exc.__traceback__))


def _route(request: Request) -> str:
    """The route template (``/api/v1/beneficiaries/{beneficiary_id}``): a path may hold anything."""
    return getattr(request.scope.get("route"), "path", None) or "unmatched"


def install_error_handlers(app: FastAPI) -> None:
    """Render every error as problem+json: domain errors, HTTP errors, validation, crashes."""

    async def on_problem(request: Request, exc: ProblemError) -> JSONResponse:
        return problem_response(exc.status, title=exc.title, detail=exc.detail, slug=exc.slug,
                                headers=exc.headers, instance=request.url.path, **exc.extra)

    async def on_http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        slug = {404: "not-found", 405: "method-not-allowed"}.get(exc.status_code)
        detail = exc.detail if isinstance(exc.detail, str) else None
        if exc.status_code == 404 and detail == "Not Found":
            detail = f"No resource at {request.url.path}"
        return problem_response(exc.status_code, detail=detail, slug=slug,
                                headers=getattr(exc, "headers", None), instance=request.url.path)

    async def on_validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        return problem_response(422, title="Validation failed", slug="validation-error",
                                detail="The request is not valid; see errors.",
                                errors=validation_errors(list(exc.errors())), instance=request.url.path)

    async def on_integrity(request: Request, exc: IntegrityError) -> JSONResponse:
        log.warning("integrity error on %s %s: %s", request.method, _route(request), describe(exc))
        return problem_response(409, slug="conflict", instance=request.url.path,
                                detail="The change conflicts with a concurrent one; retry the request.")

    async def on_stale(request: Request, exc: StaleDataError) -> JSONResponse:
        # The version-checked UPDATE matched nothing: another transaction changed the row first.
        log.info("concurrent change on %s %s", request.method, _route(request))
        if request.headers.get("if-match") is not None:
            return problem_response(412, slug="precondition-failed", instance=request.url.path,
                                    detail="The resource has changed since you read it; fetch it again")
        return problem_response(409, slug="concurrent-change", instance=request.url.path,
                                detail="The resource was changed concurrently; read it again and retry.")

    async def on_database(request: Request, exc: DBAPIError) -> JSONResponse:
        if sqlstate(exc) in RETRYABLE_SQLSTATES:
            log.warning("transaction aborted on %s %s: %s", request.method, _route(request), describe(exc))
            return problem_response(409, slug="concurrent-change", instance=request.url.path,
                                    detail="The resource was changed concurrently; read it again and retry.")
        return await on_crash(request, exc)

    async def on_crash(request: Request, exc: Exception) -> JSONResponse:
        if database_unavailable(exc):  # a restart or an outage: nothing was stored, the client may retry
            log.warning("database unavailable on %s %s: %s", request.method, _route(request), describe(exc))
            return await on_problem(request, database_unavailable_problem())
        log.error("unhandled error on %s %s: %s", request.method, _route(request), describe(exc),
                  extra={"stack": stack(exc)})
        return problem_response(500, slug="internal-error", instance=request.url.path,
                                detail="An unexpected error occurred; it has been logged.")

    app.add_exception_handler(ProblemError, on_problem)  # type: ignore[arg-type]
    app.add_exception_handler(StarletteHTTPException, on_http)  # type: ignore[arg-type]
    app.add_exception_handler(RequestValidationError, on_validation)  # type: ignore[arg-type]
    app.add_exception_handler(IntegrityError, on_integrity)  # type: ignore[arg-type]
    app.add_exception_handler(StaleDataError, on_stale)  # type: ignore[arg-type]
    app.add_exception_handler(DBAPIError, on_database)  # type: ignore[arg-type]
    app.add_exception_handler(Exception, on_crash)
