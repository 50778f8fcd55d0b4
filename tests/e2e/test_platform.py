"""End to end: `crp dev` starts the real processes (NATS, services, gateway); we talk through the gateway."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from shared.catalog import NAMES, built

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]
CRP = [sys.executable, "-m", "services.cli"]


def free_block(size: int = len(NAMES) + 1) -> int:
    """A base port P such that P..P+size-1 are all free."""
    for _ in range(200):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            base = s.getsockname()[1]
        if base + size >= 65535:
            continue
        try:
            socks = []
            for port in range(base, base + size):
                sock = socket.socket()
                sock.bind(("127.0.0.1", port))
                socks.append(sock)
            return base
        except OSError:
            continue
        finally:
            for sock in socks:
                sock.close()
    raise RuntimeError("no free port block")


class RunningPlatform:
    def __init__(self, proc: subprocess.Popen[str], port: int, output: list[str], data_dir: Path) -> None:
        self.data_dir = data_dir
        self.proc = proc
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.output = output


def start_platform(data_dir: Path, **env_extra: str) -> RunningPlatform:
    """``crp dev`` as a user runs it (the embedded defaults, plus ``env_extra``), once it says it is ready.

    Another process on the machine can take a port of the block between ``free_block`` and the bind: then the
    platform is started again on another block (at most three times); any other early exit fails at once."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CRP_")}
    env.update(env_extra)
    for attempt in range(3):
        port = free_block()
        proc = subprocess.Popen([*CRP, "dev", "--port", str(port), "--data-dir", str(data_dir)], cwd=ROOT, env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        output: list[str] = []
        deadline = time.monotonic() + 120
        assert proc.stdout is not None
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line and proc.poll() is not None:
                logs = "".join(p.read_text()[-3000:] for p in (data_dir / "logs").glob("*.log"))
                if "address already in use" in logs and attempt < 2:
                    for log in (data_dir / "logs").glob("*.log"):
                        log.unlink()
                    break
                raise AssertionError(f"crp dev exited early: {''.join(output)}\n{logs}")
            output.append(line)
            if line.startswith("Press Ctrl-C"):
                return RunningPlatform(proc, port, output, data_dir)
        else:
            return RunningPlatform(proc, port, output, data_dir)
    raise AssertionError("crp dev could not bind a free port block three times")


def stop_platform(running: RunningPlatform) -> None:
    if running.proc.poll() is None:
        running.proc.send_signal(signal.SIGTERM)
        running.proc.wait(30)


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningPlatform]:
    running = start_platform(tmp_path_factory.mktemp("crp-dev"))
    yield running
    stop_platform(running)


@contextmanager
def platform_with_own_nats(data_dir: Path, stream: str, **env_extra: str) -> Iterator[tuple[RunningPlatform, str]]:
    """The platform on a NATS server of the test's own (so its stream can be read afterwards): (platform, NATS
    URL)."""
    from services.cli import start_nats

    nats_proc, nats_url = start_nats(data_dir)
    try:
        running = start_platform(data_dir, CRP_NATS_URL=nats_url, CRP_NATS_STREAM=stream, **env_extra)
        try:
            yield running, nats_url
        finally:
            stop_platform(running)
    finally:
        nats_proc.terminate()
        nats_proc.wait(10)


async def stream_messages(nats_url: str, stream: str) -> list[dict[str, Any]]:
    """Every event on ``stream``, in order, as JSON."""
    import nats

    nc = await nats.connect(nats_url)
    try:
        js = nc.jetstream()
        last = (await js.stream_info(stream)).state.last_seq
        return [json.loads((await js.get_msg(stream, seq)).data or b"{}") for seq in range(1, last + 1)]
    finally:
        await nc.close()


def token(*roles: str, governorates: tuple[str, ...] = ()) -> str:
    argv = [*CRP, "token", *(a for r in roles for a in ("--role", r)),
            *(a for g in governorates for a in ("--governorate", g))]
    return subprocess.run(argv, cwd=ROOT, check=True, capture_output=True, text=True).stdout.strip()


