"""A response rendered once: plain values (str, int, bool, None, date, datetime, dict, list) straight to JSON
bytes in pydantic's core.

For a hot read whose values come from the service's own rows, already valid: returning a dict to a route's
``response_model`` had FastAPI validate it into models and serialise those again, the larger part of a page's
cost. The ``response_model`` stays on the route for the OpenAPI. Datetimes must be aware UTC (as the database
returns them): they render as RFC 3339 with ``Z``, like ``shared.db.UtcDatetime``.
"""

from __future__ import annotations

from typing import Any

from pydantic_core import to_json
from starlette.responses import Response


def json_response(content: Any, *, response: Response | None = None, status_code: int = 200,
                  headers: dict[str, str] | None = None) -> Response:
    """``content`` as an ``application/json`` response, with ``headers`` and the headers a route set on its injected
    ``response`` (``Link``), as FastAPI would have added them to a response it rendered."""
    rendered = Response(to_json(content), status_code=status_code, media_type="application/json", headers=headers)
    if response is not None:
        rendered.raw_headers.extend((k, v) for k, v in response.raw_headers if k != b"content-length")
    return rendered
