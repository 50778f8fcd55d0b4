"""Asking another service over HTTP: the one way a service learns what another owns.

Each call carries the caller's own ``Authorization`` header, so the other service applies the caller's
roles and governorate scope: a record the caller may not see answers exactly like one that does not
exist. Short timeouts; an unreachable or failing peer is a 503 problem, and since the caller's request
fails, nothing of it is stored. The one HTTP client is ``app.state.http`` (made in the service lifespan).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date
from typing import Annotated, Any

import httpx
from fastapi import Depends, Request

from shared.errors import Forbidden, ServiceUnavailable, Unprocessable
from shared.observability import request_id_var
from shared.settings import CommonSettings

log = logging.getLogger("crp.peers")

TIMEOUT = httpx.Timeout(5.0, connect=2.0)
MAX_MERGE_HOPS = 5


def http_client() -> httpx.AsyncClient:
    """The client a service uses for its peers (created once, in the lifespan)."""
    return httpx.AsyncClient(timeout=TIMEOUT, follow_redirects=False)


@dataclass(frozen=True, slots=True)
class BeneficiaryRef:
    """What another service may keep about a person: where they are and the facts that eligibility and
    disaggregation need. Never names, phones or IDs."""

    id: str  # the record that stands for the person now (merges followed)
    requested_id: str  # the id the caller gave
    community_id: str
    household_id: str | None
    district_pcode: str
    governorate_pcode: str
    sex: str
    date_of_birth: date
    displacement_status: str
    has_disability: bool
    consent_given: bool
    consent_withdrawn_on: date | None

    def age_on(self, day: date) -> int:
        born = self.date_of_birth
        return day.year - born.year - ((day.month, day.day) < (born.month, born.day))


@dataclass(frozen=True, slots=True)
class CommunityRef:
    id: str
    district_pcode: str
    governorate_pcode: str


def _ref(body: dict[str, Any], requested_id: str) -> BeneficiaryRef:
    disability = body.get("disability") or {}
    consent = body.get("consent") or {}
    return BeneficiaryRef(
        id=body["id"], requested_id=requested_id, community_id=body["community_id"],
        household_id=body.get("household_id"), district_pcode=body["district_pcode"],
        governorate_pcode=body["governorate_pcode"], sex=body["sex"],
        date_of_birth=date.fromisoformat(body["date_of_birth"]), displacement_status=body["displacement_status"],
        has_disability=bool(disability) and max(disability.values()) >= 3,
        consent_given=bool(consent.get("given", True)),
        consent_withdrawn_on=date.fromisoformat(consent["withdrawn_on"]) if consent.get("withdrawn_on") else None)


class Beneficiaries:
    """The beneficiaries service, asked with the caller's token (``BeneficiariesDep``)."""

    def __init__(self, client: httpx.AsyncClient, settings: CommonSettings, authorization: str | None,
                 request_id: str | None = None) -> None:
        self.client = client
        self.base = settings.upstreams.get("beneficiaries", "").rstrip("/")
        self.headers = {"Authorization": authorization or ""}
        if request_id:
            self.headers["X-Request-ID"] = request_id

    async def _get(self, path: str) -> dict[str, Any] | None:
        if not self.base:
            raise ServiceUnavailable("The beneficiaries service is not configured", service="beneficiaries")
        try:
            response = await self.client.get(f"{self.base}{path}", headers=self.headers)
        except httpx.HTTPError as exc:
            log.warning("beneficiaries service unreachable: %s", type(exc).__name__)
            raise ServiceUnavailable("The beneficiaries service cannot be reached; nothing was stored",
                                     service="beneficiaries", headers={"Retry-After": "2"}) from None
        if response.status_code == 404:
            return None
        if response.status_code == 403:
            raise Forbidden("Your role may not read beneficiaries, which this action needs")
        if response.status_code != 200:
            log.warning("beneficiaries service answered %d", response.status_code)
            raise ServiceUnavailable("The beneficiaries service could not answer; nothing was stored",
                                     service="beneficiaries", headers={"Retry-After": "2"})
        return response.json()

    async def get(self, beneficiary_id: str, *, field: str = "beneficiary_id") -> BeneficiaryRef:
        """The person ``beneficiary_id`` stands for, following merges to the survivor.

        Unknown, or outside the caller's governorates: a 422 on ``field`` that says no more than
        "unknown" (the same answer for both, so nothing out of scope is revealed).
        """
        current = beneficiary_id
        for _ in range(MAX_MERGE_HOPS):
            body = await self._get(f"/api/v1/beneficiaries/{current}") if _looks_like_id(current) else None
            if body is None:
                raise Unprocessable(f"unknown beneficiary {beneficiary_id!r}",
                                    errors=[{"loc": ["body", field], "msg": "unknown beneficiary"}])
            if not body.get("merged_into_id"):
                return _ref(body, beneficiary_id)
            current = body["merged_into_id"]
        raise ServiceUnavailable("The beneficiary's merges could not be followed", service="beneficiaries")

    async def records_of(self, person: BeneficiaryRef) -> set[str]:
        """Every record that stands for ``person``: the survivor, the id the caller gave and the records merged
        into the survivor (merges point straight at the survivor), as far as the caller's scope shows them."""
        ids = {person.id, person.requested_id}
        path: str | None = f"/api/v1/beneficiaries?merged_into_id={person.id}&limit=500"
        for _ in range(20):  # at most 10,000 records folded into one person
            if path is None:
                break
            body = await self._get(path)
            if body is None:
                break
            ids.update(item["id"] for item in body["items"])
            cursor = body.get("next_cursor")
            path = f"/api/v1/beneficiaries?merged_into_id={person.id}&limit=500&cursor={cursor}" if cursor else None
        return ids

    async def community(self, community_id: str, *, field: str = "community_id") -> CommunityRef:
        """The community ``community_id`` (unknown or outside the caller's governorates: a 422 on ``field``)."""
        body = await self._get(f"/api/v1/communities/{community_id}") if _looks_like_id(community_id) else None
        if body is None:
            raise Unprocessable(f"unknown community {community_id!r}",
                                errors=[{"loc": ["body", field], "msg": "unknown community"}])
        return CommunityRef(id=body["id"], district_pcode=body["district_pcode"],
                            governorate_pcode=body["governorate_pcode"])


