"""Fuzz the merged OpenAPI through the gateway with schemathesis, with valid tokens of several roles (and scopes):
no 5xx, and every response matches the schema its operation documents (error responses included, where they are
documented). Prints one line per role and exits non-zero on any failure.

    .venv/bin/python bench/fuzz.py [--url http://127.0.0.1:8000] [--examples 25] [--coverage]

Without --url it starts its own `crp dev` in a temporary folder. The test suite runs a small version
(tests/e2e/test_hardening.py); `make fuzz` runs the larger one.
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.register import start_platform  # noqa: E402
from shared.auth import issue_token  # noqa: E402
from shared.settings import CommonSettings  # noqa: E402

# Who fuzzes: everyone with every right, a field worker scoped to one governorate, a read-only viewer, a partner.
PROFILES: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "admin": (("admin", "psea_focal_point"), ("*",)),
    "case_worker@IQG15": (("case_worker",), ("IQG15",)),
    "viewer": (("viewer",), ("*",)),
    "partner_system": (("partner_system",), ("*",)),
}
CHECKS = "not_a_server_error,response_schema_conformance"


def fuzz(url: str, *, examples: int, coverage: bool = False, profiles: list[str] | None = None,
         seed: int | None = None) -> tuple[bool, list[str]]:
    """Run schemathesis once per profile; (all passed, one summary line per profile)."""
    ok, lines = True, []
    schemathesis = Path(sys.executable).with_name("schemathesis")
    for name in profiles or list(PROFILES):
        roles, governorates = PROFILES[name]
        token = issue_token(CommonSettings(), roles=roles, governorates=governorates, sub=f"fuzz-{name}")
        phases = "examples,coverage,fuzzing" if coverage else "examples,fuzzing"
        argv = [str(schemathesis), "run", f"{url}/openapi.json", "-H", f"Authorization: Bearer {token}",
                "-n", str(examples), "-c", CHECKS, "--phases", phases, "--max-failures", "20",
                "--request-timeout", "30", "--warnings", "off", "--seed", str(seed if seed is not None else 1)]
        started = time.monotonic()
        with tempfile.TemporaryDirectory() as scratch:  # its cache and reports stay out of the checkout
            result = subprocess.run(argv, cwd=scratch, capture_output=True, text=True, timeout=3600,
                                    env={**os.environ, "NO_COLOR": "1"})
        generated = re.findall(r"(\d+) generated, (.*)", result.stdout)
        summary = f"{generated[-1][0]} cases: {generated[-1][1]}" if generated else "no summary"
        lines.append(f"fuzz {name:<18} {summary} in {time.monotonic() - started:.0f} s (exit {result.returncode})")
        if result.returncode != 0:
            ok = False
            lines.append(result.stdout[-6000:])
    return ok, lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", help="a running gateway; default: start crp dev")
    parser.add_argument("--examples", type=int, default=25, help="examples per operation and profile")
    parser.add_argument("--coverage", action="store_true", help="also schemathesis' coverage phase (boundaries)")
    parser.add_argument("--seed", type=int, default=None)
    args = parser.parse_args()
    proc = None
    url = args.url
    if not url:
        proc, url = start_platform(None)
    try:
        ok, lines = fuzz(url, examples=args.examples, coverage=args.coverage, seed=args.seed)
        print("\n".join(lines), flush=True)
    finally:
        if proc is not None:
            proc.send_signal(signal.SIGTERM)
            proc.wait(30)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