def auth(*roles: str, **kw: Any) -> dict[str, str]:
    return {"Authorization": f"Bearer {token(*roles, **kw)}"}


def wait_for(check: Any, timeout: float = 10.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout}s; last {value!r}")
        time.sleep(0.05)


def test_dev_prints_every_url(platform: RunningPlatform) -> None:
    text = "".join(platform.output)
    assert f"gateway        http://127.0.0.1:{platform.port}" in text
    for offset, name in enumerate(NAMES, start=1):
        assert re.search(rf"{name}\s+(http://127.0.0.1:{platform.port + offset}|not built yet)", text), name
    assert f"beneficiaries  http://127.0.0.1:{platform.port + 1}" in text


def test_register_through_gateway_moves_indicators(platform: RunningPlatform) -> None:
    headers = auth("programme_manager")
    with httpx.Client(base_url=platform.url, headers=headers, timeout=10) as client:
        before = client.get("/api/v1/indicators/summary").json()["beneficiaries_registered"]
        community = client.post("/api/v1/communities", json={"name": "Tel Kaif", "district_pcode": "IQG15Q06"})
        assert community.status_code == 201, community.text
        community_id = community.json()["id"]
        assert community.json()["governorate_pcode"] == "IQG15"
        ids = []
        for i in range(5):
            resp = client.post("/api/v1/beneficiaries", json={
                "first_name": f"Person{i}", "father_name": f"Father{i}", "sex": "female",
                "date_of_birth": f"19{70 + i}-05-05", "displacement_status": "idp", "community_id": community_id,
                "consent": {"given": True, "obtained_on": "2026-11-20"}})
            assert resp.status_code == 201, resp.text
            assert resp.headers["x-request-id"]
            ids.append(resp.json()["id"])
        started = time.monotonic()
        wait_for(lambda: client.get("/api/v1/indicators/summary").json()["beneficiaries_registered"] == before + 5)
        lag = time.monotonic() - started
        assert lag < 10  # the contract's 2 s is measured by bench/register.py, not asserted here
        duplicate = client.post("/api/v1/beneficiaries", json={
            "first_name": "person0", "father_name": "Father0", "sex": "female", "date_of_birth": "1970-01-01",
            "displacement_status": "idp", "community_id": community_id,
            "consent": {"given": True, "obtained_on": "2026-11-20"}})
        assert duplicate.status_code == 409 and duplicate.json()["candidates"][0]["id"] == ids[0]
        assert client.get(f"/api/v1/beneficiaries/{ids[0]}", headers={"X-Request-ID": "e2e-42"}
                          ).headers["x-request-id"] == "e2e-42"


def test_gateway_guards_and_contract(platform: RunningPlatform) -> None:
    with httpx.Client(base_url=platform.url, timeout=10) as client:
        unauthorised = client.get("/api/v1/beneficiaries")
        assert unauthorised.status_code == 401
        assert unauthorised.headers["content-type"].startswith("application/problem+json")
        public = client.get("/api/v1/public/indicators/summary")
        assert public.status_code == 200 and "individuals_directly_assisted" in public.json()
        scoped = auth("case_worker", governorates=("IQG01",))
        assert client.get("/api/v1/beneficiaries", headers=scoped).status_code == 200
        from shared.catalog import SERVICES

        for entry in SERVICES:
            if entry.name not in built():  # a service not built yet answers 503
                missing = client.get(entry.prefixes[0], headers=auth("programme_manager"))
                assert missing.status_code == 503
                assert missing.headers["content-type"].startswith("application/problem+json")
        spec = client.get("/openapi.json").json()
        assert "/api/v1/beneficiaries" in spec["paths"] and "/api/v1/indicators/summary" in spec["paths"]
        assert "/api/v1/grants/{grant_id}/disbursements" in spec["paths"]
        ready = client.get("/readyz")  # every service that exists is up
        assert ready.status_code == 200, ready.text


