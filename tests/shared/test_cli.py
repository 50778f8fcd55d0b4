"""`crp token` and `crp migrate` as an operator runs them."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

from alembic.script import ScriptDirectory

from shared import catalog
from shared.auth import TokenVerifier
from shared.migrations import alembic_config
from shared.settings import CommonSettings


def crp(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("CRP_")}
    return subprocess.run([sys.executable, "-m", "services.cli", *args], env={**base, **(env or {})},
                          capture_output=True, text=True, timeout=60)


def test_token_carries_role_scope_and_subject() -> None:
    result = crp("token", "--role", "case_worker", "--role", "viewer", "--governorate", "IQG15", "--sub", "amina")
    assert result.returncode == 0, result.stderr
    principal = TokenVerifier(CommonSettings()).verify_sync(result.stdout.strip())
    assert principal.sub == "amina" and principal.roles == {"case_worker", "viewer"}
    assert principal.governorates == {"IQG15"}


def test_token_refuses_unknown_roles_and_governorates() -> None:
    for argv in (["--role", "superuser"], ["--role", "viewer", "--governorate", "IQG19"],
                 ["--role", "viewer", "--governorate", "IQG15Q05"], ["--role", "viewer", "--governorate", "iqg15"]):
        result = crp("token", *argv)
        assert result.returncode == 2 and not result.stdout, argv
        assert "invalid choice" in result.stderr or "unknown governorate" in result.stderr, result.stderr
    every = crp("token", "--role", "admin", "--governorate", "*")
    assert every.returncode == 0, every.stderr
    assert TokenVerifier(CommonSettings()).verify_sync(every.stdout.strip()).all_governorates


def test_migrate_creates_each_service_database(tmp_path: Path) -> None:
    result = crp("migrate", env={"CRP_DATA_DIR": str(tmp_path)})
    assert result.returncode == 0, result.stderr
    tables = {"beneficiaries": "beneficiaries", "grants": "grants", "training": "courses", "infrastructure": "projects",
              "indicators": "persons"}
    for service, table in tables.items():
        if service not in catalog.built():
            continue
        head = ScriptDirectory.from_config(alembic_config(catalog.load(service).versions)).get_current_head()
        with sqlite3.connect(tmp_path / f"{service}.db") as db:
            assert db.execute("select version_num from alembic_version").fetchone() == (head,)
            assert db.execute(f"select count(*) from {table}").fetchone() == (0,)
    again = crp("migrate", env={"CRP_DATA_DIR": str(tmp_path)})  # idempotent
    assert again.returncode == 0, again.stderr


def _serve(env: dict[str, str], *argv: str) -> tuple[subprocess.Popen[str], str]:
    from services.cli import free_port, wait_port

    port = free_port()
    base = {k: v for k, v in os.environ.items() if not k.startswith("CRP_")}
    proc = subprocess.Popen([sys.executable, "-m", "services.cli", "serve", "beneficiaries", "--host", "127.0.0.1",
                             "--port", str(port), *argv], env={**base, **env}, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    if not wait_port("127.0.0.1", port, 60):
        proc.kill()
        raise AssertionError(proc.communicate()[1])
    return proc, f"http://127.0.0.1:{port}"


def test_serve_migrates_once_and_serves_the_service(tmp_path: Path, nats_url: str) -> None:
    import json
    import urllib.request

    env = {"CRP_DATA_DIR": str(tmp_path), "CRP_NATS_URL": nats_url, "CRP_NATS_STREAM": f"SERVE{tmp_path.name[-6:]}",
           "CRP_SUBJECT_PREFIX": "servetest"}
    # On SQLite a second worker is refused (one outbox relay per database): one process serves.
    proc, url = _serve(env, "--workers", "2")
    try:
        with urllib.request.urlopen(f"{url}/healthz", timeout=5) as resp:  # noqa: S310 (loopback)
            assert json.load(resp) == {"status": "ok"}
        head = ScriptDirectory.from_config(alembic_config(catalog.load("beneficiaries").versions)).get_current_head()
        with sqlite3.connect(tmp_path / "beneficiaries.db") as db:
            assert db.execute("select version_num from alembic_version").fetchone() == (head,)
    finally:
        proc.terminate()
        _, stderr = proc.communicate(timeout=30)
    assert "one worker" in stderr
    assert proc.returncode in (0, -15), stderr  # uvicorn shuts down cleanly, then re-raises SIGTERM
    assert "Traceback" not in stderr, stderr
