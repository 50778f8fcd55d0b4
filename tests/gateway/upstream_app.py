"""A small upstream for the gateway tests, run as a real uvicorn process.

It echoes what it received, answers slowly, in gzip, in chunks or with any status on demand.
``UPSTREAM_NAME`` changes the shape of ``Item``, so two instances have clashing OpenAPI schemas.
"""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import json
import os

from fastapi import FastAPI, Request, Response
from fastapi.responses import StreamingResponse
from pydantic import BaseModel


class Shared(BaseModel):
    """The same in every instance."""

    note: str


def create_app() -> FastAPI:
    name = os.environ.get("UPSTREAM_NAME", "alpha")
    if name == "alpha":
        class Item(BaseModel):
            id: str
            size: int
            shared: Shared
    else:
        class Item(BaseModel):  # type: ignore[no-redef]
            id: str
            colour: str
            shared: Shared

    app = FastAPI(title=f"upstream {name}")

    @app.get("/readyz")
    async def readyz() -> dict[str, str]:
        return {"status": "ready"}

    for prefix in ("/api/v1/beneficiaries", "/api/v1/indicators", "/api/v1/public/indicators"):
        @app.get(prefix + "/items/{item_id}", response_model=Item)
        async def get_item(item_id: str) -> Item:
            return Item.model_validate({"id": item_id, "size": 1, "colour": "red", "shared": {"note": "x"}})

    @app.get("/api/v1/beneficiaries/slow")
    async def slow(seconds: float = 3.0) -> dict[str, str]:
        await asyncio.sleep(seconds)
        return {"status": "late"}

    @app.get("/api/v1/beneficiaries/gzip")
    async def gzipped() -> Response:
        body = json.dumps({"items": [{"n": i, "text": "hello " * 20} for i in range(200)]}).encode()
        return Response(gzip.compress(body), media_type="application/json",
                        headers={"Content-Encoding": "gzip", "X-Plain-Sha256": hashlib.sha256(body).hexdigest()})

    @app.get("/api/v1/beneficiaries/stream")
    async def stream(chunks: int = 50, size: int = 4096) -> StreamingResponse:
        async def parts():
            for i in range(chunks):
                yield bytes([65 + i % 26]) * size
                await asyncio.sleep(0)
        return StreamingResponse(parts(), media_type="application/octet-stream")

    @app.get("/api/v1/beneficiaries/huge-header")
    async def huge_header(size: int = 100_000) -> Response:
        return Response("{}", media_type="application/json", headers={"X-Huge": "h" * size})

    @app.get("/api/v1/beneficiaries/status/{code}")
    async def status(code: int) -> Response:
        return Response(json.dumps({"status": code}), status_code=code, media_type="application/json",
                        headers={"Access-Control-Allow-Origin": "*", "Connection": "close, X-Secret",
                                 "X-Secret": "hop"})

    @app.api_route("/api/v1/{rest:path}", methods=["GET", "POST", "PUT", "PATCH", "DELETE"])
    async def echo(request: Request) -> dict:
        body = await request.body()
        headers: dict[str, list[str]] = {}
        for key, value in request.headers.items():
            headers.setdefault(key, []).append(value)
        return {"upstream": name, "method": request.method, "path": request.url.path,
                "raw_path": request.scope["raw_path"].decode(), "query": request.url.query,
                "headers": headers, "body_size": len(body), "body_sha256": hashlib.sha256(body).hexdigest()}

    return app