def test_demo_data_loads_through_the_gateway(platform: RunningPlatform) -> None:
    from services.demo import ACTIVITIES, COMMUNITIES, FEEDBACK, GRANTS, PEOPLE, PROJECTS, load_demo

    headers = auth("me_officer")

    def summary() -> dict[str, Any]:
        return httpx.get(f"{platform.url}/api/v1/indicators/summary", headers=headers).json()

    before = summary()
    message = load_demo(platform.url)
    paid = {person for person, *_, tranches in GRANTS if tranches}
    trained = {0, 1, 2}  # the demo course: the first four people enrol, the fourth stays below the threshold
    completed = [body for *_, body, steps in PROJECTS if "completed" in {status for status, *_ in steps}]
    assert message == (f"demo data: {len(COMMUNITIES)} communities, {len(PEOPLE)} people registered, "
                       f"{len(GRANTS)} grants approved, {len(paid)} disbursed, {len(trained)} trainings completed, "
                       f"{len(FEEDBACK)} feedback cases, {len(ACTIVITIES)} community activities, "
                       f"{len(completed)} infrastructure projects completed")
    expected = {"beneficiaries_registered": before["beneficiaries_registered"] + len(PEOPLE),
                "individuals_directly_assisted": before["individuals_directly_assisted"] + len(paid | trained),
                "grants_disbursed": before["grants_disbursed"] + len(paid),
                "trainings_completed": before["trainings_completed"] + len(trained),
                "feedback_received": before["feedback_received"] + len(FEEDBACK),
                "resource_centres_active": before["resource_centres_active"] + len(COMMUNITIES),
                "community_activity_participants": before["community_activity_participants"]
                + sum(a[3] for a in ACTIVITIES),
                "projects_completed": before["projects_completed"] + len(completed),
                "individuals_benefiting_from_infrastructure": before["individuals_benefiting_from_infrastructure"]
                + sum(body["catchment_population"] for body in completed)}
    wait_for(lambda: {k: summary()[k] for k in expected} == expected)
    assert load_demo(platform.url) == message  # loading again replays (Idempotency-Key), adds nobody
    time.sleep(0.5)  # a second copy of any event would have been counted by now
    assert {k: summary()[k] for k in expected} == expected


