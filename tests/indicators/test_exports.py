"""Exports: CSV, HXL (validated with libhxl against an HXL schema) and IATI 2.03 results (validated against the
IATI activity schema vendored in ``tests/indicators/iati/``), with roles and governorate scope; no public
variant."""

from __future__ import annotations

import csv
import io
import uuid
from datetime import date
from pathlib import Path
from typing import Any
from xml.etree import ElementTree as ET

import hxl
import pytest
import xmlschema

from services.indicators.app import create_app
from services.indicators.config import IndicatorsSettings
from services.indicators.exports import INDICATORS
from shared.events import CloudEvent
from shared.events.beneficiaries import BeneficiaryRegistered
from shared.events.grants import DisbursementMade
from tests.conftest import Env, eventually, running
from tests.pipeline.test_outbox_consumer import publish_raw, registered_event

IATI_XSD = Path(__file__).parent / "iati" / "iati-activities-schema.xsd"

# An HXL schema (https://github.com/HXLStandard/hxl-proxy/wiki/HXL-schemas) for the export: libhxl checks it.
HXL_RULES = [
    ["#valid_tag", "#valid_required", "#valid_datatype", "#valid_value+regex", "#valid_value+min"],
    ["#adm1+code", "true", "", r"^IQG(0[1-9]|1[0-8])$", ""],
    ["#adm1+name", "true", "", "", ""],
    ["#indicator+code", "true", "", r"^[a-z_]+$", ""],
    ["#indicator+num", "", "number", "", "0"],
    ["#reached", "", "number", "", "0"],
    ["#date+reported", "true", "date", "", ""],
]


def _hxl_valid(body: bytes) -> list[tuple[str, str]]:
    errors: list[Any] = []
    schema = hxl.schema(hxl.data(HXL_RULES), callback=errors.append)
    valid = schema.validate(hxl.data(io.BytesIO(body)))
    assert valid == (not errors)
    return [(str(e.message), str(e.value)) for e in errors]


def _disbursed(person: str, governorate: str) -> CloudEvent:
    return CloudEvent.wrap(DisbursementMade(
        grant_id=str(uuid.uuid4()), revision=3, call_id=None, beneficiary_id=person, sector="dairy", currency="USD",
        community_id=str(uuid.uuid4()), district_pcode=f"{governorate}Q01", governorate_pcode=governorate,
        disbursement_id=str(uuid.uuid4()), tranche=1, amount="500.00", disbursed_on=date(2026, 11, 20)),
        source="/crp/grants")


async def _load(env: Env) -> None:
    """IQG15: 7 female adults (IDPs, 6 of them with a grant) and 2 boys (returnees); IQG01: one old man (host
    community) with a grant."""
    subject = BeneficiaryRegistered.subject(env.prefix)
    women = [str(uuid.uuid4()) for _ in range(7)]
    for person in women:
        await publish_raw(env.nats_url, subject, registered_event(person, sex="female", birth_year=1990))
    for _ in range(2):
        await publish_raw(env.nats_url, subject, registered_event(sex="male", birth_year=2015,
                                                                  displacement_status="returnee"))
    elder = str(uuid.uuid4())
    await publish_raw(env.nats_url, subject, registered_event(
        elder, sex="male", birth_year=1950, displacement_status="host_community", governorate_pcode="IQG01",
        district_pcode="IQG01Q03"))
    for person in women[:6]:
        await publish_raw(env.nats_url, DisbursementMade.subject(env.prefix), _disbursed(person, "IQG15"))
    await publish_raw(env.nats_url, DisbursementMade.subject(env.prefix), _disbursed(elder, "IQG01"))


def _rows(body: bytes, *, hxl_row: bool) -> list[dict[str, str]]:
    lines = body.decode().splitlines()
    if hxl_row:
        del lines[1]
    return list(csv.DictReader(lines))


def _row(rows: list[dict[str, str]], pcode: str, indicator: str) -> dict[str, str]:
    return next(r for r in rows if r["Governorate P-code"] == pcode and r["Indicator code"] == indicator)


