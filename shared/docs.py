"""``/docs``: Swagger UI served from the ``swagger-ui-bundle-v2`` wheel, so the page loads nothing from any
other host (no CDN: it works offline, and the Content-Security-Policy allows this origin only)."""

from __future__ import annotations

import json

from fastapi import FastAPI
from fastapi.responses import HTMLResponse, Response
from starlette.staticfiles import StaticFiles
from swagger_ui_bundle import swagger_ui_path

ASSETS = "/docs/assets"
# Swagger UI sets inline styles; scripts come from this origin only.
DOCS_CSP = ("default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
            "script-src 'self'; connect-src 'self'; frame-ancestors 'none'")


def docs_page(title: str) -> str:
    return f"""<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>{title}</title>
  <link rel="stylesheet" href="{ASSETS}/swagger-ui.css">
  <link rel="icon" type="image/png" href="{ASSETS}/favicon-32x32.png">
</head>
<body>
  <div id="swagger-ui"></div>
  <script src="{ASSETS}/swagger-ui-bundle.js"></script>
  <script src="/docs/init.js"></script>
</body>
</html>
"""


def install_docs(app: FastAPI, *, title: str, openapi_url: str = "/openapi.json") -> None:
    """``GET /docs`` (the page), ``/docs/init.js`` and ``/docs/assets/*`` (Swagger UI's files)."""
    page = docs_page(title)
    init = (f"window.ui = SwaggerUIBundle({{url: {json.dumps(openapi_url)}, dom_id: '#swagger-ui', "
            "deepLinking: true, presets: [SwaggerUIBundle.presets.apis], layout: 'BaseLayout'});\n")

    @app.get("/docs", include_in_schema=False)
    async def docs() -> HTMLResponse:
        return HTMLResponse(page, headers={"Content-Security-Policy": DOCS_CSP})

    @app.get("/docs/init.js", include_in_schema=False)
    async def docs_init() -> Response:
        return Response(init, media_type="text/javascript")

    app.mount(ASSETS, StaticFiles(directory=swagger_ui_path), name="docs-assets")