def test_readme_curl_examples_work_verbatim(platform: RunningPlatform) -> None:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Try it", 1)[1]
    script = section.split("```bash\n", 1)[1].split("```", 1)[0]
    script = script.replace("127.0.0.1:8000", f"127.0.0.1:{platform.port}")
    env = {k: v for k, v in os.environ.items() if not k.startswith("CRP_")}
    before = httpx.get(f"{platform.url}/api/v1/indicators/summary", headers=auth("me_officer")
                       ).json()["beneficiaries_registered"]
    result = subprocess.run(["bash", "-euo", "pipefail", "-c", script], cwd=ROOT, env=env, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert '"governorate_pcode":"IQG15"' in out  # the registration
    assert "urn:crp:problem:probable-duplicate" in out
    assert '"beneficiaries_registered"' in out and '"individuals_directly_assisted"' in out
    bodies, decoder, at = [], json.JSONDecoder(), 0
    while (at := out.find("{", at)) != -1:
        body, at = decoder.raw_decode(out, at)
        bodies.append(body)
    summary = next(b for b in bodies if "individuals_directly_assisted" in b)
    assert summary["beneficiaries_registered"] == before + 1  # the example shows the person it registered


def _stream_events(platform: RunningPlatform, subjects: str) -> list[bytes]:
    """Every message on the platform's stream under ``subjects``, raw (read from the NATS `crp dev` started)."""
    import asyncio

    import nats

    log = (platform.data_dir / "nats.log").read_text()
    port = re.findall(r"Listening for client connections on 127\.0\.0\.1:(\d+)", log)[-1]

    async def read() -> list[bytes]:
        nc = await nats.connect(f"nats://127.0.0.1:{port}", connect_timeout=5)
        try:
            js = nc.jetstream()
            sub = await js.pull_subscribe(subjects, stream="CRP")
            found: list[bytes] = []
            for _ in range(100):  # until the consumer has nothing pending (bounded)
                pending = (await sub.consumer_info()).num_pending
                if not pending:
                    return found
                try:
                    batch = await sub.fetch(min(pending, 100), timeout=5)
                except (TimeoutError, nats.errors.TimeoutError):
                    continue
                for msg in batch:
                    found.append(msg.data)
                    await msg.ack()
            raise AssertionError("the stream could not be read to its end")
        finally:
            await nc.close()

    return asyncio.run(read())


def test_grant_through_the_gateway_moves_directly_assisted(platform: RunningPlatform) -> None:
    """Register, apply, approve, disburse through the gateway: the person becomes directly assisted, and the
    grant events on the stream carry no personal data."""
    headers = auth("programme_manager")
    with httpx.Client(base_url=platform.url, headers=headers, timeout=10) as client:
        def summary() -> dict[str, Any]:
            return client.get("/api/v1/indicators/summary").json()

        before = summary()
        community = client.post("/api/v1/communities", json={"name": "Bashiqa", "district_pcode": "IQG15Q05"})
        assert community.status_code == 201, community.text
        person = client.post("/api/v1/beneficiaries", json={
            "first_name": "Khadija", "father_name": "Yaqoub", "grandfather_name": "Elias", "sex": "female",
            "date_of_birth": "1984-08-19", "displacement_status": "returnee", "phone": "+964 750 987 6543",
            "national_id": "19840819-7788", "community_id": community.json()["id"],
            "consent": {"given": True, "obtained_on": "2026-11-20"}})
        assert person.status_code == 201, person.text
        grant = client.post("/api/v1/grants", json={
            "beneficiary_id": person.json()["id"], "business_name": "Khadija's Olive Press", "sector": "olive oil",
            "amount_requested": "2400.00", "currency": "USD"})
        assert grant.status_code == 201 and grant.json()["status"] == "submitted", grant.text
        grant_id = grant.json()["id"]
        approved = client.post(f"/api/v1/grants/{grant_id}/approval", json={"amount_approved": "2400.00"})
        assert approved.status_code == 200 and approved.json()["status"] == "approved", approved.text
        today = time.strftime("%Y-%m-%d", time.gmtime())
        paid = client.post(f"/api/v1/grants/{grant_id}/disbursements", json={"amount": "2400.00",
                                                                             "disbursed_on": today},
                           headers={"Idempotency-Key": f"e2e-{grant_id}"})
        assert paid.status_code == 201, paid.text
        assert client.get(f"/api/v1/grants/{grant_id}").json()["status"] == "fully_disbursed"
        wait_for(lambda: summary()["individuals_directly_assisted"] == before["individuals_directly_assisted"] + 1)
        after = summary()
        assert after["grants_disbursed"] == before["grants_disbursed"] + 1
        assert after["grant_amounts_disbursed"]["USD"] == before["grant_amounts_disbursed"].get("USD", 0) + 2400

    events = [json.loads(raw) for raw in _stream_events(platform, "crp.grants.>")]
    mine = [e for e in events if e["data"].get("grant_id") == grant_id]
    assert {e["type"] for e in mine} == {"crp.grants.grant.submitted.v1", "crp.grants.grant.approved.v1",
                                         "crp.grants.disbursement.made.v1"}
    raw = json.dumps(mine, ensure_ascii=False)
    for personal in ("Khadija", "Yaqoub", "Elias", "Olive Press", "750 987", "19840819-7788", "1984-08-19"):
        assert personal not in raw


def test_sigterm_stops_everything(platform: RunningPlatform) -> None:
    platform.proc.send_signal(signal.SIGTERM)
    assert platform.proc.wait(30) == 0
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{platform.url}/healthz", timeout=2)
    for offset in range(1, len(NAMES) + 1):
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"http://127.0.0.1:{platform.port + offset}/healthz", timeout=2)
