"""The public dashboard at ``/``: a committed static page (HTML, CSS, vanilla JS; no build step, nothing from
another origin) that reads ``/api/v1/public/indicators/...`` in the browser.

Its own Content-Security-Policy replaces the gateway's API default (``default-src 'none'``) on these responses
only: scripts, styles and fetches from this origin, no inline script or style, no framing.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from fastapi import APIRouter, Request, Response

from shared.errors import NotFound

STATIC = Path(__file__).parent / "static"
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
       "base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
TYPES = {"index.html": "text/html; charset=utf-8", "dashboard.css": "text/css; charset=utf-8",
         "dashboard.js": "text/javascript; charset=utf-8"}


class _Asset:
    def __init__(self, name: str) -> None:
        self.body = (STATIC / name).read_bytes()
        self.media_type = TYPES[name]
        self.etag = '"' + hashlib.sha256(self.body).hexdigest()[:20] + '"'

    def response(self, request: Request) -> Response:
        headers = {"ETag": self.etag, "Cache-Control": "no-cache", "Content-Security-Policy": CSP}
        if self.etag in request.headers.get("if-none-match", ""):
            return Response(status_code=304, headers=headers)
        return Response(self.body, media_type=self.media_type, headers=headers)


ASSETS = {name: _Asset(name) for name in TYPES}
router = APIRouter(tags=["dashboard"], include_in_schema=False)


@router.get("/")
async def dashboard(request: Request) -> Response:
    """The programme's public dashboard."""
    return ASSETS["index.html"].response(request)


@router.get("/dashboard/{name}")
async def asset(name: str, request: Request) -> Response:
    if name == "index.html" or name not in ASSETS:
        raise NotFound(f"No dashboard file {name}")
    return ASSETS[name].response(request)