def _looks_like_id(value: str) -> bool:
    return 0 < len(value) <= 64 and all(c.isalnum() or c == "-" for c in value)


async def get_beneficiaries(request: Request) -> Beneficiaries:
    return Beneficiaries(request.app.state.http, request.app.state.settings, request.headers.get("authorization"),
                         request_id_var.get())


BeneficiariesDep = Annotated[Beneficiaries, Depends(get_beneficiaries)]
"""The beneficiaries service, asked with this request's own token."""


# Services that hold personal data about a person, keyed by beneficiary id, and where to ask them to erase it.
ERASURE_HOOKS: dict[str, str] = {"grants": "/api/v1/grants/personal-data-erasure"}


async def erase_elsewhere(request: Request, beneficiary_id: str) -> None:
    """Ask every service that holds personal data about ``beneficiary_id`` to erase it, with the caller's token,
    before the beneficiaries service erases its own (a service that cannot be reached is a 503, and nothing is
    erased here: the request can be repeated, the hooks are idempotent)."""
    settings: CommonSettings = request.app.state.settings
    headers = {"Authorization": request.headers.get("authorization") or ""}
    if request_id := request_id_var.get():
        headers["X-Request-ID"] = request_id
    for service, path in ERASURE_HOOKS.items():
        base = settings.upstreams.get(service, "").rstrip("/")
        if not base:
            continue  # not part of this deployment: it holds nothing
        try:
            response = await request.app.state.http.post(f"{base}{path}", headers=headers,
                                                         json={"beneficiary_id": beneficiary_id})
        except httpx.HTTPError as exc:
            log.warning("%s unreachable for an erasure: %s", service, type(exc).__name__)
            response = None
        if response is None or response.status_code != 200:
            raise ServiceUnavailable(f"The {service} service could not erase its copy; nothing was erased, retry",
                                     service=service, headers={"Retry-After": "2"})
