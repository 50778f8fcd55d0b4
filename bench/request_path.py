"""The request path of a service: what a request costs beyond the work, on SQLite and on PostgreSQL.

Directly on the beneficiaries service (no gateway), started the way production starts it
(``shared.server``), in one run per backend: ``/healthz``, ``GET /api/v1/beneficiaries/{id}``,
``GET /api/v1/beneficiaries?limit=50`` and registration (``POST /api/v1/beneficiaries``: duplicate
detection, audit, outbox row and its event to JetStream), each as req/s and as a ratio to ``/healthz``
measured in the same run, in interleaved rounds (median ratios; targets on a 2-core machine: GET >= 0.30, list >=
0.10, registration >= 0.10).
Then registration again with 1,000 and with 50,000 people already registered across the country
(seeded straight into the database): the second should keep at least 0.8 of the first.

    .venv/bin/python bench/request_path.py [--backend sqlite --backend postgresql]
        [--database-url postgresql://postgres@127.0.0.1:5432/test] [--nats-url nats://127.0.0.1:4222]
        [--duration 5] [--connections 16] [--populations 1000,50000] [--workers 1] [--main-rounds 3]

Needs ``wrk``. Registration uses a wrk Lua script that sends a made-up person per request (16
connections, one community, as field teams register after a distribution day).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from datetime import date
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

REGISTER_LUA = r"""
local counter = 0
local syllables = {"ba","da","fa","ga","ha","ja","ka","la","ma","na","ra","sa","ta","wa","za","bi","di","fi",
                   "ki","li","mi","ni","ri","si","ti","bu","du","ku","lu","mu","nu","ru","su","tu","zu"}
