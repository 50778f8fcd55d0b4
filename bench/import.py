"""Bulk import of N beneficiaries (CSV) with duplicate detection, through the import path; prints rows/s.

    .venv/bin/python bench/import.py [--rows 50000] [--duplicates 0.05] [--batch-size 500]
                                     [--nats-url nats://127.0.0.1:4222]
                                     [--database-url postgresql://postgres@127.0.0.1:5432/test]

Runs the beneficiaries service in process (its lifespan: migrations, outbox relay, the import worker),
uploads one CSV through `POST /api/v1/beneficiaries/imports` and polls the job until it is complete.
Every row goes through the import path with the single-registration rules (validation, consent, scope,
matching against the registry and the file's earlier rows, audit, outbox event), a batch of rows
(--batch-size) per transaction. A share of the rows (`--duplicates`) repeats an earlier person with
another spelling, so matching has work to do. Without --database-url it uses a SQLite file in a temporary
folder; it uses its own stream and PostgreSQL schema (removed at the end); without --nats-url it starts a
NATS server from the wheel.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import io
import os
import random
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
import nats  # noqa: E402

from services.beneficiaries.app import create_app  # noqa: E402
from services.beneficiaries.config import BeneficiariesSettings  # noqa: E402
from services.cli import start_nats  # noqa: E402
from shared.auth import issue_token  # noqa: E402
from shared.settings import CommonSettings  # noqa: E402

FIRST = {"male": ["Ahmed", "Mohammed", "Ali", "Hassan", "Hussein", "Omar", "Khalid", "Yousif", "Ibrahim", "Mustafa",
                  "Abbas", "Karim", "Salim", "Jassim", "Faisal", "Hamid", "Nabil", "Rami", "Tariq", "Ziad"],
         "female": ["Fatima", "Zainab", "Maryam", "Sara", "Huda", "Noor", "Layla", "Aisha", "Rasha", "Muna",
                    "Amal", "Hana", "Dalia", "Iman", "Rana", "Salma", "Shaima", "Wafa", "Yasmin", "Zahra"]}
FATHERS = FIRST["male"] + ["Abdullah", "Saad", "Kadhim", "Majid", "Qasim", "Adnan", "Basim", "Falah", "Ghanim",
                           "Haidar", "Jabbar", "Mahdi", "Nasser", "Raad", "Sabah", "Talib", "Walid", "Zuhair"]
VARIANTS = {"Mohammed": "Muhammad", "Ahmed": "Ahmad", "Yousif": "Yusuf", "Hussein": "Husain", "Zainab": "Zaynab",
            "Fatima": "Fatimah", "Karim": "Kareem", "Jassim": "Jasim", "Omar": "Umar", "Noor": "Nour"}
DISTRICTS = ["IQG15Q05", "IQG15Q01", "IQG15Q02", "IQG15Q03", "IQG15Q04", "IQG01Q01", "IQG01Q02", "IQG06Q01",
             "IQG06Q02", "IQG09Q01", "IQG10Q01", "IQG11Q01", "IQG12Q01", "IQG13Q01", "IQG14Q01", "IQG16Q01",
             "IQG17Q01", "IQG18Q01", "IQG02Q01", "IQG07Q01"]
FIELDS = ["first_name", "father_name", "grandfather_name", "sex", "date_of_birth", "displacement_status",
          "community_id", "consent.given", "consent.obtained_on"]


def make_csv(rows: int, duplicate_share: float, communities: list[str], rng: random.Random) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(FIELDS)
    people: list[list[str]] = []
    for _ in range(rows):
        if people and rng.random() < duplicate_share:  # the same person again, spelled another way
            row = list(rng.choice(people))
            row[0] = VARIANTS.get(row[0], row[0])
            row[2] = ""
        else:
            sex = rng.choice(["male", "female"])
            row = [rng.choice(FIRST[sex]), rng.choice(FATHERS), rng.choice(FATHERS), sex,
                   f"{rng.randint(1940, 2010)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}",
                   rng.choice(["idp", "returnee", "host_community"]), rng.choice(communities), "true", "2026-10-01"]
            people.append(row)
        writer.writerow(row)
    return out.getvalue().encode()


async def main(args: argparse.Namespace) -> None:
    tag = uuid.uuid4().hex[:8]
    with tempfile.TemporaryDirectory() as tmp:
        nats_proc = None
        nats_url = args.nats_url
        if nats_url is None:
            nats_proc, nats_url = start_nats(Path(tmp))
        values: dict[str, object] = dict(nats_url=nats_url, nats_stream=f"BENCH{tag}", subject_prefix=f"bench{tag}",
                                         data_dir=Path(tmp), import_batch_size=args.batch_size, log_level="WARNING")
        if args.database_url:
            values.update(database_url=args.database_url, database_schema=f"bench_{tag}")
        else:
            values.update(database_url=f"sqlite:///{tmp}/beneficiaries.db")
        settings = BeneficiariesSettings(**values)  # type: ignore[arg-type]
        token = issue_token(CommonSettings(), roles=("programme_manager",), governorates=("*",), sub="bench")
        headers = {"Authorization": f"Bearer {token}"}
        app = create_app(settings)
        try:
            async with app.router.lifespan_context(app):
                transport = httpx.ASGITransport(app=app)
                async with httpx.AsyncClient(transport=transport, base_url="http://bench", timeout=120) as client:
                    communities = []
                    for i, district in enumerate(DISTRICTS):
                        resp = await client.post("/api/v1/communities", headers=headers,
                                                 json={"name": f"bench {i}", "district_pcode": district})
                        resp.raise_for_status()
                        communities.append(resp.json()["id"])
                    body = make_csv(args.rows, args.duplicates, communities, random.Random(args.seed))
                    start = time.perf_counter()
                    resp = await client.post("/api/v1/beneficiaries/imports", content=body,
                                             headers={**headers, "Content-Type": "text/csv"})
                    resp.raise_for_status()
                    accepted = time.perf_counter() - start
                    url = f"/api/v1/beneficiaries/imports/{resp.json()['id']}"
                    last = -1.0
                    while True:
                        job = (await client.get(url, headers=headers)).json()
                        if job["status"] == "completed":
                            break
                        now = time.perf_counter()
                        if now - last >= 5:
                            last = now
                            print(f"  {job['processed_rows']}/{job['total_rows']} rows after {now - start:.1f}s",
                                  file=sys.stderr)
                        await asyncio.sleep(0.2)
                    total = time.perf_counter() - start
            backend = "PostgreSQL" if args.database_url else "SQLite"
            print(f"{backend}: {job['total_rows']} rows in {total:.1f}s ({job['total_rows'] / total:.0f} rows/s; "
                  f"upload accepted in {accepted:.1f}s): {job['created_rows']} created, {job['duplicate_rows']} "
                  f"probable duplicates, {job['invalid_rows']} invalid; load average "
                  f"{' '.join(f'{x:.1f}' for x in os.getloadavg())}")
        finally:
            try:
                nc = await nats.connect(nats_url)
                await nc.jetstream().delete_stream(settings.nats_stream)
                await nc.close()
            except Exception:
                pass
            if args.database_url:
                import asyncpg
                conn = await asyncpg.connect(args.database_url)
                await conn.execute(f'DROP SCHEMA IF EXISTS "bench_{tag}" CASCADE')
                await conn.close()
            if nats_proc is not None:
                nats_proc.terminate()
                nats_proc.wait(10)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=50_000)
    parser.add_argument("--duplicates", type=float, default=0.05)
    parser.add_argument("--batch-size", type=int, default=500)  # the service's default
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--nats-url")
    parser.add_argument("--database-url")
    asyncio.run(main(parser.parse_args()))
