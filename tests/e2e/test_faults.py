"""Faults and load, on real processes this test starts itself (never a server it did not start): kill -9 NATS
during a burst of writes to every service and start it again; kill -9 the indicators service mid-consumption;
kill -9 the writing services between commit and relay; restart a private PostgreSQL cluster under load; a mixed
load through the gateway. After each, nothing acknowledged is lost and the indicators equal the truth recomputed
from the services' own records (`crp indicators reconcile`): zero lost, zero double counted. The figures are
printed (``-s``).

Bounded for CI: a few rounds of each fault and a short load; ``make faults`` (CRP_FAULT_ROUNDS) runs the faults
at full size and ``make load`` the load for minutes.
"""

from __future__ import annotations

import os
import shutil
import signal
import sqlite3
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from bench.load import run_load
from bench.workload import Workload, double_counted, headers, reconcile
from services.cli import Platform, free_port, http_ok, start_nats
from shared import catalog
from tests.e2e.test_platform import free_block

pytestmark = pytest.mark.e2e
ROUNDS = int(os.environ.get("CRP_FAULT_ROUNDS", "3"))
LOAD_SECONDS = float(os.environ.get("CRP_LOAD_SECONDS", "15"))
WRITERS = ("beneficiaries", "grants", "training", "feedback")


class Harness(Platform):
    """``crp dev``'s processes, each of which this test may kill -9 and start again; NATS its own too."""

    def __init__(self, data_dir: Path, env: dict[str, str]) -> None:
        super().__init__(host="127.0.0.1", port=free_block(), data_dir=data_dir)
        self.extra_env = env
        self.spawned: dict[str, tuple[list[str], dict[str, str]]] = {}
        self.nats_port = free_port()
        self.nats_dir = data_dir / "nats"
        self.nats_proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start_nats(self) -> None:
        self.nats_proc, _ = start_nats(self.nats_dir, self.nats_port)

    def kill_nats(self) -> None:
        assert self.nats_proc is not None
        self.nats_proc.send_signal(signal.SIGKILL)
        self.nats_proc.wait(10)

    def start(self) -> None:
        self.start_nats()
        saved = dict(os.environ)
        os.environ.update({"CRP_NATS_URL": f"nats://127.0.0.1:{self.nats_port}", "CRP_RATE_LIMIT_PER_SECOND": "0",
                           **self.extra_env})
        try:
            super().start()
        finally:
            os.environ.clear()
            os.environ.update(saved)
        self.wait_ready(120)

    def _spawn(self, name: str, argv: list[str], env: dict[str, str]) -> None:
        self.spawned[name] = (argv, env)
        super()._spawn(name, argv, env)

    def kill9(self, name: str) -> None:
        proc = dict(self.procs)[name]
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        self.procs = [(n, p) for n, p in self.procs if n != name]

    def restart(self, name: str) -> None:
        super()._spawn(name, *self.spawned[name])
        url = f"http://127.0.0.1:{self.service_port(name)}/readyz"
        deadline = time.monotonic() + 60
        while not http_ok(url):
            assert time.monotonic() < deadline, f"{name} did not come back"
            time.sleep(0.2)

    def wait_gateway(self) -> None:
        """Until the gateway sees every service again (it marks a failing upstream down for a few seconds)."""
        deadline = time.monotonic() + 60
        token = headers()
        for entry in catalog.SERVICES:
            if entry.name not in self.services:
                continue
            while httpx.get(f"{self.url}{entry.prefixes[0]}", headers=token, timeout=10).status_code in (502, 503):
                assert time.monotonic() < deadline, f"the gateway does not route to {entry.name} again"
                time.sleep(0.2)

    def stop(self) -> None:
        super().stop()
        if self.nats_proc is not None and self.nats_proc.poll() is None:
            self.nats_proc.terminate()
            self.nats_proc.wait(10)


@pytest.fixture(scope="module")
def harness(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Harness]:
    running = Harness(tmp_path_factory.mktemp("crp-faults"), {})
    try:
        running.start()
        yield running
    finally:
        running.stop()


def burst(work: Workload, rounds: int, during: Any = None, after_rounds: int = 2) -> None:
    """``rounds`` rounds of the mixed workload in a thread; ``during`` is called once ``after_rounds`` are done."""
    done = threading.Event()
    progress = [0]

    def run() -> None:
        for _ in range(rounds):
            work.mixed()
            progress[0] += 1
        done.set()

    thread = threading.Thread(target=run)
    thread.start()
    if during is not None:
        while progress[0] < min(after_rounds, rounds) and not done.is_set():
            time.sleep(0.05)
        during()
    thread.join(600)
    assert not thread.is_alive()


def check(name: str, harness_url: str, work: Workload) -> None:
    """Zero lost, zero double counted; the figures printed."""
    lost = work.lost()
    started = time.monotonic()
    result = reconcile(harness_url, wait=60)
    exact_after = time.monotonic() - started
    acknowledged = {kind: len(ids) for kind, ids in sorted(work.created.items())}
    errors = {op: dict(e) for op, e in work.stats.errors.items()}
    print(f"\nfault {name}: acknowledged {acknowledged}; lost {len(lost)}; "
          f"double counted {double_counted(result.stdout)}; reconcile exit {result.returncode} "
          f"(figures exact {exact_after:.1f} s after recovery); "
          f"errors answered during the fault (retried) {errors}")
    assert not lost, lost[:10]
    # a fault is answered as one (503, retry), never as a crash
    assert not [op for op, codes in errors.items() if "500" in codes], errors
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]