local function name()
  local parts = {}
  for i = 1, 4 do parts[i] = syllables[math.random(#syllables)] end
  return table.concat(parts)
end
init = function(args)
  math.randomseed(os.time() + tonumber(args[1] or "0"))
  wrk.headers["Content-Type"] = "application/json"
end
request = function()
  counter = counter + 1
  local body = string.format('{"first_name":"%s","father_name":"%s","grandfather_name":"%s","sex":"%s",' ..
    '"date_of_birth":"%d-0%d-1%d","displacement_status":"returnee","community_id":"COMMUNITY",' ..
    '"consent":{"given":true,"obtained_on":"2026-11-01"}}',
    name(), name(), name(), (counter % 2 == 0) and "male" or "female", 1940 + math.random(0, 65),
    math.random(1, 9), math.random(0, 9))
  return wrk.format("POST", "/api/v1/beneficiaries", nil, body)
end
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def to_ms(value: str) -> float:
    number, unit = re.fullmatch(r"([\d.]+)(us|ms|s)", value).groups()  # type: ignore[union-attr]
    return float(number) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def wrk(url: str, token: str, connections: int, duration: float, script: Path | None = None) -> dict[str, float]:
    args = ["wrk", "-t1", f"-c{connections}", f"-d{max(1, round(duration))}s", "--latency",
            "-H", f"Authorization: Bearer {token}"]
    if script is not None:
        args += ["-s", str(script)]
    out = subprocess.run([*args, url], capture_output=True, text=True, check=True).stdout
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    errors = (int(non_2xx.group(1)) if non_2xx else 0) + (sum(map(int, sock.groups())) if sock else 0)
    return {"rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),  # type: ignore[union-attr]
            "p99": to_ms(re.search(r"\s99%\s+(\S+)", out).group(1)),  # type: ignore[union-attr]
            "errors": errors}


def request_json(method: str, url: str, token: str, body: dict[str, Any] | None = None) -> Any:
    req = urllib.request.Request(url, data=json.dumps(body).encode() if body is not None else None, method=method,
                                 headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as resp:  # noqa: S310 (loopback only)
        return json.loads(resp.read())


def wait_ready(url: str, proc: subprocess.Popen[bytes], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"the service exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=1):  # noqa: S310 (loopback only)
                return
        except (OSError, urllib.error.HTTPError):
            time.sleep(0.2)
    raise SystemExit(f"{url} not ready within {timeout}s")


def service_argv(port: int, workers: int) -> list[str]:
    """`crp serve` as production runs it, or (code from before it existed) uvicorn as `crp dev` ran it."""
    try:
        from shared.server import serve_argv  # noqa: F401
    except ImportError:
        from shared.server import UVICORN_ARGS
        return [sys.executable, "-m", "uvicorn", "--factory", "services.beneficiaries.app:create_app",
                "--host", "127.0.0.1", "--port", str(port), "--no-access-log", "--log-level", "warning", *UVICORN_ARGS]
    return [sys.executable, "-m", "services.cli", "serve", "beneficiaries", "--host", "127.0.0.1", "--port", str(port),
            "--workers", str(workers)]


# -- seeding people straight into the database -------------------------------------------------------------
def seed(settings: Any, people: int, rng: random.Random) -> None:
    """``people`` made-up registrations spread over every district of Iraq, written with Core in batches."""
    from sqlalchemy import insert

    from services.beneficiaries import gazetteer, matching
    from services.beneficiaries.models import Beneficiary, Community
    from shared.db import create_engine, utcnow

    syllables = "ba da fa ga ha ja ka la ma na ra sa ta wa za bi di fi ki li mi ni ri si ti bu du ku lu mu".split()

    def name() -> str:
        return "".join(rng.choice(syllables) for _ in range(4)).capitalize()

    districts = [d for g in gazetteer.governorates() for d in gazetteer.districts(g.pcode)]
    has_blocking = hasattr(Beneficiary, "blocking_key")

    async def run() -> None:
        engine = create_engine(settings)
        try:
            communities = [dict(id=str(uuid.uuid4()), name=f"Seed {d.pcode}", district_pcode=d.pcode,
                                governorate_pcode=d.parent_pcode, created_at=utcnow()) for d in districts]
            async with engine.begin() as conn:
                await conn.execute(insert(Community), communities)
            batch: list[dict[str, Any]] = []
            for i in range(people):
                c = communities[i % len(communities)]
                person = matching.PersonName(first_name=name(), father_name=name(), grandfather_name=name())
                born = date(rng.randint(1940, 2005), rng.randint(1, 12), rng.randint(1, 28))
                now = utcnow()
                row = dict(id=str(uuid.uuid4()), first_name=person.first_name, father_name=person.father_name,
                           grandfather_name=person.grandfather_name, family_name=None,
                           search_key=matching.search_key(person), sex=rng.choice(("female", "male")),
                           date_of_birth=born, birth_year=born.year, displacement_status="returnee",
                           community_id=c["id"], household_id=None, district_pcode=c["district_pcode"],
                           governorate_pcode=c["governorate_pcode"], phone=None, national_id_hash=None,
                           national_id_key=None, disability=None, consent_obtained_on=date(2026, 1, 1),
                           merged_into_id=None, created_at=now, updated_at=now, version=1)
                if has_blocking:
                    row["blocking_key"] = matching.blocking_key(person)
                batch.append(row)
                if len(batch) == 5000:
                    async with engine.begin() as conn:
                        await conn.execute(insert(Beneficiary), batch)
                    batch = []
            if batch:
                async with engine.begin() as conn:
                    await conn.execute(insert(Beneficiary), batch)
        finally:
            await engine.dispose()

    asyncio.run(run())


def delete_stream(nats_url: str, name: str) -> None:
    import nats

    async def run() -> None:
        nc = await nats.connect(nats_url, connect_timeout=2, max_reconnect_attempts=1)
        try:
            await nc.jetstream().delete_stream(name)
        finally:
            await nc.close()

    try:
        asyncio.run(run())
    except Exception as exc:
        print(f"(stream {name} not deleted: {exc!r})")


def analyze(database_url: str, schema: str) -> None:
    """PostgreSQL statistics for the service's tables, as autovacuum keeps them in production. A table just created
    has none: the planner then guesses one row for ``merged_into_id IS NULL`` and sorts the whole register for a
    page of the list (3.7 ms at 2,000 people, growing with them) instead of reading the index in order (0.1 ms)."""
    import asyncpg

    async def run() -> None:
        conn = await asyncpg.connect(database_url, server_settings={"search_path": schema})
        try:
            await conn.execute("ANALYZE")
        finally:
            await conn.close()

    asyncio.run(run())


def drop_schema(database_url: str, schema: str) -> None:
    import asyncpg

    async def run() -> None:
        conn = await asyncpg.connect(database_url)
        try:
            await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        finally:
            await conn.close()

    asyncio.run(run())


class Service:
    """One beneficiaries process on a fresh database and its own stream."""

    def __init__(self, backend: str, args: argparse.Namespace, workdir: Path) -> None:
        from services.beneficiaries.config import BeneficiariesSettings

        tag = uuid.uuid4().hex[:8]
        self.backend, self.args, self.workdir = backend, args, workdir
        self.stream, self.schema = f"BENCHRP{tag}", f"bench_rp_{tag}"
        self.env = {"CRP_ENV": "dev", "CRP_DATA_DIR": str(workdir / tag), "CRP_NATS_URL": args.nats_url,
                    "CRP_NATS_STREAM": self.stream, "CRP_SUBJECT_PREFIX": f"benchrp{tag}", "CRP_LOG_LEVEL": "WARNING"}
        if backend == "postgresql":
            self.env.update(CRP_DATABASE_URL=args.database_url, CRP_DATABASE_SCHEMA=self.schema)
        self.settings = BeneficiariesSettings(**{k.removeprefix("CRP_").lower(): v for k, v in self.env.items()})
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("CRP_")} | self.env
        log = (self.workdir / f"service-{self.backend}.log").open("ab")
        self.proc = subprocess.Popen(service_argv(self.port, self.args.workers), cwd=ROOT, env=env, stdout=log,
                                     stderr=log)
        wait_ready(self.url + "/readyz", self.proc)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()

    def cleanup(self) -> None:
        delete_stream(self.args.nats_url, self.stream)
        if self.backend == "postgresql":
            drop_schema(self.args.database_url, self.schema)


def measure(service: Service, token: str, args: argparse.Namespace, workdir: Path,
            rng: random.Random) -> dict[str, dict[str, float]]:
    base = service.url
    community = request_json("POST", base + "/api/v1/communities", token,
                             {"name": "Bench", "district_pcode": "IQG15Q05"})["id"]
    ids = []
    for i in range(60):
        ids.append(request_json("POST", base + "/api/v1/beneficiaries", token, {
            "first_name": f"Person{i}x", "father_name": f"Father{i}y", "sex": "female",
            "date_of_birth": f"{1950 + i}-02-03", "displacement_status": "idp", "community_id": community,
            "consent": {"given": True, "obtained_on": "2026-01-10"}})["id"])
    if service.backend == "postgresql":
        analyze(args.database_url, service.schema)
    script = workdir / f"register-{uuid.uuid4().hex[:6]}.lua"
    script.write_text(REGISTER_LUA.replace("COMMUNITY", community))
    targets = {"/healthz": (base + "/healthz", None, args.connections),
               "GET /beneficiaries/{id}": (f"{base}/api/v1/beneficiaries/{ids[0]}", None, args.connections),
               "GET /beneficiaries?limit=50": (f"{base}/api/v1/beneficiaries?limit=50", None, args.connections),
               "POST /beneficiaries": (base + "/api/v1/beneficiaries", script, 16)}
    for url, lua, connections in targets.values():
        wrk(url, token, connections, 2, lua)  # warm-up
    # Interleaved rounds, each measuring /healthz next to the operations: on a machine shared with other work,
    # a moment of load then falls on both sides of a ratio, and the median ratio of the rounds is reported.
    rounds: dict[str, list[dict[str, float]]] = {name: [] for name in targets}
    for _ in range(args.main_rounds):
        for name, (url, lua, connections) in targets.items():
            rounds[name].append(wrk(url, token, connections, args.duration, lua))
    results: dict[str, dict[str, float]] = {}
    for name, measured in rounds.items():
        results[name] = {key: statistics.median(r[key] for r in measured) for key in ("rps", "p99")}
        results[name]["errors"] = sum(r["errors"] for r in measured)
        results[name]["ratio"] = statistics.median(
            r["rps"] / h["rps"] for r, h in zip(measured, rounds["/healthz"], strict=True))
    return results


def registration_at(backend: str, token: str, args: argparse.Namespace, workdir: Path,
                    rng: random.Random) -> dict[int, dict[str, float]]:
    """Registration req/s with each of ``populations`` people already registered nationwide: one service per
    population (seeded straight into its database), measured in interleaved rounds (medians), so that a moment
    of load on this shared machine does not fall on one population only."""
    running: list[tuple[int, Service, Path]] = []
    try:
        for population in args.populations:
            service = Service(backend, args, workdir)
            running.append((population, service, Path()))
            service.start()
            seed(service.settings, population, rng)
            community = request_json("POST", service.url + "/api/v1/communities", token,
                                     {"name": "Bench", "district_pcode": "IQG15Q05"})["id"]
            script = workdir / f"register-{uuid.uuid4().hex[:6]}.lua"
            script.write_text(REGISTER_LUA.replace("COMMUNITY", community))
            running[-1] = (population, service, script)
        rounds: dict[int, list[dict[str, float]]] = {population: [] for population, _, _ in running}
        for _ in range(args.rounds):
            for population, service, script in running:
                healthz = wrk(service.url + "/healthz", token, args.connections, 2)
                wrk(service.url + "/api/v1/beneficiaries", token, 16, 1, script)
                figures = wrk(service.url + "/api/v1/beneficiaries", token, 16, args.duration, script)
                figures["healthz"] = healthz["rps"]
                rounds[population].append(figures)
        return {population: {key: statistics.median(r[key] for r in results) for key in ("rps", "healthz", "errors")}
                for population, results in rounds.items()}
    finally:
        for _, service, _ in running:
            service.stop()
            service.cleanup()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backend", action="append", choices=["sqlite", "postgresql"])
    parser.add_argument("--database-url", default=os.environ.get("CRP_TEST_POSTGRES_URL",
                                                                 "postgresql://postgres@127.0.0.1:5432/test"))
    parser.add_argument("--nats-url", default=os.environ.get("CRP_TEST_NATS_URL", "nats://127.0.0.1:4222"))
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--workers", type=int, default=1, help="service worker processes")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds of the population figures")
    parser.add_argument("--main-rounds", type=int, default=3,
                        help="interleaved rounds of /healthz and the operations (median ratios)")
    parser.add_argument("--populations", type=lambda v: [int(x) for x in v.split(",") if x], default=[1000, 50000],
                        help="comma-separated; empty to skip")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is needed: apt-get install wrk")
    backends = args.backend or ["sqlite", "postgresql"]

    from shared.auth import issue_token
    from shared.settings import CommonSettings

    token = issue_token(CommonSettings(), roles=["admin"], sub="bench")
    workdir = Path(tempfile.mkdtemp(prefix="crp-bench-rp-"))
    rng = random.Random(20261129)
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}, {os.cpu_count()} cores, "
          f"wrk -t1 -c{args.connections} (registration -c16), {args.duration:g} s per figure, "
          f"{args.workers} worker(s)", flush=True)
    try:
        for backend in backends:
            service = Service(backend, args, workdir)
            try:
                service.start()
                results = measure(service, token, args, workdir, rng)
                print(f"\n{backend}: operation (median of {args.main_rounds} rounds)  req/s   ratio to /healthz   "
                      "p99 ms  errors")
                for name, figures in results.items():
                    print(f"{backend}: {name:28} {figures['rps']:8.0f} {figures['ratio']:10.3f} "
                          f"{figures['p99']:14.1f} {figures['errors']:7.0f}", flush=True)
            finally:
                service.stop()
                service.cleanup()
            if args.populations:
                at = registration_at(backend, token, args, workdir, rng)
                first = at[args.populations[0]]["rps"]
                print(f"{backend}: registration, median of {args.rounds} interleaved rounds:")
                for population, figures in at.items():
                    print(f"{backend}: registration with {population:>6} registered: {figures['rps']:7.0f} "
                          f"req/s (/healthz {figures['healthz']:.0f}, "
                          f"ratio {figures['rps'] / figures['healthz']:.3f}), {figures['rps'] / first:.2f} of the "
                          f"first, errors {figures['errors']:.0f}", flush=True)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
        print(f"\nload average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
