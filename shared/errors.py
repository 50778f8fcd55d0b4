"""RFC 9457 problem details: one error base, one set of handlers, never a stack trace."""

from __future__ import annotations

import logging
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import IntegrityError
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
        log.warning("integrity error on %s: %s", request.url.path, type(exc.orig).__name__)
        return problem_response(409, slug="conflict", instance=request.url.path,
                                detail="The change conflicts with a concurrent one; retry the request.")

    async def on_crash(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return problem_response(500, slug="internal-error", instance=request.url.path,
                                detail="An unexpected error occurred; it has been logged.")

    app.add_exception_handler(ProblemError, on_problem)  # type: ignore[arg-type]
    app.add_exception_handler(StarletteHTTPException, on_http)  # type: ignore[arg-type]
    app.add_exception_handler(RequestValidationError, on_validation)  # type: ignore[arg-type]
    app.add_exception_handler(IntegrityError, on_integrity)  # type: ignore[arg-type]
    app.add_exception_handler(Exception, on_crash)
