"""Exports of the figures: a CSV table, the same table HXL-tagged, and IATI 2.03 results.

Built only on the public ``summary(...)`` and ``breakdown(...)`` of ``services.indicators.service``: an export
never shows a figure the API would not.

The table has one row per governorate and indicator. People indicators carry their disaggregation by sex and
age group and by displacement status (HXL ``#reached+f+adults``, ``#reached+idps`` ...); the others carry only
their value. There is no public variant: a governorate-by-sex-and-age table beside the public one-dimension
tables could undo their complementary suppression.
"""

from __future__ import annotations

import csv
import io
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from xml.etree import ElementTree as ET

from sqlmodel.ext.asyncio.session import AsyncSession

from services.indicators import service as svc
from services.indicators.config import IndicatorsSettings
from shared.db import rfc3339, utcnow

# Iraq's governorates (OCHA COD-AB admin1 P-codes, valid from 2019-06-03): facts, embedded.
GOVERNORATES: dict[str, str] = {
    "IQG01": "Al-Anbar", "IQG02": "Al-Basrah", "IQG03": "Al-Muthanna", "IQG04": "Al-Najaf",
    "IQG05": "Al-Qadissiya", "IQG06": "Al-Sulaymaniyah", "IQG07": "Babil", "IQG08": "Baghdad", "IQG09": "Duhok",
    "IQG10": "Diyala", "IQG11": "Erbil", "IQG12": "Kerbala", "IQG13": "Kirkuk", "IQG14": "Maysan",
    "IQG15": "Ninewa", "IQG16": "Salah Al-Din", "IQG17": "Thi Qar", "IQG18": "Wassit",
}


@dataclass(frozen=True, slots=True)
class Indicator:
    code: str
    name: str
    people: bool  # disaggregated by sex, age group and displacement status


INDICATORS: tuple[Indicator, ...] = (
    Indicator("individuals_directly_assisted", "Individuals directly assisted", True),
    Indicator("individuals_benefiting_from_infrastructure", "Individuals benefiting from rehabilitated "
              "infrastructure", False),
    Indicator("communities_reached", "Communities reached", False),
    Indicator("beneficiaries_registered", "Beneficiaries registered", True),
    Indicator("grants_disbursed", "Small-business grants disbursed", False),
    Indicator("trainings_completed", "Vocational trainings completed", False),
)

# Disaggregation columns: (key, header, HXL tag). Sex x age group, then displacement status.
SEXES = (("female", "Female", "f"), ("male", "Male", "m"))
AGES = (("0-4", "0-4", "infants"), ("5-11", "5-11", "children"), ("12-17", "12-17", "adolescents"),
        ("18-59", "18-59", "adults"), ("60+", "60+", "elderly"))
STATUSES = (("idp", "IDPs", "idps"), ("returnee", "Returnees", "returnees"),
            ("host_community", "Host community", "hosts"))
SEX_AGE = tuple((f"{s}:{a}", f"{sh} {ah}", f"#reached+{st}+{at}") for s, sh, st in SEXES for a, ah, at in AGES)
DISPLACEMENT = tuple((s, h, f"#reached+{t}") for s, h, t in STATUSES)
PARTITIONS = (tuple(k for k, _, _ in SEX_AGE), tuple(k for k, _, _ in DISPLACEMENT))

COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("adm1_pcode", "Governorate P-code", "#adm1+code"),
    ("adm1_name", "Governorate", "#adm1+name"),
    ("indicator", "Indicator code", "#indicator+code"),
    ("indicator_name", "Indicator", "#indicator+name"),
    ("value", "Value", "#indicator+num"),
    *SEX_AGE,
    *DISPLACEMENT,
    ("as_of", "As of", "#date+reported"),
)

CROSSTAB = ["governorate", "sex", "age_group", "displacement_status"]


async def _crosstab(session: AsyncSession, indicator: str, governorates: frozenset[str] | None) -> list[dict[str, Any]]:
    """One breakdown by every dimension an export shows; each export adds up the margins it needs (one pass over
    the people instead of one per margin)."""
    return await svc.breakdown(session=session, indicator=indicator, by=CROSSTAB, governorates=governorates)


