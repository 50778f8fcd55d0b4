"""`crp indicators reconcile`: recompute the headline figures from the source services' own APIs and compare
them with the indicators service's.

The indicators are a projection of events; the source services hold the records. Reading every record back
through the API (paged, as an operator) and counting by the contract's definitions gives the figures
independently of the stream, the consumer and the projection. A difference means an event was lost, applied
wrongly or not yet applied (``wait`` absorbs events still in flight), or that the projection was altered.

Each source service is a ``Source``: the figures it answers for and a reader that adds its facts. A service
that is not part of the deployment (the gateway answers 503 for it) is skipped, and its figures are listed as
not compared. Adding a service is one more ``Source`` in ``SOURCES`` (infrastructure and feedback are there,
written against the contract).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import httpx

PAGE = 500


class Unavailable(Exception):
    """A service is not part of this deployment, or cannot be reached."""


class ReconcileError(Exception):
    """Reconciliation could not be done (refused, or a service failed)."""


@dataclass
class Facts:
    """What the sources say, before it is counted."""

    people: dict[str, tuple[str | None, str | None]] = field(default_factory=dict)  # id -> (community, merged into)
    registered: int = 0
    assisted: set[str] = field(default_factory=set)  # person ids, as recorded (merges resolved when counting)
    figures: dict[str, Any] = field(default_factory=dict)
    reached_communities: set[str] = field(default_factory=set)  # by completed infrastructure

    def survivor(self, person_id: str) -> str:
        seen = set()
        while person_id not in seen:
            seen.add(person_id)
            merged_into = self.people.get(person_id, (None, None))[1]
            if merged_into is None:
                return person_id
            person_id = merged_into
        return person_id


def pages(client: httpx.Client, path: str, **params: Any) -> Iterator[dict[str, Any]]:
    """Every item of a paged list of the contract (``items``, ``next_cursor``)."""
    cursor = None
    while True:
        query = {**params, "limit": PAGE, **({"cursor": cursor} if cursor else {})}
        resp = client.get(path, params=query)
        if resp.status_code in (502, 503, 504):
            raise Unavailable(f"{path}: {resp.status_code}")
        if resp.status_code in (401, 403):
            raise ReconcileError(f"{path}: {resp.status_code}, the token cannot read it (use an admin token)")
        resp.raise_for_status()
        body = resp.json()
        yield from body["items"]
        cursor = body.get("next_cursor")
        if not cursor:
            return


def read_beneficiaries(client: httpx.Client, facts: Facts) -> None:
    for item in pages(client, "/api/v1/beneficiaries", include_merged="true"):
        facts.people[item["id"]] = (item["community_id"], item.get("merged_into_id"))
        if item.get("merged_into_id") is None:
            facts.registered += 1
    facts.figures["beneficiaries_registered"] = facts.registered


def read_grants(client: httpx.Client, facts: Facts) -> None:
    disbursed = 0
    amounts: dict[str, Decimal] = {}
    for grant in pages(client, "/api/v1/grants"):
        paid = Decimal(str(grant["disbursed_amount"]))
        if paid > 0:  # at least one disbursement not reversed
            disbursed += 1
            amounts[grant["currency"]] = amounts.get(grant["currency"], Decimal(0)) + paid
            facts.assisted.add(grant["beneficiary_id"])
    facts.figures["grants_disbursed"] = disbursed
    facts.figures["grant_amounts_disbursed"] = {c: float(v) for c, v in sorted(amounts.items())}


def read_training(client: httpx.Client, facts: Facts) -> None:
    completed = 0
    for enrolment in pages(client, "/api/v1/enrolments", status="completed"):
        completed += 1
        facts.assisted.add(enrolment["beneficiary_id"])
    facts.figures["trainings_completed"] = completed


def read_infrastructure(client: httpx.Client, facts: Facts) -> None:
    """Projects that reached ``completed`` (handed over ones did too): their catchment and communities."""
    people = 0
    for project in pages(client, "/api/v1/infrastructure-projects"):
        if project["status"] in ("completed", "handed_over"):
            people += int(project["catchment_population"])
            facts.reached_communities.add(project["community_id"])
    facts.figures["individuals_benefiting_from_infrastructure"] = people


def read_feedback(client: httpx.Client, facts: Facts) -> None:
    facts.figures["feedback_received"] = sum(1 for _ in pages(client, "/api/v1/feedback"))


@dataclass(frozen=True)
class Source:
    service: str
    figures: tuple[str, ...]  # the figures it answers for alone
    read: Callable[[httpx.Client, Facts], None]


SOURCES: tuple[Source, ...] = (
    Source("beneficiaries", ("beneficiaries_registered",), read_beneficiaries),
    Source("grants", ("grants_disbursed", "grant_amounts_disbursed"), read_grants),
    Source("training", ("trainings_completed",), read_training),
    Source("infrastructure", ("individuals_benefiting_from_infrastructure",), read_infrastructure),
    Source("feedback", ("feedback_received",), read_feedback),
)
# Figures that need several sources: compared only when all of them were read.
COMBINED: dict[str, tuple[str, ...]] = {
    "individuals_directly_assisted": ("beneficiaries", "grants", "training"),
    "communities_reached": ("beneficiaries", "grants", "training", "infrastructure"),  # infrastructure if present
}


@dataclass
class Report:
    rows: list[tuple[str, Any, Any]]  # (figure, from the sources, from the indicators)
    not_compared: dict[str, str]  # figure -> why

    @property
    def differences(self) -> list[tuple[str, Any, Any]]:
        return [row for row in self.rows if row[1] != row[2]]


def recompute(client: httpx.Client) -> tuple[dict[str, Any], dict[str, str]]:
    """The figures from the sources, and those that could not be recomputed (with the reason)."""
    facts = Facts()
    read: set[str] = set()
    missing: dict[str, str] = {}
    for source in SOURCES:
        try:
            source.read(client, facts)
            read.add(source.service)
        except Unavailable:
            for figure in source.figures:
                missing[figure] = f"the {source.service} service is not available"
    figures = dict(facts.figures)
    survivors = {facts.survivor(p) for p in facts.assisted}
    if {"beneficiaries", "grants", "training"} <= read:
        figures["individuals_directly_assisted"] = len(survivors)
    communities = {facts.people[p][0] for p in survivors if p in facts.people and facts.people[p][0]}
    if set(COMBINED["communities_reached"]) - {"infrastructure"} <= read:
        # Without the infrastructure service no project can have completed: the residents' communities only.
        figures["communities_reached"] = len(communities | facts.reached_communities)
    for figure, services in COMBINED.items():
        if figure not in figures:
            missing[figure] = "needs " + ", ".join(s for s in services if s not in read) + " (not available)"
    return figures, missing


def indicators_summary(client: httpx.Client) -> dict[str, Any]:
    resp = client.get("/api/v1/indicators/summary")
    if resp.status_code != 200:
        raise ReconcileError(f"/api/v1/indicators/summary: {resp.status_code} {resp.text[:200]}")
    return resp.json()


def compare(figures: dict[str, Any], missing: dict[str, str], summary: dict[str, Any]) -> Report:
    rows, not_compared = [], dict(missing)
    for figure, value in figures.items():
        if figure not in summary:
            not_compared[figure] = "the indicators do not report it"
            continue
        rows.append((figure, value, summary[figure]))
    return Report(rows=sorted(rows), not_compared=not_compared)


def reconcile(client: httpx.Client, *, wait: float = 0.0, interval: float = 1.0) -> Report:
    """Compare; while there is a difference, within ``wait`` seconds, read both sides again (events still on
    their way settle the difference)."""
    deadline = time.monotonic() + wait
    while True:
        try:
            figures, missing = recompute(client)
        except httpx.HTTPError as exc:
            raise ReconcileError(f"a source service failed: {exc}") from exc
        report = compare(figures, missing, indicators_summary(client))
        if not report.differences or time.monotonic() >= deadline:
            return report
        time.sleep(interval)


def render(report: Report) -> str:
    width = max([len(f) for f, _, _ in report.rows] + [len("figure")])
    lines = [f"{'figure':<{width}}  {'sources':>14}  {'indicators':>14}"]
    for figure, source, indicator in report.rows:
        mark = "" if source == indicator else "  DIFFERENT"
        lines.append(f"{figure:<{width}}  {_show(source):>14}  {_show(indicator):>14}{mark}")
    for figure, why in sorted(report.not_compared.items()):
        lines.append(f"{figure:<{width}}  not compared: {why}")
    return "\n".join(lines)


def _show(value: Any) -> str:
    if isinstance(value, dict):
        return ", ".join(f"{k} {v:g}" for k, v in value.items()) or "-"
    return str(value)
