"""End to end on real processes (`crp dev`: NATS, every service, the gateway): `crp demo --scale tiny` loads the
programme through the API and the public dashboard, rendered by headless Chromium, shows the API's figures;
`crp indicators reconcile` finds no difference after register / grant / training, and reports one after the
projection is tampered with; dead letters are listed and replayed with `crp indicators dead-letters`.

Chromium is driven with its own command line (``--headless --dump-dom`` and ``--screenshot``): no driver, no
protocol client, nothing to install but the browser. ``--virtual-time-budget`` lets the page's fetches finish
before the DOM is dumped. The screenshot is kept under ``artifacts/`` (git-ignored).
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import sqlite3
import subprocess
import time
import uuid
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import httpx
import nats
import pytest

from services.demo_scale import Plan
from shared.catalog import built
from shared.events.beneficiaries import BeneficiaryRegistered
from tests.e2e.test_platform import CRP, ROOT, RunningPlatform, auth, start_platform, stop_platform, wait_for
from tests.pipeline.test_outbox_consumer import registered_event

pytestmark = pytest.mark.e2e
ARTIFACTS = ROOT / "artifacts"


def chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        if found := shutil.which(name):
            return found
    return "/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningPlatform]:
    running = start_platform(tmp_path_factory.mktemp("crp-dev-ops"))
    yield running
    stop_platform(running)


def crp(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CRP_")}
    return subprocess.run([*CRP, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)


def public(platform: RunningPlatform, path: str) -> dict[str, Any]:
    resp = httpx.get(f"{platform.url}/api/v1/public/indicators{path}", timeout=10)
    assert resp.status_code == 200, resp.text
    return resp.json()


class Dom(HTMLParser):
    """The figures a rendered page shows: ``data-figure`` elements (with the governorate row they sit in), chart
    bars, and the body's ``data-ready``."""

    def __init__(self) -> None:
        super().__init__()
        self.figures: dict[tuple[str | None, str], str] = {}
        self.bars: dict[tuple[str, str], str] = {}
        self.ready: str | None = None
        self._row: str | None = None
        self._chart: str | None = None
        self._bar: str | None = None
        self._open: tuple[str | None, str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "body":
            self.ready = a.get("data-ready")
        if tag == "tr":
            self._row = a.get("data-pcode")
        if tag == "figure" and a.get("data-by"):
            self._chart = a["data-by"]
        if tag == "div" and "bar" == a.get("class"):
            self._bar = a.get("data-key")
        if tag == "span" and a.get("class") == "value" and self._chart and self._bar is not None:
            self.bars[(self._chart, self._bar)] = a.get("data-value") or ""
        if a.get("data-figure"):
            self._open = (self._row, a["data-figure"] or "")
            self.figures[self._open] = ""

    def handle_data(self, data: str) -> None:
        if self._open is not None:
            self.figures[self._open] += data

    def handle_endtag(self, tag: str) -> None:
        if tag in ("span", "td"):
            self._open = None
        if tag == "tr":
            self._row = None


def render(url: str, profile: Path, screenshot: Path | None = None) -> str:
    binary = chromium()
    assert binary is not None
    common = [binary, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
              f"--user-data-dir={profile}", "--virtual-time-budget=30000", "--window-size=1280,1900"]
    if screenshot is not None:
        subprocess.run([*common, f"--screenshot={screenshot}", url], capture_output=True, timeout=120, check=True)
    done = subprocess.run([*common, "--dump-dom", url], capture_output=True, text=True, timeout=120, check=True)
    return done.stdout


def test_demo_at_scale_then_the_dashboard_shows_the_apis_figures(platform: RunningPlatform, tmp_path: Path) -> None:
    plan = Plan.of("tiny")
    result = crp("demo", "--scale", "tiny", "--url", platform.url, "--workers", "8")
    assert result.returncode == 0, result.stderr[-3000:]
    out = result.stdout
    assert re.search(rf"people directly assisted: {plan.people:,} of {plan.people:,} \(100%\)", out)
    assert re.search(rf"loaded {plan.people:,} people directly assisted .* in {plan.communities} communities, .* "
                     r"in \d+ s", out), out
    if "infrastructure" not in built():
        assert "infrastructure: the service is not available (503)" in out
    infrastructure = plan.infrastructure if "infrastructure" in built() else 0
    expected = {"individuals_directly_assisted": plan.people, "communities_reached": plan.communities,
                "individuals_benefiting_from_infrastructure": infrastructure}
    wait_for(lambda: {k: public(platform, "/summary")[k] for k in expected} == expected, timeout=60)

    if chromium() is None:
        pytest.skip("no Chromium binary (apt-get install chromium): the dashboard cannot be rendered here")
    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "dashboard.png"
    dom = Dom()
    dom.feed(render(f"{platform.url}/", tmp_path / "chromium", screenshot=shot))
    assert dom.ready == "true", "the page did not load its figures"
    assert shot.stat().st_size > 10_000

    summary = public(platform, "/summary")
    for key in expected:  # the three headline figures, as the page shows them
        assert dom.figures[(None, key)] == shown(summary[key])
    for pcode in ("IQG15", "IQG01", "IQG16", "IQG02"):  # the table, against the API per governorate
        place = public(platform, f"/summary?governorate={pcode}")
        for key in expected:
            assert dom.figures[(pcode, key)] == shown(place[key]), (pcode, key)
    assert dom.figures[("IQG15", "individuals_directly_assisted")] != "0"
    for by in ("sex", "age_group", "displacement_status"):  # the charts
        items = public(platform, f"/breakdown?indicator=individuals_directly_assisted&by={by}")["items"]
        assert items
        assert {k: v for (chart, k), v in dom.bars.items() if chart == by} == \
               {str(i[by]): str(i["value"]) if i["value"] is not None else "null" for i in items}


def shown(value: int | None) -> str:
    """A figure as the dashboard shows it: suppressed (null) as a dash."""
    return "–" if value is None else f"{value:,}"


def test_dashboard_is_served_with_its_own_policy(platform: RunningPlatform) -> None:
    page = httpx.get(f"{platform.url}/", timeout=10)
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    csp = page.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "connect-src 'self'" in csp and "unsafe-inline" not in csp
    assert page.headers["x-frame-options"] == "DENY" and page.headers["x-content-type-options"] == "nosniff"
    assert re.findall(r'(?:src|href)="(/dashboard/[^"]+)"', page.text) == ["/dashboard/dashboard.css",
                                                                              "/dashboard/dashboard.js"]
    assert "http" not in re.sub(r"<!--.*?-->", "", page.text).split("<footer>")[0]  # nothing from another origin
    script = httpx.get(f"{platform.url}/dashboard/dashboard.js", timeout=10)
    assert script.headers["content-type"].startswith("text/javascript") and "/api/v1/public/indicators" in script.text
    again = httpx.get(f"{platform.url}/dashboard/dashboard.js", headers={"If-None-Match": script.headers["etag"]})
    assert again.status_code == 304
    missing = httpx.get(f"{platform.url}/dashboard/secrets.txt", timeout=10)
    assert missing.status_code == 404 and missing.headers["content-type"] == "application/problem+json"
    api = httpx.get(f"{platform.url}/api/v1/beneficiaries", timeout=10)  # /api/... is routed as before
    assert api.status_code == 401 and api.headers["content-security-policy"].startswith("default-src 'none'")


def _assisted_through_the_gateway(platform: RunningPlatform) -> None:
    """Register three people; one gets a grant disbursed, the others complete a training; the third turns out to
    be the first registered again and is merged into them (two people directly assisted, not three)."""
    today = time.strftime("%Y-%m-%d", time.gmtime())
    with httpx.Client(base_url=platform.url, headers=auth("programme_manager"), timeout=10) as client:
        community = client.post("/api/v1/communities", json={"name": "Hammam al-Alil", "district_pcode": "IQG15Q05"})
        assert community.status_code == 201, community.text
        people = []
        for first, sex in (("Rana", "female"), ("Ziyad", "male"), ("Rana", "female")):
            resp = client.post("/api/v1/beneficiaries", json={
                "first_name": f"{first}{uuid.uuid4().hex[:4]}", "father_name": "Faris", "sex": sex,
                "date_of_birth": "1990-03-03", "displacement_status": "returnee",
                "community_id": community.json()["id"], "confirm_not_duplicate": True,
                "consent": {"given": True, "obtained_on": "2026-11-01"}})
            assert resp.status_code == 201, resp.text
            people.append(resp.json()["id"])
        grant = client.post("/api/v1/grants", json={"beneficiary_id": people[0], "business_name": "Sewing shop",
                                                     "sector": "garments", "amount_requested": "900.00",
                                                     "currency": "USD"})
        assert grant.status_code == 201, grant.text
        assert client.post(f"/api/v1/grants/{grant.json()['id']}/approval",
                           json={"amount_approved": "900.00"}).status_code == 200
        paid = client.post(f"/api/v1/grants/{grant.json()['id']}/disbursements",
                           json={"amount": "900.00", "disbursed_on": today})
        assert paid.status_code == 201, paid.text
        course = client.post("/api/v1/courses", json={
            "title": "Mobile phone repair", "skill_area": "phone_repair", "community_id": community.json()["id"],
            "start_date": "2026-10-01", "end_date": today, "capacity": 5, "completion_threshold": 0})
        assert course.status_code == 201, course.text
        for person in people[1:]:
            enrolment = client.post(f"/api/v1/courses/{course.json()['id']}/enrolments",
                                    json={"beneficiary_id": person})
            assert enrolment.status_code == 201, enrolment.text
            done = client.post(f"/api/v1/enrolments/{enrolment.json()['id']}/completion",
                               json={"completed_on": today})
            assert done.status_code == 200, done.text
        merged = client.post(f"/api/v1/beneficiaries/{people[0]}/merge", json={"duplicate_id": people[2]})
        assert merged.status_code == 200, merged.text


def test_reconcile_finds_no_difference_then_reports_a_tampered_projection(platform: RunningPlatform) -> None:
    before = public(platform, "/summary")["individuals_directly_assisted"]
    _assisted_through_the_gateway(platform)
    wait_for(lambda: public(platform, "/summary")["individuals_directly_assisted"] == before + 2, timeout=30)

    clean = crp("indicators", "reconcile", "--url", platform.url, "--wait", "20")
    assert clean.returncode == 0, clean.stdout + clean.stderr
    assert "reconcile: no difference" in clean.stdout
    for figure in ("individuals_directly_assisted", "beneficiaries_registered", "grants_disbursed",
                   "trainings_completed", "communities_reached", "grant_amounts_disbursed"):
        assert re.search(rf"^{figure}\s+\S", clean.stdout, re.M), figure
    assert "DIFFERENT" not in clean.stdout
    if "infrastructure" not in built():  # plugged in, skipped while absent
        assert re.search(r"^individuals_benefiting_from_infrastructure\s+not compared: the infrastructure service "
                         r"is not available", clean.stdout, re.M)

    # Tamper with the projection: one person disappears from the counts table the summary reads.
    db = sqlite3.connect(platform.data_dir / "indicators.db", isolation_level=None)
    try:
        row = db.execute("SELECT rowid FROM reach_cells WHERE people > 0 LIMIT 1").fetchone()
        assert row is not None
        db.execute("UPDATE reach_cells SET people = people - 1 WHERE rowid = ?", row)
        tampered = crp("indicators", "reconcile", "--url", platform.url, "--wait", "0")
        assert tampered.returncode == 1, tampered.stdout + tampered.stderr
        line = next(x for x in tampered.stdout.splitlines() if x.startswith("individuals_directly_assisted"))
        assert line.endswith("DIFFERENT")
        sources, indicators = (int(n) for n in line.split()[1:3])
        assert sources == indicators + 1
        assert "reconcile: 1 difference(s)" in tampered.stdout or "difference(s): " in tampered.stdout
        db.execute("UPDATE reach_cells SET people = people + 1 WHERE rowid = ?", row)
    finally:
        db.close()
    restored = crp("indicators", "reconcile", "--url", platform.url, "--wait", "0")
    assert restored.returncode == 0, restored.stdout


def _platform_nats(platform: RunningPlatform) -> str:
    log = (platform.data_dir / "nats.log").read_text()
    port = re.findall(r"Listening for client connections on 127\.0\.0\.1:(\d+)", log)[-1]
    return f"nats://127.0.0.1:{port}"


def test_dead_letters_are_listed_and_replayed_from_the_command_line(platform: RunningPlatform) -> None:
    broken = registered_event()
    broken.data.pop("sex")  # a payload the projection cannot apply

    async def publish() -> None:
        nc = await nats.connect(_platform_nats(platform))
        try:
            await nc.jetstream().publish(BeneficiaryRegistered.subject("crp"), broken.model_dump_json().encode(),
                                         headers={"Nats-Msg-Id": broken.id})
        finally:
            await nc.close()

    asyncio.run(publish())
    letters = wait_for(lambda: [d for d in httpx.get(f"{platform.url}/api/v1/indicators/dead-letters",
                                                     headers=auth("admin")).json()
                                if d["event_id"] == broken.id], timeout=60)
    assert httpx.get(f"{platform.url}/api/v1/indicators/dead-letters",
                     headers=auth("me_officer")).status_code == 403
    listed = crp("indicators", "dead-letters", "--url", platform.url)
    assert listed.returncode == 0, listed.stderr
    assert broken.id in listed.stdout and "crp.beneficiaries.beneficiary.registered.v1" in listed.stdout
    still_broken = crp("indicators", "dead-letters", "--url", platform.url, "--replay", str(letters[0]["id"]))
    assert still_broken.returncode == 1 and "422" in still_broken.stderr  # kept for inspection
    assert broken.id in crp("indicators", "dead-letters", "--url", platform.url).stdout

    # A dead letter whose cause has gone (a transient failure) replays into the projection.
    good = registered_event(governorate_pcode="IQG18", district_pcode="IQG18Q01")
    db = sqlite3.connect(platform.data_dir / "indicators.db", isolation_level=None)
    try:
        db.execute("INSERT INTO dead_letters (event_id, subject, payload, error, deliveries, created_at) "
                   "VALUES (?, ?, ?, ?, ?, ?)", (good.id, BeneficiaryRegistered.subject("crp"),
                                                 good.model_dump_json(), "OperationalError: database is locked", 5,
                                                 "2026-11-29 00:00:00.000000"))
        (good_id,) = db.execute("SELECT id FROM dead_letters WHERE event_id = ?", (good.id,)).fetchone()
    finally:
        db.close()
    before = httpx.get(f"{platform.url}/api/v1/indicators/summary?governorate=IQG18",
                       headers=auth("me_officer")).json()["beneficiaries_registered"]
    replayed = crp("indicators", "dead-letters", "--url", platform.url, "--replay", str(good_id))
    assert replayed.returncode == 0, replayed.stderr
    assert f"dead letter {good_id}: replayed, applied" in replayed.stdout
    after = httpx.get(f"{platform.url}/api/v1/indicators/summary?governorate=IQG18",
                      headers=auth("me_officer")).json()["beneficiaries_registered"]
    assert after == before + 1
    assert good.id not in crp("indicators", "dead-letters", "--url", platform.url).stdout
