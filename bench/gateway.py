"""What the gateway costs: ``GET /api/v1/beneficiaries/{id}`` on the service directly and through the gateway.

Same load tool (wrk), same connections, same token, in one run; prints req/s, p50 and p99 of each,
the throughput ratio and the p99 the gateway adds (target: ratio >= 0.6, p99 added <= 10 ms at 50
connections on a 2-core machine). Figures are medians over ``--rounds`` interleaved rounds.

    python bench/gateway.py                         # the real beneficiaries service (SQLite, NATS on 4222)
    python bench/gateway.py --upstream trivial --candidates
        # a trivial token-checking upstream, and the proxy designs that were measured before choosing:
        # httpx on Starlette/uvicorn, aiohttp client on Starlette/uvicorn, aiohttp.web, raw asyncio+httptools

Needs ``wrk`` (``apt-get install wrk``).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
PATH = "/api/v1/beneficiaries/{id}"
HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade", "host", "content-length",
       "proxy-authorization", "proxy-authenticate"}


# -- things this script serves in a child process --------------------------------------------------
def serve_trivial(port: int) -> None:
    """A FastAPI upstream that verifies the bearer token like a service and returns a small JSON."""
    import uvicorn
    from fastapi import Depends, FastAPI

    from shared.auth import TokenVerifier, current_principal
    from shared.settings import CommonSettings

    app = FastAPI()
    app.state.verifier = TokenVerifier(CommonSettings())

    @app.get("/api/v1/beneficiaries/{id}")
    async def get(id: str, principal=Depends(current_principal)) -> dict[str, str]:
        return {"id": id, "first_name": "Ali", "sex": "male", "governorate_pcode": "IQG15", "by": principal.sub}

    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


def serve_httpx(port: int, upstream: str) -> None:
    """Candidate: Starlette on uvicorn, httpx client with a large pool (sniffio installed)."""
    import httpx
    import uvicorn
    from starlette.applications import Starlette
    from starlette.background import BackgroundTask
    from starlette.responses import StreamingResponse
    from starlette.routing import Route

    client = httpx.AsyncClient(base_url=upstream, timeout=10,
                               limits=httpx.Limits(max_connections=200, max_keepalive_connections=200))

    async def proxy(request):  # type: ignore[no-untyped-def]
        headers = [(k, v) for k, v in request.headers.items() if k not in HOP]
        req = client.build_request(request.method, request.url.path, params=request.url.query, headers=headers,
                                   content=await request.body())
        r = await client.send(req, stream=True)
        out = {k: v for k, v in r.headers.items() if k not in HOP | {"content-encoding"}}
        return StreamingResponse(r.aiter_raw(), status_code=r.status_code, headers=out,
                                 background=BackgroundTask(r.aclose))

    app = Starlette(routes=[Route("/{p:path}", proxy, methods=["GET", "POST"])])
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="critical", access_log=False)


def serve_starlette_aiohttp(port: int, upstream: str) -> None:
    """Candidate: Starlette on uvicorn, aiohttp client."""
    import aiohttp
    import uvicorn
    from starlette.applications import Starlette
    from starlette.responses import Response
    from starlette.routing import Route

    sessions: list[aiohttp.ClientSession] = []

    async def proxy(request):  # type: ignore[no-untyped-def]
        if not sessions:
            sessions.append(aiohttp.ClientSession(upstream, auto_decompress=False,
                                                  connector=aiohttp.TCPConnector(limit=200)))
        headers = {k: v for k, v in request.headers.items() if k not in HOP}
        async with sessions[0].request(request.method, request.url.path, headers=headers,
                                       data=await request.body()) as r:
            body = await r.read()
            return Response(body, status_code=r.status,
                            headers={k: v for k, v in r.headers.items() if k.lower() not in HOP})

    app = Starlette(routes=[Route("/{p:path}", proxy, methods=["GET", "POST"])])
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="critical", access_log=False)


def serve_aiohttp_web(port: int, upstream: str) -> None:
    """Candidate: aiohttp.web server and aiohttp client on uvloop."""
    import aiohttp
    import uvloop
    from aiohttp import web

    async def on_startup(app: web.Application) -> None:
        app["session"] = aiohttp.ClientSession(upstream, auto_decompress=False,
                                               connector=aiohttp.TCPConnector(limit=200))

    async def proxy(request: web.Request) -> web.StreamResponse:
        headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP}
        data = request.content if request.can_read_body else None
        async with request.app["session"].request(request.method, request.rel_url, headers=headers,
                                                  data=data) as r:
            out = {k: v for k, v in r.headers.items() if k.lower() not in HOP}
            return web.Response(status=r.status, headers=out, body=await r.read())

    app = web.Application()
    app.on_startup.append(on_startup)
    app.router.add_route("*", "/{p:.*}", proxy)
    web.run_app(app, host="127.0.0.1", port=port, access_log=None, print=None, loop=uvloop.new_event_loop())


def serve_raw(port: int, upstream: str) -> None:
    """Candidate: raw asyncio streams + httptools, keep-alive pool (bodies buffered, no chunked requests)."""
    import asyncio

    import httptools
    import uvloop

    host, up_port = upstream.removeprefix("http://").split(":")
    pool: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []

    class Message:
        def __init__(self) -> None:
            self.url, self.headers, self.body, self.done = b"", [], [], False

        def on_url(self, url: bytes) -> None:
            self.url += url

        def on_header(self, name: bytes, value: bytes) -> None:
            self.headers.append((name, value))

        def on_body(self, body: bytes) -> None:
            self.body.append(body)

        def on_message_complete(self) -> None:
            self.done = True

    def render(first: bytes, headers: list[tuple[bytes, bytes]], body: bytes) -> bytes:
        out = [first]
        out += [k + b": " + v + b"\r\n" for k, v in headers if k.lower().decode() not in HOP]
        out.append(b"content-length: %d\r\n\r\n" % len(body))
        return b"".join(out) + body

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                req = Message()
                parser = httptools.HttpRequestParser(req)
                while not req.done:
                    chunk = await reader.read(65536)
                    if not chunk:
                        return
                    parser.feed_data(chunk)
                data = render(parser.get_method() + b" " + req.url + b" HTTP/1.1\r\nhost: upstream\r\n",
                              req.headers, b"".join(req.body))
                while True:  # a pooled connection the upstream closed meanwhile: take another
                    fresh = not pool
                    up_reader, up_writer = await asyncio.open_connection(host, int(up_port)) if fresh else pool.pop()
                    up_writer.write(data)
                    resp = Message()
                    rparser = httptools.HttpResponseParser(resp)
                    while not resp.done:
                        chunk = await up_reader.read(65536)
                        if not chunk:
                            break
                        rparser.feed_data(chunk)
                    if resp.done:
                        break
                    up_writer.close()
                    if fresh:
                        return
                pool.append((up_reader, up_writer))
                writer.write(render(b"HTTP/1.1 %d OK\r\n" % rparser.get_status_code(), resp.headers,
                                    b"".join(resp.body)))
        except Exception:
            pass
        finally:
            writer.close()

    async def main() -> None:
        server = await asyncio.start_server(handle, "127.0.0.1", port, backlog=1024)
        await server.serve_forever()

    uvloop.run(main())


CANDIDATES = {"httpx (Starlette/uvicorn)": serve_httpx,
              "aiohttp client (Starlette/uvicorn)": serve_starlette_aiohttp,
              "aiohttp.web + aiohttp client": serve_aiohttp_web,
              "raw asyncio + httptools": serve_raw}


# -- the harness -------------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url: str, proc: subprocess.Popen[bytes], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"{proc.args} exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=1):  # noqa: S310 (loopback only)
                return
        except urllib.error.HTTPError:
            return  # it answers
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"{url} did not answer within {timeout}s")


def request_json(method: str, url: str, token: str, body: dict) -> dict:
    req = urllib.request.Request(url, data=json.dumps(body).encode(), method=method, headers={
        "Authorization": f"Bearer {token}", "Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as resp:  # noqa: S310 (loopback only)
        return json.loads(resp.read())


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def to_ms(value: str) -> float:
    number, unit = re.fullmatch(r"([\d.]+)(us|ms|s)", value).groups()  # type: ignore[union-attr]
    return float(number) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def wrk(url: str, token: str, connections: int, duration: float) -> dict[str, float]:
    args = ["wrk", "-t1", f"-c{connections}", f"-d{duration:g}s", "--latency", "-H", f"Authorization: Bearer {token}",
            url]
    out = subprocess.run(args, capture_output=True, text=True, check=True).stdout
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    errors = (int(non_2xx.group(1)) if non_2xx else 0) + (sum(map(int, sock.groups())) if sock else 0)
    return {"rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),  # type: ignore[union-attr]
            "p50": to_ms(re.search(r"\s50%\s+(\S+)", out).group(1)),  # type: ignore[union-attr]
            "p99": to_ms(re.search(r"\s99%\s+(\S+)", out).group(1)),  # type: ignore[union-attr]
            "errors": errors}


class Children:
    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self, name: str, argv: list[str], env: dict[str, str], ready_url: str) -> subprocess.Popen[bytes]:
        log = (self.workdir / f"{name}.log").open("wb")
        proc = subprocess.Popen(argv, cwd=ROOT, env={**os.environ, **env}, stdout=log, stderr=log)
        self.procs.append(proc)
        wait_http(ready_url, proc)
        return proc

    def stop(self) -> None:
        for proc in reversed(self.procs):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--upstream", choices=["beneficiaries", "trivial"], default="beneficiaries")
    parser.add_argument("--candidates", action="store_true", help="also measure the other proxy designs")
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument("--duration", type=float, default=8.0, help="seconds per measurement")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds; medians are reported")
    parser.add_argument("--serve", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--target", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.serve == "trivial":
        serve_trivial(args.port)
        return
    if args.serve:
        CANDIDATES[args.serve](args.port, args.target)
        return
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is needed: apt-get install wrk")

    from shared.auth import issue_token
    from shared.settings import CommonSettings

    token = issue_token(CommonSettings(), roles=["admin"], sub="bench")
    workdir = Path(tempfile.mkdtemp(prefix="crp-bench-gateway-"))
    tag = uuid.uuid4().hex[:8]
    env = {"CRP_ENV": "dev", "CRP_DATA_DIR": str(workdir), "CRP_NATS_STREAM": f"BENCH{tag}",
           "CRP_SUBJECT_PREFIX": f"bench{tag}", "CRP_LOG_LEVEL": "WARNING"}
    env.pop("CRP_DATABASE_URL", None)
    children = Children(workdir)
    try:
        up_port = free_port()
        upstream = f"http://127.0.0.1:{up_port}"
        if args.upstream == "trivial":
            children.start("upstream", [sys.executable, __file__, "--serve", "trivial", "--port", str(up_port)], env,
                           upstream + "/docs")
            item = str(uuid.uuid4())
        else:
            # Started as `crp dev` starts it.
            children.start("beneficiaries", [
                sys.executable, "-m", "uvicorn", "--factory", "services.beneficiaries.app:create_app",
                "--host", "127.0.0.1", "--port", str(up_port), "--no-access-log", "--log-level", "warning"],
                env, upstream + "/readyz")
            community = request_json("POST", upstream + "/api/v1/communities", token,
                                     {"name": "Bench", "district_pcode": "IQG15Q05"})
            item = request_json("POST", upstream + "/api/v1/beneficiaries", token, {
                "first_name": "Ali", "father_name": "Hassan", "family_name": "Al-Jubouri", "sex": "male",
                "date_of_birth": "1990-05-01", "displacement_status": "returnee", "community_id": community["id"],
                "consent": {"given": True, "obtained_on": "2026-01-10"}})["id"]

        targets: dict[str, str] = {"direct": upstream}
        cpu_pids: dict[str, int] = {}
        gw_port = free_port()
        gw = children.start("gateway", [sys.executable, "-m", "gateway", "--host", "127.0.0.1", "--port", str(gw_port)],
                            {**env, "CRP_UPSTREAMS": json.dumps({"beneficiaries": upstream}),
                             "CRP_RATE_LIMIT_PER_SECOND": "1e9", "CRP_RATE_LIMIT_BURST": "1000000000"},
                            f"http://127.0.0.1:{gw_port}/healthz")
        targets["gateway"], cpu_pids["gateway"] = f"http://127.0.0.1:{gw_port}", gw.pid
        if args.candidates:
            for name in CANDIDATES:
                port = free_port()
                proc = children.start(name.split()[0], [sys.executable, __file__, "--serve", name, "--port", str(port),
                                                        "--target", upstream], env, f"http://127.0.0.1:{port}/")
                targets[name], cpu_pids[name] = f"http://127.0.0.1:{port}", proc.pid

        results: dict[str, list[dict[str, float]]] = {name: [] for name in targets}
        for round_ in range(args.rounds):
            for name, base in targets.items():
                url = base + PATH.format(id=item)
                wrk(url, token, args.connections, 2)  # warm-up
                before = cpu_seconds(cpu_pids[name]) if name in cpu_pids else 0.0
                figures = wrk(url, token, args.connections, args.duration)
                if name in cpu_pids and figures["rps"]:
                    used = cpu_seconds(cpu_pids[name]) - before
                    figures["cpu_us"] = used / (figures["rps"] * args.duration) * 1e6
                results[name].append(figures)
                print(f"  round {round_ + 1} {name:36} {figures['rps']:8.0f} req/s  p50 {figures['p50']:6.2f} ms"
                      f"  p99 {figures['p99']:6.2f} ms  errors {figures['errors']:.0f}", flush=True)

        def median(name: str, key: str) -> float:
            values = [r[key] for r in results[name] if key in r]
            return statistics.median(values) if values else float("nan")

        direct_rps, direct_p99 = median("direct", "rps"), median("direct", "p99")
        print(f"\nGET {PATH} on the {args.upstream} upstream, wrk -t1 -c{args.connections}, {args.duration:g} s, "
              f"median of {args.rounds} rounds, {os.cpu_count()} cores")
        print(f"{'target':36} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'errors':>6} {'ratio':>6} "
              f"{'p99 added':>10} {'proxy CPU/req':>14}")
        for name in targets:
            rps, p50, p99 = median(name, "rps"), median(name, "p50"), median(name, "p99")
            extra = "" if name == "direct" else (f"{rps / direct_rps:6.2f} {p99 - direct_p99:7.2f} ms "
                                                 f"{median(name, 'cpu_us'):10.0f} µs")
            errors = sum(r["errors"] for r in results[name])
            print(f"{name:36} {rps:8.0f} {p50:8.2f} {p99:8.2f} {errors:6.0f} {extra}")
        ratio = median("gateway", "rps") / direct_rps
        added = median("gateway", "p99") - direct_p99
        failed = sum(r["errors"] for r in results["gateway"] + results["direct"])
        verdict = "meets" if ratio >= 0.6 and added <= 10 and not failed else "MISSES"
        print(f"\ngateway: ratio {ratio:.2f} (target >= 0.6), p99 added {added:.2f} ms (target <= 10): "
              f"{verdict} the target")
    finally:
        children.stop()
        shutil.rmtree(workdir, ignore_errors=True)
        if args.upstream == "beneficiaries":
            delete_stream(env["CRP_NATS_STREAM"])


def delete_stream(name: str) -> None:
    """Remove the stream the service created for this run from the (shared) NATS server."""
    import asyncio

    import nats

    async def run() -> None:
        nc = await nats.connect(os.environ.get("CRP_NATS_URL", "nats://127.0.0.1:4222"), connect_timeout=2,
                                max_reconnect_attempts=1)
        try:
            await nc.jetstream().delete_stream(name)
        finally:
            await nc.close()

    try:
        asyncio.run(run())
    except Exception as exc:  # NATS gone or the stream never made: nothing to clean
        print(f"(stream {name} not deleted: {exc!r})")


if __name__ == "__main__":
    main()
