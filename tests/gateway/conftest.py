"""Gateway tests run real processes: test upstreams and the gateway itself (``python -m gateway``)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from shared.auth import issue_token
from shared.server import UVICORN_ARGS
from shared.settings import CommonSettings

ROOT = Path(__file__).resolve().parents[2]
PORTAL = "https://portal.example.org"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def token(*roles: str, sub: str = "tester", governorates: tuple[str, ...] = ("*",)) -> dict[str, str]:
    return {"Authorization": "Bearer " + issue_token(CommonSettings(), roles=roles, governorates=governorates,
                                                     sub=sub)}


class Process:
    """A child process serving HTTP on ``port``; ready once ``GET ready_path`` answers."""

    def __init__(self, args: list[str], port: int, env: dict[str, str], log: Path, ready_path: str) -> None:
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.log = log
        self.proc = subprocess.Popen(args, cwd=ROOT, env={**os.environ, **env}, stdout=log.open("wb"),
                                     stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{args} exited:\n{log.read_text()[-3000:]}")
            try:
                if httpx.get(self.url + ready_path, timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"{args} did not start:\n{log.read_text()[-3000:]}")
            time.sleep(0.1)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()


def start_upstream(name: str, tmp: Path) -> Process:
    port = free_port()
    args = [sys.executable, "-m", "uvicorn", "--factory", "tests.gateway.upstream_app:create_app",
            "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning", *UVICORN_ARGS]
    return Process(args, port, {"UPSTREAM_NAME": name}, tmp / f"upstream-{name}.log", "/readyz")


def start_gateway(tmp: Path, upstreams: dict[str, str], port: int | None = None, **settings: object) -> Process:
    port = port or free_port()
    env = {"CRP_ENV": "dev", "CRP_DATA_DIR": str(tmp), "CRP_UPSTREAMS": json.dumps(upstreams),
           "CRP_DATABASE_URL": "", "CRP_LOG_LEVEL": "WARNING"}
    env.update({f"CRP_{k.upper()}": v if isinstance(v, str) else json.dumps(v) for k, v in settings.items()})
    if not env["CRP_DATABASE_URL"]:
        del env["CRP_DATABASE_URL"]
    return Process([sys.executable, "-m", "gateway", "--host", "127.0.0.1", "--port", str(port)], port, env,
                   tmp / f"gateway-{port}.log", "/healthz")


@pytest.fixture(scope="session")
def upstreams(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Process]]:
    tmp = tmp_path_factory.mktemp("upstreams")
    procs = {"alpha": start_upstream("alpha", tmp), "beta": start_upstream("beta", tmp)}
    yield procs
    for proc in procs.values():
        proc.stop()


@pytest.fixture(scope="session")
def dead_url() -> str:
    """A URL nothing listens on."""
    return f"http://127.0.0.1:{free_port()}"


@pytest.fixture(scope="session")
def gateway(upstreams: dict[str, Process], dead_url: str, tmp_path_factory: pytest.TempPathFactory
            ) -> Iterator[Process]:
    """beneficiaries -> alpha, indicators -> beta, grants -> nothing listening, the rest not configured."""
    proc = start_gateway(
        tmp_path_factory.mktemp("gateway"),
        {"beneficiaries": upstreams["alpha"].url, "indicators": upstreams["beta"].url, "grants": dead_url},
        read_timeout_seconds=1, max_body_bytes=100_000, cors_origins=[PORTAL],
        rate_limit_per_second=1000, rate_limit_burst=1000, down_after_failures=3, down_seconds=30,
    )
    yield proc
    proc.stop()


@pytest.fixture
def client(gateway: Process) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=gateway.url, timeout=10) as c:
        yield c


@pytest.fixture(scope="session")
def limited(upstreams: dict[str, Process], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Process]:
    """A gateway with a small rate limit (3 at once, then one every 10 s), every service on alpha."""
    names = ("beneficiaries", "grants", "training", "infrastructure", "feedback", "indicators")
    proc = start_gateway(tmp_path_factory.mktemp("limited"), {n: upstreams["alpha"].url for n in names},
                         rate_limit_per_second=0.1, rate_limit_burst=3)
    yield proc
    proc.stop()
