"""deploy/Dockerfile: linted with hadolint, and the shape the issue asks for (no Docker engine is needed for
either). What the image installs is the project's wheel: its contents are checked here too."""

from __future__ import annotations

import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from shared import catalog
from tests.deploy.conftest import DEPLOY, ROOT, tool

DOCKERFILE = DEPLOY / "Dockerfile"


def stages() -> list[list[str]]:
    """The Dockerfile's instructions (continuation lines joined), split into stages."""
    lines = re.sub(r"\\\n", " ", DOCKERFILE.read_text()).splitlines()
    instructions = [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]
    found: list[list[str]] = []
    for instruction in instructions:
        if instruction.upper().startswith("FROM "):
            found.append([])
        found[-1].append(instruction)
    return found


def test_hadolint_finds_nothing() -> None:
    result = subprocess.run([tool("hadolint"), "--failure-threshold", "info", "--no-color", str(DOCKERFILE)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_hadolint_is_really_checking(tmp_path: Path) -> None:
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN apt-get install gcc\n")
    result = subprocess.run([tool("hadolint"), "--no-color", str(bad)], capture_output=True, text=True, timeout=60)
    assert result.returncode != 0 and "DL3007" in result.stdout


def test_multi_stage_slim_non_root_with_a_healthcheck() -> None:
    build, runtime = stages()
    assert build[0].startswith("FROM python:3.11-slim") and build[0].endswith(" AS build")
    assert runtime[0].startswith("FROM python:3.11-slim")
    final = "\n".join(runtime)
    # Nothing is compiled, in either stage: wheels only, and no compiler or package manager installs.
    assert "--only-binary=:all:" in "\n".join(build)
    assert not re.search(r"apt-get|apk add|gcc|build-essential", "\n".join(build) + final)
    assert "COPY --from=build /opt/crp /opt/crp" in final
    user = [line for line in runtime if line.startswith("USER ")]
    assert user == ["USER 10001:10001"]
    assert re.search(r'HEALTHCHECK .* CMD \["crp", "probe"\]', final)
    assert runtime[-1] == 'CMD ["crp", "serve", "gateway", "--host", "0.0.0.0"]'


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> zipfile.ZipFile:
    """The wheel `pip install .` builds in the image's first stage."""
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet",
                    "--wheel-dir", str(out), str(ROOT)], check=True, capture_output=True, timeout=300)
    (path,) = out.glob("crp_platform-*.whl")
    return zipfile.ZipFile(path)


def test_the_wheel_holds_what_every_process_needs_at_run_time(wheel: zipfile.ZipFile) -> None:
    names = set(wheel.namelist())
    for name in catalog.built():
        versions = catalog.load(name).versions
        for revision in versions.glob("*.py"):
            assert f"services/{name}/migrations/versions/{revision.name}" in names, revision
        assert f"services/{name}/app.py" in names
    for revision in (ROOT / "gateway" / "migrations" / "versions").glob("*.py"):
        assert f"gateway/migrations/versions/{revision.name}" in names
    for data in (ROOT / "shared" / "alembic_env").iterdir():
        if data.is_file():
            assert f"shared/alembic_env/{data.name}" in names
    for data in (ROOT / "services" / "beneficiaries" / "data").glob("*.csv"):
        assert f"services/beneficiaries/data/{data.name}" in names
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    assert "crp = services.cli:main" in wheel.read(entry_points).decode()
