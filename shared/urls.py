"""Absolute URLs (``Link``, ``Location``) as the caller must use them, never the service's own address.

One rule for every process: the configured public base URL (``CRP_PUBLIC_BASE_URL``) if set; else the
``X-Forwarded-Host``/``-Proto``/``-Prefix`` headers, only when the direct peer is a trusted proxy
(``CRP_TRUSTED_PROXIES``) and the values are well-formed; else the request's own scheme and host.
"""

from __future__ import annotations

import ipaddress
import re
from functools import lru_cache

from starlette.requests import Request

from shared.settings import CommonSettings

HOST = re.compile(r"^(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}"
                  r"[A-Za-z0-9])?)*|\[[0-9A-Fa-f:.]+\])(?::[0-9]{1,5})?$")
PREFIX = re.compile(r"^(?:/[A-Za-z0-9._~-]+)*$")
PROTOS = ("http", "https")


@lru_cache(maxsize=32)
def _networks(trusted: tuple[str, ...]) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    return tuple(ipaddress.ip_network(entry, strict=False) for entry in trusted)


def is_trusted_proxy(settings: CommonSettings, peer: str | None) -> bool:
    """True when ``peer`` (the direct peer's address) is one of the configured trusted proxies."""
    if not peer:
        return False
    return _trusted(peer, tuple(settings.trusted_proxies))


@lru_cache(maxsize=1024)
def _trusted(peer: str, trusted: tuple[str, ...]) -> bool:
    try:
        address = ipaddress.ip_address(peer)
    except ValueError:
        return False
    return any(address in network for network in _networks(trusted))


def valid_host(value: str | None) -> str | None:
    """``value`` if it is a well-formed ``host[:port]``, else None."""
    return value if value and len(value) <= 255 and HOST.match(value) else None


def public_base(settings: CommonSettings, scheme: str, host: str | None, peer: str | None,
                forwarded: dict[str, str]) -> str:
    """The public base URL (no trailing slash) for a request; ``forwarded`` maps x-forwarded-* names."""
    if settings.public_base_url:
        return settings.public_base_url.rstrip("/")
    if is_trusted_proxy(settings, peer):
        f_host = valid_host(forwarded.get("x-forwarded-host"))
        f_proto = forwarded.get("x-forwarded-proto", scheme).lower()
        f_prefix = forwarded.get("x-forwarded-prefix", "").rstrip("/")
        if f_host and f_proto in PROTOS and PREFIX.match(f_prefix):
            return f"{f_proto}://{f_host}{f_prefix}"
    return f"{scheme if scheme in PROTOS else 'http'}://{valid_host(host) or 'localhost'}"


def public_url(request: Request, path_and_query: str) -> str:
    """The absolute URL a caller should use for ``path_and_query`` (which starts with ``/``)."""
    settings: CommonSettings = request.app.state.settings
    headers = request.headers
    forwarded = {name: headers[name] for name in ("x-forwarded-host", "x-forwarded-proto", "x-forwarded-prefix")
                 if name in headers}
    peer = request.client.host if request.client else None
    return public_base(settings, request.url.scheme, headers.get("host"), peer, forwarded) + path_and_query


def client_address(settings: CommonSettings, peer: str | None, forwarded_for: str | None) -> str:
    """The caller's address: the direct peer's, or, when that peer is a trusted proxy (the gateway), the last
    address it appended to ``X-Forwarded-For``. What the gateway rate-limits and a service throttles on."""
    if forwarded_for and is_trusted_proxy(settings, peer):
        last = forwarded_for.rsplit(",", 1)[-1].strip()
        try:
            return str(ipaddress.ip_address(last))
        except ValueError:
            pass
    return peer or "unknown"


def request_client_address(request: Request) -> str:
    """``client_address`` of a request to a service."""
    return client_address(request.app.state.settings, request.client.host if request.client else None,
                          request.headers.get("x-forwarded-for"))
