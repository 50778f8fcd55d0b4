"""`crp demo --scale seed`: the programme at its published scale, loaded through the public API (the gateway).

"More than 41,000 Iraqis directly assisted, 498,142 benefited from infrastructure rehabilitation, more than
280 communities reached" (the programme's own page). ``seed`` loads 41,200 people directly assisted (a
disbursed small-business grant for most, a completed vocational training for one in twelve: the training
service queues enrolments on the course row, which makes it the slowest path), in 284
communities spread over the districts of nine governorates where the programme works, and completed
infrastructure projects whose catchment populations add up to 498,142. Smaller scales keep the proportions.

Everything goes through the same endpoints as any client, one request per record, with an ``Idempotency-Key``
derived from the scale and the record, so a load that is interrupted and run again adds nothing twice.
``workers`` clients run side by side, each as its own client (its own token subject), so that each stays
within the gateway's per-client rate limit. Infrastructure projects come from the infrastructure service
(``POST /api/v1/infrastructure-projects``, then ``planned → in_progress → completed``); while that service is
not part of the platform (503) that part is skipped with a message.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import httpx

from shared.auth import issue_token
from shared.settings import CommonSettings

# The programme's published figures and the loader's plan for them.
SEED_PEOPLE = 41_200
SEED_INFRASTRUCTURE = 498_142
SEED_COMMUNITIES = 284
SEED_PROJECTS = 140
TRAIN_EVERY = 12  # one person in twelve completes a vocational training, the others receive a grant
SCALES = {"seed": 1.0, "small": 0.01, "tiny": 0.002}

# Governorates with significant populations of IDPs and returnees, where the programme works.
GOVERNORATES = ("IQG15", "IQG01", "IQG16", "IQG13", "IQG10", "IQG08", "IQG11", "IQG09", "IQG07")
SKILLS = ("tailoring", "carpentry", "solar_installation", "food_processing")
SECTORS = ("water", "electricity", "health", "education", "roads", "sanitation", "livelihoods")
FIRST = {"female": ("فاطمة", "زينب", "مريم", "نور", "سارة", "هدى", "رقية", "آمنة", "خديجة", "ليلى", "Noor", "Huda"),
         "male": ("محمد", "أحمد", "علي", "حسين", "عمر", "يوسف", "كريم", "سالم", "خالد", "جاسم", "Mohammed", "Omar")}
FATHERS = ("عبد الله", "حسن", "إبراهيم", "محمود", "عباس", "جواد", "كاظم", "صالح", "Hadi", "Kareem", "Salman", "Nabil")
GRANDFATHERS = ("مهدي", "رشيد", "حميد", "فاضل", "ناصر", "طه", "Jassim", "Elias", "Yaqoub", "Hamza")


@dataclass(frozen=True)
class Plan:
    name: str
    people: int
    communities: int
    projects: int
    infrastructure: int

    @classmethod
    def of(cls, scale: str) -> Plan:
        factor = SCALES[scale]
        communities = max(3, round(SEED_COMMUNITIES * factor))
        return cls(scale, max(communities, round(SEED_PEOPLE * factor)), communities,
                   max(1, round(SEED_PROJECTS * factor)), round(SEED_INFRASTRUCTURE * factor))

    def catchments(self) -> list[int]:
        """Catchment populations of the projects: uneven, adding up to exactly ``infrastructure``."""
        rng = random.Random(f"{self.name}-catchments")
        weights = [rng.uniform(0.3, 3.0) for _ in range(self.projects)]
        shares = [int(self.infrastructure * w / sum(weights)) for w in weights]
        shares[0] += self.infrastructure - sum(shares)
        return shares


@dataclass
class Progress:
    total: int
    done: int = 0
    started: float = field(default_factory=time.monotonic)

    def line(self, what: str) -> str:
        elapsed = time.monotonic() - self.started
        rate = self.done / elapsed if elapsed else 0.0
        return (f"{what}: {self.done:,} of {self.total:,} ({100 * self.done / max(1, self.total):.0f}%), "
                f"{rate:,.0f}/s, {elapsed:,.0f} s")


class Loader:
    def __init__(self, base_url: str, plan: Plan, workers: int, out: Callable[[str], object]) -> None:
        self.base_url = base_url
        self.plan = plan
        self.workers = workers
        self.out = out
        self.today = date.today().isoformat()
        settings = CommonSettings()
        self.tokens = [issue_token(settings, roles=["programme_manager"], sub=f"demo-loader-{plan.name}-{i}",
                                   ttl_seconds=6 * 3600) for i in range(workers)]

    def headers(self, worker: int, key: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[worker % self.workers]}",
                "Idempotency-Key": f"scale-{self.plan.name}-{key}"}

    async def post(self, client: httpx.AsyncClient, worker: int, key: str, path: str, body: dict[str, Any],
                   ok: tuple[int, ...] = (200, 201)) -> httpx.Response:
        for attempt in range(8):
            resp = await client.post(path, json=body, headers=self.headers(worker, key))
            if resp.status_code not in (429, 502, 503, 504):  # the key makes a retry safe
                break
            await asyncio.sleep(float(resp.headers.get("retry-after", 0.2 * 2 ** attempt)))
        if resp.status_code not in ok:
            raise RuntimeError(f"POST {path}: {resp.status_code} {resp.text[:300]}")
        return resp

    async def run(self) -> dict[str, Any]:
        started = time.monotonic()
        limits = httpx.Limits(max_connections=self.workers, max_keepalive_connections=self.workers)
        async with httpx.AsyncClient(base_url=self.base_url, timeout=60, limits=limits) as client:
            communities = await self.communities(client)
            courses = await self.courses(client, communities)
            assisted, grants = await self.people(client, communities, courses)
            infrastructure = await self.infrastructure(client, communities)
        return {"people": assisted, "grants": grants, "trainings": assisted - grants,
                "communities": len(communities), "infrastructure": infrastructure,
                "seconds": time.monotonic() - started}

    async def communities(self, client: httpx.AsyncClient) -> list[str]:
        districts: list[str] = []
        for governorate in GOVERNORATES:
            resp = await client.get("/api/v1/locations/districts", params={"governorate": governorate},
                                    headers=self.headers(0, "-"))
            resp.raise_for_status()
            districts += [d["pcode"] for d in resp.json()]
        # Round-robin over the governorates, then over each one's districts.
        by_governorate = {g: [d for d in districts if d.startswith(g)] for g in GOVERNORATES}
        order = []
        for i in range(self.plan.communities):
            in_governorate = by_governorate[GOVERNORATES[i % len(GOVERNORATES)]]
            order.append(in_governorate[(i // len(GOVERNORATES)) % len(in_governorate)])
        ids: list[str] = [""] * len(order)
        progress = Progress(len(order))

        async def one(i: int, worker: int) -> None:
            resp = await self.post(client, worker, f"community-{i}", "/api/v1/communities",
                                   {"name": f"Community {i + 1} ({order[i]})", "district_pcode": order[i]})
            ids[i] = resp.json()["id"]
            progress.done += 1

        await self.each(range(len(order)), one, progress, "communities")
        return ids

    async def courses(self, client: httpx.AsyncClient, communities: list[str]) -> list[str]:
        per_community = -(-self.plan.people // len(communities))
        ids: list[str] = [""] * len(communities)
        progress = Progress(len(communities))

        async def one(i: int, worker: int) -> None:
            resp = await self.post(client, worker, f"course-{i}", "/api/v1/courses", {
                "title": "Vocational skills for local jobs", "skill_area": SKILLS[i % len(SKILLS)],
                "community_id": communities[i], "start_date": "2026-01-15", "end_date": self.today,
                "capacity": min(10_000, per_community + 10), "completion_threshold": 0})
            ids[i] = resp.json()["id"]
            progress.done += 1

        await self.each(range(len(communities)), one, progress, "courses")
        return ids

    async def people(self, client: httpx.AsyncClient, communities: list[str], courses: list[str]) -> tuple[int, int]:
        progress = Progress(self.plan.people)
        grants = 0

        async def one(i: int, worker: int) -> None:
            nonlocal grants
            rng = random.Random(f"{self.plan.name}-person-{i}")
            sex = rng.choice(("female", "male"))
            community = i % len(communities)
            person = await self.post(client, worker, f"person-{i}", "/api/v1/beneficiaries", {
                "first_name": rng.choice(FIRST[sex]), "father_name": rng.choice(FATHERS),
                "grandfather_name": rng.choice(GRANDFATHERS), "sex": sex,
                "date_of_birth": f"{rng.randint(1950, 2007)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}",
                "displacement_status": rng.choice(("idp", "returnee", "returnee", "host_community")),
                "community_id": communities[community], "confirm_not_duplicate": True,
                "consent": {"given": True, "obtained_on": "2026-01-10"}})
            person_id = person.json()["id"]
            if i % TRAIN_EVERY != 0:
                grant = await self.post(client, worker, f"grant-{i}", "/api/v1/grants", {
                    "beneficiary_id": person_id, "business_name": "Small business", "sector": "retail",
                    "amount_requested": "1500.00", "currency": "USD"})
                grant_id = grant.json()["id"]
                await self.post(client, worker, f"approval-{i}", f"/api/v1/grants/{grant_id}/approval",
                                {"amount_approved": "1500.00"})
                await self.post(client, worker, f"disbursement-{i}", f"/api/v1/grants/{grant_id}/disbursements",
                                {"amount": "1500.00", "disbursed_on": self.today}, ok=(201, 409))
                grants += 1
            else:
                enrolment = await self.post(client, worker, f"enrolment-{i}",
                                            f"/api/v1/courses/{courses[community]}/enrolments",
                                            {"beneficiary_id": person_id})
                await self.post(client, worker, f"completion-{i}",
                                f"/api/v1/enrolments/{enrolment.json()['id']}/completion",
                                {"completed_on": self.today, "certified": True}, ok=(200, 409))
            progress.done += 1

        await self.each(range(self.plan.people), one, progress, "people directly assisted")
        return progress.done, grants

    async def infrastructure(self, client: httpx.AsyncClient, communities: list[str]) -> int | None:
        """Completed projects; None when the infrastructure service is not part of the platform."""
        probe = await client.get("/api/v1/infrastructure-projects", params={"limit": 1}, headers=self.headers(0, "-"))
        if probe.status_code in (502, 503, 504):
            self.out(f"infrastructure: the service is not available ({probe.status_code}); "
                     f"{self.plan.infrastructure:,} infrastructure beneficiaries not loaded")
            return None
        catchments = self.plan.catchments()
        progress = Progress(len(catchments))

        async def one(i: int, worker: int) -> None:
            project = await self.post(client, worker, f"project-{i}", "/api/v1/infrastructure-projects", {
                "title": f"Rehabilitation of public services, project {i + 1}", "sector": SECTORS[i % len(SECTORS)],
                "community_id": communities[i % len(communities)], "catchment_population": catchments[i],
                "justification": "Priority identified with the community and the local authorities."})
            project_id = project.json()["id"]
            for status in ("in_progress", "completed"):
                await self.post(client, worker, f"project-{i}-{status}",
                                f"/api/v1/infrastructure-projects/{project_id}/status",
                                {"status": status, "on": self.today}, ok=(200, 201, 409))
            progress.done += 1

        await self.each(range(len(catchments)), one, progress, "infrastructure projects completed")
        return sum(catchments)

    async def each(self, items: range, one: Callable[[int, int], Any], progress: Progress, what: str) -> None:
        """Run ``one(item, worker)`` over ``items`` with ``workers`` at a time, printing progress every 2 s."""
        queue = iter(items)

        async def work(worker: int) -> None:
            for item in queue:
                await one(item, worker)

        async def report() -> None:
            while True:
                await asyncio.sleep(2)
                self.out(progress.line(what))

        reporter = asyncio.create_task(report())
        try:
            await asyncio.gather(*(work(w) for w in range(self.workers)))
        finally:
            reporter.cancel()
        self.out(progress.line(what))


def load_scale(base_url: str, scale: str, *, workers: int = 16, out: Callable[[str], object] = print
               ) -> dict[str, Any]:
    """Load the data set of ``scale`` through the API at ``base_url``; returns what was loaded and the time."""
    plan = Plan.of(scale)
    out(f"demo --scale {scale}: {plan.people:,} people directly assisted in {plan.communities} communities of "
        f"{len(GOVERNORATES)} governorates, {plan.projects} infrastructure projects for "
        f"{plan.infrastructure:,} people; {workers} clients in parallel")
    return asyncio.run(Loader(base_url, plan, workers, out).run())