def test_kill_nats_during_a_burst_of_writes(harness: Harness) -> None:
    work = Workload(harness.url, retry_seconds=60)
    work.setup()

    def fault() -> None:
        harness.kill_nats()
        time.sleep(1.5)  # writes go on meanwhile: they commit with their outbox rows
        harness.start_nats()

    burst(work, ROUNDS, fault)
    assert sum(len(v) for v in work.created.values()) >= ROUNDS
    check("kill -9 NATS", harness.url, work)
    work.close()


def test_kill_the_indicators_service_mid_consumption(harness: Harness) -> None:
    work = Workload(harness.url, retry_seconds=60)
    work.setup()
    burst(work, ROUNDS)  # the events are flowing to the consumer now
    harness.kill9("indicators")
    burst(work, max(2, ROUNDS // 2))  # and more while it is dead
    harness.restart("indicators")
    harness.wait_gateway()
    check("kill -9 indicators", harness.url, work)
    work.close()


def test_kill_services_between_commit_and_relay(harness: Harness) -> None:
    """NATS down: writes commit with their outbox rows but cannot be relayed; every writer is killed -9 with its
    outbox pending, NATS comes back, the writers start again and their relays publish what was pending."""
    work = Workload(harness.url, retry_seconds=60)
    work.setup()
    harness.kill_nats()
    burst(work, max(2, ROUNDS // 2))
    pending = {}
    for name in WRITERS:
        db = sqlite3.connect(harness.data_dir / f"{name}.db")
        try:
            pending[name] = db.execute("SELECT count(*) FROM outbox WHERE published_at IS NULL").fetchone()[0]
        finally:
            db.close()
        harness.kill9(name)
    print(f"\nunpublished outbox rows when killed: {pending}")
    assert pending["beneficiaries"] > 0 and sum(pending.values()) >= len(work.created["beneficiary"])
    harness.start_nats()
    for name in WRITERS:
        harness.restart(name)
    harness.wait_gateway()
    check("kill -9 between commit and relay", harness.url, work)
    work.close()


def test_a_mixed_load_through_the_gateway_loses_nothing_and_leaves_exact_figures(harness: Harness) -> None:
    """Registrations, grants, enrolments with attendance, feedback, activities and reads from four clients at
    once: no server error, every acknowledged record still there, the indicators exact once drained."""
    report = run_load(harness.url, seconds=LOAD_SECONDS, clients=4,
                      indicators_port=harness.service_port("indicators"))
    print()
    report.print(harness.url)
    operations = report.operations
    assert {"register", "grant", "enrolment", "feedback", "read_summary"} <= set(operations), operations.keys()
    assert all(latencies for latencies, _ in operations.values()), operations
    assert not [(op, errors) for op, (_, errors) in operations.items() if errors], operations
    assert not report.lost()
    assert report.reconcile.returncode == 0, report.reconcile.stdout[-3000:] + report.reconcile.stderr[-2000:]
    for work in report.workers:
        work.close()


# -- PostgreSQL ---------------------------------------------------------------------------------------------------
def postgres_binaries() -> Path | None:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    return found[-1].parent if found else None


class PrivatePostgres:
    """A PostgreSQL cluster of our own in a temporary directory on a free port (as the ``postgres`` user when we
    are root: initdb refuses root)."""

    def __init__(self, bin_dir: Path) -> None:
        self.bin = bin_dir
        self.dir = Path(tempfile.mkdtemp(prefix="crp-pg-"))
        self.port = free_port()
        self.as_user: list[str] = []
        if os.geteuid() == 0:
            shutil.chown(self.dir, "postgres")
            self.as_user = ["runuser", "-u", "postgres", "--"]
        self.data = self.dir / "data"
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def run(self, *argv: str) -> None:
        subprocess.run([*self.as_user, *argv], check=True, capture_output=True, timeout=120)

    def init(self) -> None:
        self.run(str(self.bin / "initdb"), "-D", str(self.data), "-A", "trust", "-U", "postgres")
        self.start()

    def start(self) -> None:
        self.run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-w", "-l", str(self.dir / "log"), "-o",
                 f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c max_connections=300", "start")

    def crash_and_restart(self) -> None:
        """Stop at once (an immediate shutdown is a crash: recovery from the WAL at the next start), then start."""
        self.run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w", "stop")
        time.sleep(1.0)
        self.start()

    def destroy(self) -> None:
        try:
            self.run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop")
        except subprocess.CalledProcessError:
            pass
        shutil.rmtree(self.dir, ignore_errors=True)


def test_restart_postgresql_under_load(tmp_path: Path) -> None:
    bin_dir = postgres_binaries()
    if bin_dir is None or (os.geteuid() == 0 and shutil.which("runuser") is None):
        pytest.skip("no Debian PostgreSQL binaries (or no way to run initdb as a non-root user)")
    pg = PrivatePostgres(bin_dir)
    pg.init()
    running = Harness(tmp_path / "platform", {"CRP_DATABASE_URL": pg.url})
    try:
        running.start()
        work = Workload(running.url, retry_seconds=90)
        work.setup()
        burst(work, ROUNDS, pg.crash_and_restart)
        ready = httpx.get(f"{running.url}/readyz", timeout=10)
        assert ready.status_code == 200, ready.text
        check("PostgreSQL crash and restart", running.url, work)
        work.close()
    finally:
        running.stop()
        pg.destroy()
