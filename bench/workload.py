"""A mixed workload through the gateway, shared by `bench/load.py` and the fault tests (tests/e2e/test_faults.py):
registrations, grants (submitted, approved, disbursed), enrolments with attendance and completion, feedback,
community activities, and reads. Every write that was answered 2xx is remembered, so a test can check that
none was lost (it is still there) and that the indicators equal the truth (`crp indicators reconcile`)."""

from __future__ import annotations

import itertools
import random
import subprocess
import threading
import time
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from shared.auth import issue_token
from shared.settings import CommonSettings

ROOT = Path(__file__).resolve().parents[1]
TODAY = time.strftime("%Y-%m-%d", time.gmtime())
DISTRICTS = ("IQG15Q05", "IQG15Q06", "IQG01Q01")


def headers(*roles: str) -> dict[str, str]:
    token = issue_token(CommonSettings(), roles=roles or ("admin", "psea_focal_point"), governorates=["*"],
                        sub=f"load-{uuid.uuid4().hex[:6]}", ttl_seconds=4 * 3600)
    return {"Authorization": f"Bearer {token}"}


@dataclass
class Stats:
    """Per operation: latencies of the answered requests, and the errors (status or exception name)."""

    latencies: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    errors: dict[str, dict[str, int]] = field(default_factory=lambda: defaultdict(lambda: defaultdict(int)))
    lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, op: str, seconds: float, error: str | None) -> None:
        with self.lock:
            if error is None:
                self.latencies[op].append(seconds)
            else:
                self.errors[op][error] += 1


