"""The indicators at programme scale: load N persons and M assistance records straight into the projection
(in bulk), start the indicators service on it and time its answers over HTTP; print p50/p95 of the summary and
of three-dimension breakdowns, with the same breakdown read row by row from the ledger as the baseline
measured in this run, and the memory the service process holds.

    .venv/bin/python bench/indicators.py [--persons 1000000] [--assistance 3000000] [--runs 40]
                                         [--database-url postgresql://postgres@127.0.0.1:5432/test]
    .venv/bin/python bench/indicators.py --small        # 20,000 persons, 60,000 records: a quick smoke run

Without --database-url it uses a SQLite file in a temporary folder; with one it uses its own PostgreSQL schema
(dropped at the end). The rows are what the handlers would have written (``persons``, ``assistance``,
``reach``, ``reach_cells``, ``reach_communities``, ``reach_residences``, ``processed_events``), generated with a
fixed seed. The rebuild rate is measured by
``bench/rebuild.py`` and the event → indicator lag by ``bench/register.py``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402

from services.indicators.app import service  # noqa: E402
from services.indicators.config import IndicatorsSettings  # noqa: E402
from services.indicators.reach import PILLARS  # noqa: E402
from shared.auth import issue_token  # noqa: E402
from shared.db import create_engine  # noqa: E402
from shared.events import age_group  # noqa: E402
from shared.settings import CommonSettings  # noqa: E402

CHUNK = 20_000
GOVERNORATES = [f"IQG{n:02d}" for n in range(1, 19)]
STATUSES = ("idp", "returnee", "host_community")
FIRST_DAY = date(2024, 1, 1)
DAYS = 1000


def _uuid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def generate(persons: int, assistance: int, seed: int = 1) -> Any:
    """Yield (table, rows) chunks: persons with their assistance, then reach rows; counts at the end."""
    rng = random.Random(seed)
    communities = [(_uuid(rng), g, f"{g}Q{d:02d}") for g in GOVERNORATES for d in range(1, 6) for _ in range(22)]
    per_person = assistance / persons
    cells: Counter[tuple[str, ...]] = Counter()
    monthly: Counter[tuple[str, ...]] = Counter()
    registered: Counter[tuple[str, ...]] = Counter()
    residences: Counter[tuple[str, ...]] = Counter()
    reached: dict[str, list[Any]] = {}
    person_rows: list[tuple[Any, ...]] = []
    assistance_rows: list[tuple[Any, ...]] = []
    reach_rows: list[tuple[Any, ...]] = []
    processed_rows: list[tuple[Any, ...]] = []  # the events that made them (the summary's as_of reads the latest)
    made = 0
    for i in range(persons):
        pid = _uuid(rng)
        community, governorate, district = rng.choice(communities)
        sex = rng.choice(("female", "male"))
        birth_year = rng.randint(1940, 2024)
        status = rng.choice(STATUSES)
        disabled = rng.random() < 0.12
        at = datetime(2024, 1, 1, tzinfo=UTC) + timedelta(minutes=rng.randrange(DAYS * 1440))
        person_rows.append((pid, True, 1, sex, birth_year, status, disabled, community, None, district, governorate,
                            at, None, at.strftime("%Y-%m"), age_group(birth_year, at)))
        registered[(governorate, at.strftime("%Y-%m"), sex, age_group(birth_year, at), status,
                    "yes" if disabled else "no")] += 1
        left = persons - i
        count = (assistance - made) if left == 1 else min(assistance - made, rng.randint(0, int(2 * per_person)))
        first: tuple[Any, ...] | None = None
        for _ in range(count):
            where = rng.choice(communities) if rng.random() < 0.2 else (community, governorate, district)
            kind, pillar = rng.choice((("grant", "local_economies"), ("training", "human_capital"),
                                       ("training", "good_governance"), ("project", "basic_services"),
                                       ("dialogue", "safer_communities")))
            on = FIRST_DAY + timedelta(days=rng.randrange(DAYS))
            row = (f"{kind}:{_uuid(rng)}", pid, kind, on, pillar, where[0], where[2], where[1])
            assistance_rows.append(row)
            if first is None or (on, row[0]) < (first[3], first[0]):
                first = row
        processed_rows.append((f"registered-{i}", "crp.beneficiaries.beneficiary.registered.v1", at))
        processed_rows.extend((f"assisted-{made + k}", "crp.grants.disbursement.made.v1", at) for k in range(count))
        made += count
        if first is not None:
            values = (pid, first[3], first[3].strftime("%Y-%m"), first[4], first[5], first[6], first[7], sex,
                      age_group(birth_year, first[3]), status, "yes" if disabled else "no", community, governorate)
            residences[(community, governorate)] += 1
            reach_rows.append(values)
            cells[(values[6], values[3], values[7], values[8], values[9], values[10])] += 1
            monthly[(values[2], values[6], values[3], values[7], values[8])] += 1
            reached.setdefault(first[5], [first[7], 0])[1] += 1
        if len(assistance_rows) >= CHUNK or len(person_rows) >= CHUNK:
            yield "persons", person_rows
            yield "assistance", assistance_rows
            yield "reach", reach_rows
            yield "processed_events", processed_rows
            person_rows, assistance_rows, reach_rows, processed_rows = [], [], [], []
    yield "persons", person_rows
    yield "assistance", assistance_rows
    yield "reach", reach_rows
    yield "processed_events", processed_rows
    yield "reach_cells", [(*key, n) for key, n in cells.items()]
    yield "reach_monthly", [(*key, n) for key, n in monthly.items()]
    yield "registered_cells", [(*key, n) for key, n in registered.items()]
    yield "reach_communities", [(c, g, n) for c, (g, n) in reached.items()]
    yield "reach_residences", [(*key, n) for key, n in residences.items()]


COLUMNS = {
    "persons": ("beneficiary_id", "registered", "revision", "sex", "birth_year", "displacement_status",
                "has_disability", "community_id", "household_id", "district_pcode", "governorate_pcode",
                "registered_at", "merged_into_id", "registered_month", "registered_age_group"),
    "assistance": ("source_id", "person_id", "kind", "on", "pillar", "community_id", "district_pcode",
                   "governorate_pcode"),
    "reach": ("person_id", "first_on", "month", "pillar", "community_id", "district_pcode", "governorate_pcode",
              "sex", "age_group", "displacement_status", "disability", "home_community_id", "home_governorate_pcode"),
    "reach_cells": ("governorate_pcode", "pillar", "sex", "age_group", "displacement_status", "disability", "people"),
    "reach_monthly": ("month", "governorate_pcode", "pillar", "sex", "age_group", "people"),
    "registered_cells": ("governorate_pcode", "month", "sex", "age_group", "displacement_status", "disability",
                         "people"),
    "reach_communities": ("community_id", "governorate_pcode", "people"),
    "reach_residences": ("community_id", "governorate_pcode", "people"),
    "processed_events": ("event_id", "event_type", "processed_at"),
}


async def load(settings: IndicatorsSettings, persons: int, assistance: int) -> dict[str, int]:
    engine = create_engine(settings)
    try:
        await service.migrate(engine, settings)
    finally:
        await engine.dispose()
    counts: Counter[str] = Counter()
    if settings.is_sqlite:
        path = settings.async_database_url.split(":///", 1)[1]
        conn = sqlite3.connect(path)
        conn.execute("PRAGMA synchronous = OFF")
        for table, rows in generate(persons, assistance):
            cols = COLUMNS[table]
            conn.executemany(f'INSERT INTO {table} ({", ".join(f"{c!r}" for c in cols)}) VALUES '
                             f'({", ".join("?" for _ in cols)})',
                             [tuple(v.isoformat(sep=" ") if isinstance(v, datetime) else
                                    v.isoformat() if isinstance(v, date) else v for v in row) for row in rows])
            counts[table] += len(rows)
        conn.commit()
        conn.execute("ANALYZE")
        conn.close()
    else:
        import asyncpg

        conn = await asyncpg.connect(settings.database_url)
        try:
            for table, rows in generate(persons, assistance):
                if rows:
                    await conn.copy_records_to_table(table, records=rows, columns=COLUMNS[table],
                                                     schema_name=settings.schema)
                counts[table] += len(rows)
            await conn.execute(f'ANALYZE "{settings.schema}".reach; ANALYZE "{settings.schema}".reach_cells; '
                               f'ANALYZE "{settings.schema}".persons; ANALYZE "{settings.schema}".assistance')
        finally:
            await conn.close()
    return dict(counts)


def start_service(settings: IndicatorsSettings) -> tuple[subprocess.Popen[bytes], str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if not k.startswith("CRP_")}
    env.update(CRP_ENV="dev", CRP_DATABASE_URL=settings.database_url or "", CRP_NATS_URL=settings.nats_url,
               CRP_NATS_STREAM=settings.nats_stream, CRP_SUBJECT_PREFIX=settings.subject_prefix,
               CRP_LOG_LEVEL="WARNING")
    if settings.database_schema:
        env["CRP_DATABASE_SCHEMA"] = settings.database_schema
    proc = subprocess.Popen([sys.executable, "-m", "uvicorn", "--factory", "services.indicators.app:create_app",
                             "--host", "127.0.0.1", "--port", str(port), "--no-access-log", "--log-level", "warning"],
                            cwd=ROOT, env=env, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    proc.terminate()
    raise SystemExit("the indicators service did not start")


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def measure(client: httpx.Client, path: str, params: dict[str, str], runs: int) -> tuple[float, float, Any]:
    body = None
    times = []
    for _ in range(runs + 2):
        started = time.perf_counter()
        resp = client.get(path, params=params)
        elapsed = time.perf_counter() - started
        if resp.status_code != 200:
            raise SystemExit(f"{path} {params} answered {resp.status_code}: {resp.text[:300]}")
        body = resp.json()
        times.append(elapsed * 1000)
    times = times[2:]  # the first two warm the caches
    return statistics.median(times), percentile(times, 95), body


def main(args: argparse.Namespace) -> None:
    tag = uuid.uuid4().hex[:8]
    with tempfile.TemporaryDirectory() as tmp:
        values: dict[str, Any] = dict(nats_url=args.nats_url, nats_stream=f"BENCHI{tag}",
                                      subject_prefix=f"benchi{tag}", data_dir=Path(tmp))
        if args.database_url:
            values.update(database_url=args.database_url, database_schema=f"bench_ind_{tag}")
        else:
            values.update(database_url=f"sqlite:///{tmp}/indicators.db")
        settings = IndicatorsSettings(**values)
        backend = "postgresql" if args.database_url else "sqlite"
        proc = None
        try:
            started = time.perf_counter()
            counts = asyncio.run(load(settings, args.persons, args.assistance))
            print(f"{backend}: loaded {counts['persons']:,} persons, {counts['assistance']:,} assistance records, "
                  f"{counts['reach']:,} reach rows, {counts['reach_cells']:,} + {counts['reach_monthly']:,} count "
                  "cells in "
                  f"{time.perf_counter() - started:.0f} s", flush=True)
            proc, url = start_service(settings)
            token = issue_token(CommonSettings(), roles=["me_officer"], sub="bench")
            rss_start = rss_mib(proc.pid)
            with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=120) as client:
                cases = [
                    ("summary (whole programme)", "/api/v1/indicators/summary", {}, args.runs),
                    ("summary (one governorate)", "/api/v1/indicators/summary", {"governorate": "IQG15"}, args.runs),
                    ("breakdown sex,age_group,governorate", "/api/v1/indicators/breakdown",
                     {"indicator": "individuals_directly_assisted", "by": "sex,age_group,governorate"}, args.runs),
                    ("breakdown pillar,month,sex 2025", "/api/v1/indicators/breakdown",
                     {"indicator": "individuals_directly_assisted", "by": "pillar,month,sex",
                      "from": "2025-01-01", "to": "2025-12-31"}, args.runs),
                    ("public breakdown by governorate", "/api/v1/public/indicators/breakdown",
                     {"indicator": "individuals_directly_assisted", "by": "governorate"}, args.runs),
                    ("baseline: sex,age_group,governorate from the ledger rows", "/api/v1/indicators/breakdown",
                     {"indicator": "individuals_directly_assisted", "by": "sex,age_group,governorate",
                      "from": "2000-01-01", "to": "2099-12-30"}, max(3, args.runs // 8)),
                    ("breakdown community,sex (ledger rows)", "/api/v1/indicators/breakdown",
                     {"indicator": "individuals_directly_assisted", "by": "community,sex"}, max(3, args.runs // 8)),
                    ("breakdown registered sex,age_group,governorate", "/api/v1/indicators/breakdown",
                     {"indicator": "beneficiaries_registered", "by": "sex,age_group,governorate"}, args.runs),
                    ("baseline: registered sex,age_group,governorate (rows)", "/api/v1/indicators/breakdown",
                     {"indicator": "beneficiaries_registered", "by": "sex,age_group,governorate",
                      "from": "2000-01-01", "to": "2099-12-30"}, max(3, args.runs // 8)),
                ]
                results = {}
                for name, path, params, runs in cases:
                    p50, p95, body = measure(client, path, params, runs)
                    results[name] = p95
                    extra = ""
                    if "items" in body and body.get("total") is not None:
                        extra = f"  ({len(body['items'])} cells, total {body['total']:,})"
                    elif "individuals_directly_assisted" in body:
                        extra = f"  (directly assisted {body['individuals_directly_assisted']:,})"
                    print(f"  {name:<58} p50 {p50:8.1f} ms  p95 {p95:8.1f} ms  [{runs} runs]{extra}", flush=True)
                ratio = results["baseline: sex,age_group,governorate from the ledger rows"] / results[
                    "breakdown sex,age_group,governorate"]
                print(f"  three-dimension breakdown: counts table {ratio:.1f}x faster (p95) than the ledger rows")
            print(f"  service memory (RSS): {rss_start:.0f} MiB after start, {rss_mib(proc.pid):.0f} MiB after the "
                  "queries", flush=True)
        finally:
            if proc is not None:
                os.killpg(proc.pid, signal.SIGTERM)
                proc.wait(30)
            if args.database_url:
                async def drop() -> None:
                    import asyncpg

                    conn = await asyncpg.connect(args.database_url)
                    await conn.execute(f'DROP SCHEMA IF EXISTS "{settings.schema}" CASCADE')
                    await conn.close()

                asyncio.run(drop())


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--persons", type=int, default=1_000_000)
    parser.add_argument("--assistance", type=int, default=3_000_000)
    parser.add_argument("--runs", type=int, default=40)
    parser.add_argument("--small", action="store_true", help="20,000 persons and 60,000 records (a smoke run)")
    parser.add_argument("--nats-url", default="nats://127.0.0.1:4222",
                        help="the service connects to it (nothing is published); unreachable is fine")
    parser.add_argument("--database-url")
    args = parser.parse_args()
    if args.small:
        args.persons, args.assistance, args.runs = 20_000, 60_000, 20
    assert all(p in PILLARS for p in ("local_economies", "human_capital"))
    main(args)
