"""How every process of the platform is served by uvicorn.

``HttpToolsProtocol``: uvicorn's httptools protocol, except that the trailer fields of a chunked request
are dropped. httptools reports trailers through the same callback as headers, and uvicorn appends them
to the very list that is the request's ``scope["headers"]``: a trailer ``Authorization`` or
``X-API-Key`` sent after the body would count as a request header, unseen by anything that looked at
the headers before the body arrived.

``UVICORN_ARGS``: the options every ``uvicorn`` command line of the platform carries. Proxy headers are
off: uvicorn would otherwise take the client address from any ``X-Forwarded-For`` a loopback peer
sends; which proxies are believed is ``CRP_TRUSTED_PROXIES``, decided by the platform (shared/urls.py).
"""

from __future__ import annotations

import sys

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol as _UvicornHttpTools

HTTP_PROTOCOL = "shared.server:HttpToolsProtocol"
UVICORN_ARGS = ["--http", HTTP_PROTOCOL, "--no-proxy-headers"]


def serve_argv(name: str, *, host: str, port: int, workers: int = 1, log_level: str = "warning") -> list[str]:
    """The command line that serves service ``name``: uvicorn on uvloop with the httptools protocol above, no
    access log (the service writes its own, ``shared.observability``), and ``workers`` processes sharing the
    port. ``crp dev`` runs one per service; production sets ``CRP_SERVER_WORKERS`` (``crp serve``)."""
    argv = [sys.executable, "-m", "uvicorn", "--factory", f"services.{name}.app:create_app", "--host", host,
            "--port", str(port), "--loop", "uvloop", "--no-access-log", "--log-level", log_level, *UVICORN_ARGS]
    if workers > 1:
        argv += ["--workers", str(workers)]
    return argv


class HttpToolsProtocol(_UvicornHttpTools):
    def on_header(self, name: bytes, value: bytes) -> None:
        if "method" in self.scope:  # set once the headers are complete: this is a trailer field
            return
        super().on_header(name, value)