class Workload:
    """The platform's write paths, one call each; ``created`` keeps every acknowledged record by kind."""

    def __init__(self, url: str, *, retry_seconds: float = 0.0) -> None:
        self.url = url
        self.client = httpx.Client(base_url=url, headers=headers(), timeout=30)
        self.retry_seconds = retry_seconds  # keep retrying a write this long (idempotency keys make it safe)
        self.created: dict[str, list[str]] = defaultdict(list)
        self.stats = Stats()
        self._lock = threading.Lock()
        self._counter = itertools.count()
        self.communities: list[str] = []
        self.course: str | None = None
        self.projects: list[str] = []

    def close(self) -> None:
        self.client.close()

    def call(self, op: str, method: str, path: str, body: dict[str, Any] | None = None,
             expect: tuple[int, ...] = (200, 201)) -> dict[str, Any] | None:
        """One request; retried with the same ``Idempotency-Key`` while ``retry_seconds`` allow (a fault)."""
        key = uuid.uuid4().hex
        deadline = time.monotonic() + (self.retry_seconds if method == "POST" else 0.0)  # reads are not retried
        while True:
            started = time.perf_counter()
            error: str | None
            try:
                resp = self.client.request(method, path, json=body,
                                           headers={"Idempotency-Key": key} if method == "POST" else None)
                error = None if resp.status_code in expect else str(resp.status_code)
            except httpx.HTTPError as exc:
                resp, error = None, type(exc).__name__
            self.stats.record(op, time.perf_counter() - started, error)
            if error is None and resp is not None:
                return resp.json() if resp.content else {}
            if time.monotonic() > deadline or (resp is not None and resp.status_code < 500
                                               and resp.status_code != 429):
                return None
            time.sleep(0.2)

    def _remember(self, kind: str, body: dict[str, Any] | None) -> str | None:
        if body is None:
            return None
        with self._lock:
            self.created[kind].append(body["id"])
        return str(body["id"])

    # -- setup --------------------------------------------------------------------------------------------
    def setup(self) -> None:
        for district in DISTRICTS:
            body = self.call("community", "POST", "/api/v1/communities",
                             {"name": f"Load {district} {uuid.uuid4().hex[:6]}", "district_pcode": district})
            assert body is not None, "the platform does not take a community"
            self.communities.append(body["id"])
        course = self.call("course", "POST", "/api/v1/courses", {
            "title": "Load course", "skill_area": "tailoring", "community_id": self.communities[0],
            "start_date": "2026-11-01", "end_date": "2026-12-20", "capacity": 1000, "planned_sessions": 1000,
            "completion_threshold": 0})
        assert course is not None
        self.course = course["id"]

    # -- operations -----------------------------------------------------------------------------------------
    def register(self) -> str | None:
        n = next(self._counter)
        body = self.call("register", "POST", "/api/v1/beneficiaries", {
            "first_name": f"Load{uuid.uuid4().hex[:10]}", "father_name": f"F{n}",
            "sex": random.choice(["female", "male"]),
            "date_of_birth": f"{1950 + n % 50}-{1 + n % 12:02d}-{1 + n % 28:02d}",
            "displacement_status": random.choice(["idp", "returnee", "host_community"]),
            "community_id": random.choice(self.communities), "consent": {"given": True, "obtained_on": "2026-11-01"},
            "confirm_not_duplicate": True})
        return self._remember("beneficiary", body)

    def grant(self, person: str) -> str | None:
        body = self.call("grant", "POST", "/api/v1/grants", {
            "beneficiary_id": person, "business_name": "Load shop", "sector": "food",
            "amount_requested": "500.00", "currency": "USD"})
        grant = self._remember("grant", body)
        if grant is None:
            return None
        if self.call("grant_approval", "POST", f"/api/v1/grants/{grant}/approval",
                     {"amount_approved": "500.00"}) is not None:
            self._remember("disbursement", self.call("disbursement", "POST", f"/api/v1/grants/{grant}/disbursements",
                                                     {"amount": "500.00", "disbursed_on": TODAY}))
        return grant

    def enrol(self, person: str) -> str | None:
        enrolment = self._remember("enrolment", self.call(
            "enrolment", "POST", f"/api/v1/courses/{self.course}/enrolments", {"beneficiary_id": person}))
        if enrolment is not None:
            self.call("attendance", "POST", f"/api/v1/courses/{self.course}/attendance", {
                "session": 1 + next(self._counter) % 1000, "held_on": TODAY,
                "records": [{"enrolment_id": enrolment, "present": True}]})
            self.call("completion", "POST", f"/api/v1/enrolments/{enrolment}/completion", {"completed_on": TODAY})
        return enrolment

    def feedback(self) -> str | None:
        return self._remember("feedback", self.call("feedback", "POST", "/api/v1/feedback", {
            "channel": "hotline", "category": random.choice(["minor_dissatisfaction", "information_request"]),
            "description": "Load test feedback", "community_id": random.choice(self.communities),
            "anonymous": True}))

    def activity(self) -> str | None:
        return self._remember("activity", self.call("activity", "POST", "/api/v1/community-activities", {
            "kind": "reconciliation", "community_id": random.choice(self.communities), "held_on": TODAY,
            "participants": {"total": 10, "female": 5, "male": 5}}))

    def read(self) -> None:
        for op, path in (("read_summary", "/api/v1/indicators/summary"),
                         ("read_beneficiaries", "/api/v1/beneficiaries?limit=20"),
                         ("read_grants", "/api/v1/grants?limit=20")):
            self.call(op, "GET", path, expect=(200,))

    def mixed(self) -> None:
        """One round of the mix: a registration, then that person's grant or training, feedback, an activity,
        reads."""
        person = self.register()
        if person is not None:
            (self.grant if random.random() < 0.5 else self.enrol)(person)
        if random.random() < 0.5:
            self.feedback()
        if random.random() < 0.2:
            self.activity()
        self.read()

    # -- checks ---------------------------------------------------------------------------------------------
    def lost(self) -> list[tuple[str, str]]:
        """Acknowledged records that are not there any more."""
        paths = {"beneficiary": "/api/v1/beneficiaries/{}", "grant": "/api/v1/grants/{}",
                 "enrolment": "/api/v1/enrolments/{}", "feedback": "/api/v1/feedback/{}",
                 "activity": "/api/v1/community-activities/{}"}
        missing = []
        for kind, ids in self.created.items():
            if kind not in paths:
                continue
            for id_ in ids:
                resp = self.client.get(paths[kind].format(id_))
                if resp.status_code != 200:
                    missing.append((kind, id_))
        return missing


def reconcile(url: str, wait: float = 30.0) -> subprocess.CompletedProcess[str]:
    """`crp indicators reconcile` on the platform at ``url`` (exit 0: the indicators equal the sources)."""
    import sys

    return subprocess.run([sys.executable, "-m", "services.cli", "indicators", "reconcile", "--url", url,
                           "--wait", str(wait)], cwd=ROOT, capture_output=True, text=True, timeout=300)


def double_counted(output: str) -> int:
    """From reconcile's report: how much the indicators exceed the sources, summed over differing figures."""
    total = 0
    for line in output.splitlines():
        if line.startswith("reconcile:") and "difference(s)" in line:
            for part in line.split(": ", 2)[-1].split(", "):
                words = part.split()
                try:
                    sources, indicators = float(words[-3]), float(words[-1])
                except (ValueError, IndexError):
                    continue
                total += max(0, indicators - sources)
    return int(total)
