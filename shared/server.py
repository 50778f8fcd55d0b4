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

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol as _UvicornHttpTools

HTTP_PROTOCOL = "shared.server:HttpToolsProtocol"
UVICORN_ARGS = ["--http", HTTP_PROTOCOL, "--no-proxy-headers"]


class HttpToolsProtocol(_UvicornHttpTools):
    def on_header(self, name: bytes, value: bytes) -> None:
        if "method" in self.scope:  # set once the headers are complete: this is a trailer field
            return
        super().on_header(name, value)