async def test_exports_csv_hxl_iati_with_roles_and_scope(env: Env) -> None:
    app = create_app(env.settings(IndicatorsSettings))
    officer = env.token("me_officer")
    async with running(app) as client:
        await app.state.bus.wait_ready(10)
        await _load(env)

        async def loaded() -> bool:
            figures = (await client.get("/api/v1/indicators/summary", headers=officer)).json()
            return figures["individuals_directly_assisted"] == 7 and figures["beneficiaries_registered"] == 10

        await eventually(loaded)

        # Roles: a token is needed, and a role that reports.
        for path in ("/api/v1/indicators/export.csv", "/api/v1/indicators/export.hxl.csv",
                     "/api/v1/indicators/export.iati.xml"):
            assert (await client.get(path)).status_code == 401
            refused = await client.get(path, headers=env.token("case_worker"))
            assert refused.status_code == 403 and refused.headers["content-type"] == "application/problem+json"
            bad = await client.get(path, params={"governorate": "Ninewa"}, headers=officer)
            assert bad.status_code == 422 and bad.headers["content-type"] == "application/problem+json"
            assert (await client.get(path, headers=env.token("viewer"))).status_code == 200

        # CSV: 18 governorates x the indicators, the disaggregation where it exists.
        plain = await client.get("/api/v1/indicators/export.csv", headers=officer)
        assert plain.status_code == 200 and plain.headers["content-type"].startswith("text/csv")
        assert 'filename="crp-indicators.csv"' in plain.headers["content-disposition"]
        rows = _rows(plain.content, hxl_row=False)
        assert len(rows) == 18 * len(INDICATORS)
        assisted = _row(rows, "IQG15", "individuals_directly_assisted")
        assert (assisted["Governorate"], assisted["Value"], assisted["Female 18-59"], assisted["IDPs"]) == \
               ("Ninewa", "6", "6", "6")
        registered = _row(rows, "IQG15", "beneficiaries_registered")
        assert (registered["Value"], registered["Female 18-59"], registered["Male 5-11"],
                registered["Returnees"]) == ("9", "7", "2", "2")
        assert _row(rows, "IQG01", "individuals_directly_assisted")["Male 60+"] == "1"
        assert _row(rows, "IQG15", "communities_reached")["Female 18-59"] == ""  # not a people count
        assert _row(rows, "IQG15", "grants_disbursed")["Value"] == "6"

        # HXL: the same table with hashtags, valid against the schema; libhxl reads the values by tag.
        tagged = await client.get("/api/v1/indicators/export.hxl.csv", headers=officer)
        assert tagged.status_code == 200
        assert _hxl_valid(tagged.content) == []
        data = hxl.data(io.BytesIO(tagged.content))
        assert {"#adm1+code", "#indicator+code", "#reached+f+adults", "#reached+m+elderly",
                "#reached+idps", "#reached+returnees", "#reached+hosts"} <= set(data.display_tags)
        by_tag = {(r.get("#adm1+code"), r.get("#indicator+code")): r for r in hxl.data(io.BytesIO(tagged.content))}
        ninewa = by_tag[("IQG15", "individuals_directly_assisted")]
        assert (ninewa.get("#indicator+num"), ninewa.get("#reached+f+adults"), ninewa.get("#reached+m+adults")) \
            == ("6", "6", "0")
        assert _hxl_valid(tagged.content.replace(b"IQG15,", b"IQG99,")) != []  # the schema does catch errors

        # Scope: a token for Al-Anbar sees only Al-Anbar's rows, and Ninewa is 404.
        anbar = env.token("me_officer", governorates=("IQG01",))
        scoped = _rows((await client.get("/api/v1/indicators/export.hxl.csv", headers=anbar)).content, hxl_row=True)
        assert {r["Governorate P-code"] for r in scoped} == {"IQG01"}
        assert _row(scoped, "IQG01", "individuals_directly_assisted")["Value"] == "1"
        hidden = await client.get("/api/v1/indicators/export.iati.xml", params={"governorate": "IQG15"},
                                  headers=anbar)
        assert hidden.status_code == 404 and hidden.headers["content-type"] == "application/problem+json"
        one = _rows((await client.get("/api/v1/indicators/export.csv", params={"governorate": "IQG15"},
                                      headers=officer)).content, hxl_row=False)
        assert {r["Governorate P-code"] for r in one} == {"IQG15"}

        # IATI 2.03: valid against the official schema, the figures as actuals with dimensions.
        xml = await client.get("/api/v1/indicators/export.iati.xml", headers=officer)
        assert xml.status_code == 200 and xml.headers["content-type"].startswith("application/xml")
        schema = xmlschema.XMLSchema(str(IATI_XSD))
        schema.validate(xml.content.decode())
        activity = ET.fromstring(xml.content).find("iati-activity")
        assert activity is not None
        actuals = _iati_actuals(activity)
        assert actuals["Individuals directly assisted"][None] == 7
        assert actuals["Individuals directly assisted"][("governorate", "IQG15")] == 6
        assert actuals["Individuals directly assisted"][("sex", "male")] == 1
        assert actuals["Individuals directly assisted"][("displacement_status", "idp")] == 6
        assert actuals["Small-business grants disbursed"][None] == 7
        scoped_xml = await client.get("/api/v1/indicators/export.iati.xml", headers=anbar)
        schema.validate(scoped_xml.content.decode())
        scoped_activity = ET.fromstring(scoped_xml.content).find("iati-activity")
        assert scoped_activity is not None
        assert _iati_actuals(scoped_activity)["Individuals directly assisted"] == {
            None: 1, ("governorate", "IQG01"): 1, ("sex", "male"): 1, ("displacement_status", "host_community"): 1}
        broken = xml.content.replace(b'measure="1"', b'measured="1"')
        with pytest.raises(xmlschema.XMLSchemaValidationError):
            schema.validate(broken.decode())

        # No public export: public figures are the one-dimension tables with complementary suppression only
        # (a governorate by sex and age table beside them could undo it).
        assert (await client.get("/api/v1/public/indicators/export.hxl.csv")).status_code == 404

def _iati_actuals(activity: ET.Element) -> dict[str, dict[Any, int]]:
    found: dict[str, dict[Any, int]] = {}
    for indicator in activity.iter("indicator"):
        title = indicator.findtext("title/narrative") or ""
        for actual in indicator.iter("actual"):
            dimension = actual.find("dimension")
            key = None if dimension is None else (dimension.get("name"), dimension.get("value"))
            found.setdefault(title, {})[key] = int(actual.get("value") or -1)
    return found
