"""The indicators' read side at the programme's scale: summary, exports and the dashboard's public calls over a
projection of N people (default 41,200, every one directly assisted, as `crp demo --scale seed` leaves it).

    .venv/bin/python bench/exports.py [--people 41200] [--database-url postgresql://...]

The projection is written straight into a fresh indicators database (SQLite in a temporary folder unless
--database-url) with Core inserts: what is measured is reading it, through the service's app (ASGI, no network).
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import tempfile
import time
import uuid
from datetime import date
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from services.indicators.app import create_app, service  # noqa: E402
from services.indicators.config import IndicatorsSettings  # noqa: E402
from services.indicators.models import Assistance, Person  # noqa: E402
from shared.auth import issue_token  # noqa: E402
from shared.db import create_engine, utcnow  # noqa: E402
from shared.settings import CommonSettings  # noqa: E402

GOVERNORATES = ("IQG15", "IQG01", "IQG16", "IQG13", "IQG10", "IQG08", "IQG11", "IQG09", "IQG07")


async def fill(settings: IndicatorsSettings, people: int) -> None:
    engine = create_engine(settings)
    await service.migrate(engine, settings)
    rng = random.Random(7)
    persons, assistance = [], []
    for i in range(people):
        pid = str(uuid.uuid4())
        governorate = GOVERNORATES[i % len(GOVERNORATES)]
        persons.append(dict(beneficiary_id=pid, registered=True, revision=1, sex=rng.choice(("female", "male")),
                            birth_year=rng.randint(1950, 2007), displacement_status=rng.choice(
                                ("idp", "returnee", "host_community")), has_disability=False,
                            community_id=f"c{i % 284}", district_pcode=f"{governorate}Q01",
                            governorate_pcode=governorate, registered_at=utcnow()))
        assistance.append(dict(source_id=f"enrolment:{pid}", person_id=pid, kind="training", on=date(2026, 11, 1)))
    async with engine.begin() as conn:
        await conn.execute(Person.__table__.insert(), persons)  # type: ignore[attr-defined]
        await conn.execute(Assistance.__table__.insert(), assistance)  # type: ignore[attr-defined]
    await engine.dispose()


async def measure(settings: IndicatorsSettings) -> None:
    app = create_app(settings)
    headers = {"Authorization": "Bearer " + issue_token(CommonSettings(), roles=["me_officer"], sub="bench")}
    paths = ["/api/v1/indicators/summary", "/api/v1/public/indicators/summary?governorate=IQG15",
             "/api/v1/public/indicators/breakdown?indicator=individuals_directly_assisted&by=sex",
             "/api/v1/indicators/export.csv", "/api/v1/indicators/export.hxl.csv",
             "/api/v1/indicators/export.iati.xml"]
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://bench", timeout=120) as client:
            for path in paths:
                times = []
                for _ in range(3):
                    started = time.perf_counter()
                    resp = await client.get(path, headers=headers)
                    times.append(time.perf_counter() - started)
                    assert resp.status_code == 200, resp.text
                print(f"{path:<75} median {sorted(times)[1] * 1000:8.0f} ms  ({len(resp.content):,} bytes)")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--people", type=int, default=41_200)
    parser.add_argument("--database-url", default=None)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        settings = IndicatorsSettings(env="dev", data_dir=Path(tmp), database_url=args.database_url,
                                      nats_stream=f"BENCH{uuid.uuid4().hex[:8]}",
                                      subject_prefix=f"bench{uuid.uuid4().hex[:8]}")
        started = time.perf_counter()
        asyncio.run(fill(settings, args.people))
        took = time.perf_counter() - started
        print(f"projection of {args.people:,} people directly assisted written in {took:.1f} s")
        asyncio.run(measure(settings))


if __name__ == "__main__":
    main()
