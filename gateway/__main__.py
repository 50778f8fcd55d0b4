"""``python -m gateway --host 127.0.0.1 --port 8000``"""

from __future__ import annotations

import argparse

import uvicorn

from shared.server import HTTP_PROTOCOL


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m gateway", description="Run the CRP API gateway.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    args = parser.parse_args(argv)
    # uvloop + httptools: measured in gateway/README.md; the access log is the gateway's own (JSON).
    # Proxy headers off: which proxies to believe is CRP_TRUSTED_PROXIES (shared/urls.py).
    uvicorn.run("gateway.app:create_app", factory=True, host=args.host, port=args.port, loop="uvloop",
                http=HTTP_PROTOCOL, proxy_headers=False, access_log=False, server_header=False, log_level="warning",
                backlog=2048, timeout_keep_alive=30)


if __name__ == "__main__":
    main()