async def table(*, session: AsyncSession, governorates: frozenset[str] | None) -> list[dict[str, Any]]:
    """One row per governorate (within ``governorates``, None for all) and indicator; keys are ``COLUMNS``'
    first items, a cell is None when the indicator has no such disaggregation."""
    places = sorted(GOVERNORATES if governorates is None else governorates & GOVERNORATES.keys())
    cells: dict[tuple[str, str], dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for indicator in (i for i in INDICATORS if i.people):
        for item in await _crosstab(session, indicator.code, governorates):
            found = cells[(item["governorate"], indicator.code)]
            found[f"{item['sex']}:{item['age_group']}"] += item["value"]
            found[item["displacement_status"]] += item["value"]
    rows = []
    for pcode in places:
        figures = await svc.summary(session=session, governorates=frozenset({pcode}))
        as_of = rfc3339(figures["as_of"])
        for indicator in INDICATORS:
            row: dict[str, Any] = {"adm1_pcode": pcode, "adm1_name": GOVERNORATES[pcode],
                                   "indicator": indicator.code, "indicator_name": indicator.name,
                                   "value": int(figures[indicator.code]), "as_of": as_of}
            found = cells.get((pcode, indicator.code), {})
            for partition in PARTITIONS:
                for key in partition:
                    row[key] = found.get(key, 0) if indicator.people else None
            rows.append(row)
    return rows


def to_csv(rows: Sequence[dict[str, Any]], *, hxl: bool) -> str:
    """The table as CSV (RFC 4180, CRLF): a header row, and with ``hxl`` the HXL hashtag row under it."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow([header for _, header, _ in COLUMNS])
    if hxl:
        writer.writerow([tag for _, _, tag in COLUMNS])
    for row in rows:
        writer.writerow(["" if row[key] is None else row[key] for key, _, _ in COLUMNS])
    return buffer.getvalue()


# -- IATI 2.03 -----------------------------------------------------------------------------------------
# Codelists: ResultType 1 = output; IndicatorMeasure 1 = unit; ActivityStatus 2 = implementation;
# ActivityDateType 2 = actual start; OrganisationRole 4 = implementing.
RESULTS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("Reach of the Community Revitalization Programme",
     "Iraqis directly assisted, benefiting from rehabilitated infrastructure, and communities reached.",
     ("individuals_directly_assisted", "individuals_benefiting_from_infrastructure", "communities_reached")),
    ("Supporting local economies", "Small-business grants disbursed (grants with a disbursement not reversed).",
     ("grants_disbursed",)),
    ("Enhancing human capital", "Vocational training enrolments completed.", ("trainings_completed",)),
)


def _text(parent: ET.Element, tag: str, text: str, **attrs: str) -> ET.Element:
    element = ET.SubElement(parent, tag, attrs)
    ET.SubElement(element, "narrative").text = text
    return element


async def iati(*, session: AsyncSession, settings: IndicatorsSettings, governorates: frozenset[str] | None) -> bytes:
    """An IATI 2.03 activity file: the programme as one activity whose ``result``s carry the figures, as they
    stand, as the ``actual`` of one ``period`` from the programme's start (``CRP_PROGRAMME_START``) to the day
    of the figures, disaggregated (``dimension``) by governorate, sex and displacement status."""
    figures = await svc.summary(session=session, governorates=governorates)
    as_of: datetime = figures["as_of"]
    period_start = settings.programme_start
    period_end = max(as_of.date(), period_start)
    dims: dict[str, list[tuple[str, str, int]]] = {}
    for indicator in (i for i in INDICATORS if i.people):
        margins: dict[tuple[str, str], int] = defaultdict(int)
        for item in await _crosstab(session, indicator.code, governorates):
            for by in ("governorate", "sex", "displacement_status"):
                if item[by] is not None:
                    margins[(by, str(item[by]))] += int(item["value"])
        dims[indicator.code] = [(by, value, count) for (by, value), count in sorted(margins.items())]
    names = {i.code: i.name for i in INDICATORS}
    now = rfc3339(utcnow())

    root = ET.Element("iati-activities", {"version": "2.03", "generated-datetime": now})
    activity = ET.SubElement(root, "iati-activity", {
        "last-updated-datetime": rfc3339(as_of),
        "{http://www.w3.org/XML/1998/namespace}lang": "en", "humanitarian": "1"})
    ET.SubElement(activity, "iati-identifier").text = settings.iati_activity_identifier
    _text(activity, "reporting-org", settings.iati_reporting_org_name, ref=settings.iati_reporting_org_ref,
          type=settings.iati_reporting_org_type)
    _text(activity, "title", "Community Revitalization Programme (CRP), Iraq")
    _text(activity, "description", "Stabilization through the economic and social inclusion of vulnerable people "
                                   "in communities with significant populations of internally displaced persons "
                                   "and returnees.", type="1")
    _text(activity, "participating-org", settings.iati_reporting_org_name, ref=settings.iati_reporting_org_ref,
          role="4", type=settings.iati_reporting_org_type)
    ET.SubElement(activity, "activity-status", code="2")
    ET.SubElement(activity, "activity-date", {"type": "2", "iso-date": settings.programme_start.isoformat()})
    ET.SubElement(activity, "recipient-country", code="IQ", percentage="100")
    for title, description, codes in RESULTS:
        result = ET.SubElement(activity, "result", {"type": "1", "aggregation-status": "1"})
        _text(result, "title", title)
        _text(result, "description", description)
        for code in codes:
            indicator = ET.SubElement(result, "indicator", {"measure": "1", "ascending": "1"})
            _text(indicator, "title", names[code])
            _text(indicator, "description", f"CRP indicator `{code}`"
                                            + (f", within {', '.join(sorted(governorates))}" if governorates else ""))
            period = ET.SubElement(indicator, "period")
            ET.SubElement(period, "period-start", {"iso-date": period_start.isoformat()})
            ET.SubElement(period, "period-end", {"iso-date": period_end.isoformat()})
            ET.SubElement(period, "actual", value=str(int(figures[code])))
            for name, value, count in dims.get(code, []):
                actual = ET.SubElement(period, "actual", value=str(count))
                ET.SubElement(actual, "dimension", name=name, value=value)
    ET.indent(root)
    return ET.tostring(root, encoding="utf-8", xml_declaration=True)
