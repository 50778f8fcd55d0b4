"""The documentation that ships with the code: every relative link resolves, and what the operations guide
tells an operator to type matches the platform (its services, the `crp` commands, compose's services)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from services.cli import main
from shared import catalog
from tests.deploy.conftest import ROOT

DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_relative_links_resolve(doc: Path) -> None:
    for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", doc.read_text()):
        if "://" not in target:
            assert (doc.parent / target).exists(), f"{doc.name} links to missing {target}"


def test_the_guides_are_linked_from_the_readme() -> None:
    readme = (ROOT / "README.md").read_text()
    for guide in ("docs/CONTRACT.md", "docs/portal-guide.md", "docs/integrator-guide.md", "docs/operations.md"):
        assert f"]({guide})" in readme
    assert "make dev" in readme and "make test" in readme and "rm -rf .crp" in readme


def test_the_backup_loop_dumps_every_database() -> None:
    guide = (ROOT / "docs" / "operations.md").read_text()
    (loop,) = re.findall(r"^for db in ([a-z ]+); do$", guide, flags=re.MULTILINE)
    assert loop.split() == [*catalog.NAMES, "gateway"]


def test_every_crp_command_in_the_docs_exists() -> None:
    text = "\n".join(doc.read_text() for doc in DOCS)
    # `crp <command>`, not `kubectl -n crp ...` nor `cd crp`
    commands = set(re.findall(r"(?<!-n )(?<!cd )\bcrp ((?:indicators |stream |pii )?[a-z][a-z-]*[a-z])\b", text))
    assert {"migrate", "serve", "probe", "token", "stream backup", "stream restore", "indicators rebuild"} <= commands
    for command in commands:
        with pytest.raises(SystemExit) as exit_:
            main([*command.split(), "--help"])
        assert exit_.value.code == 0, command
