#!/usr/bin/env bash
# docs/operations.md rehearsed without a Docker engine, on this machine's PostgreSQL and NATS: the steps the
# containers run (crp migrate, crp serve, crp probe), then a backup and a restore of a database and of the
# stream, then a rebuild of the indicators. Everything it creates carries a unique prefix and is removed at the end.
#   deploy/rehearse.sh                 # PG=postgresql://postgres@127.0.0.1:5432 NATS=nats://127.0.0.1:4222 BIN=.venv/bin
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=${BIN:-$ROOT/.venv/bin}
PG=${PG:-postgresql://postgres@127.0.0.1:5432}
WORK=$(mktemp -d)
TAG=rehearse$(date +%H%M%S)
export CRP_ENV=production CRP_JWT_SECRET=$(openssl rand -base64 48) CRP_PII_KEY=$(openssl rand -base64 48)
export CRP_DATABASE_URL="$PG/${TAG}_{service}" CRP_NATS_URL=${NATS:-nats://127.0.0.1:4222}
export CRP_NATS_STREAM=${TAG^^} CRP_SUBJECT_PREFIX=$TAG CRP_MIGRATE_ON_START=false CRP_LOG_LEVEL=WARNING
BASE=${BASE:-18100}
SERVICES=$("$BIN/python" -c 'from shared import catalog; print(" ".join(catalog.built()))')
port() { "$BIN/python" -c "from shared import catalog; print($BASE if '$1' == 'gateway' else catalog.port('$1', $BASE))"; }
UP='{'; for s in $SERVICES; do UP+="\"$s\": \"http://127.0.0.1:$(port "$s")\", "; done; export CRP_UPSTREAMS="${UP%, }}"
export CRP_GATEWAY_URL=http://127.0.0.1:$BASE CRP_PUBLIC_BASE_URL=http://127.0.0.1:$BASE
drop_stream() { "$BIN/python" -c "
import asyncio, nats
async def main():
    nc = await nats.connect('$CRP_NATS_URL')
    try: await nc.jetstream().delete_stream('$CRP_NATS_STREAM')
    finally: await nc.close()
asyncio.run(main())"; }
PIDS=()
cleanup() {
  kill "${PIDS[@]}" 2>/dev/null || true; wait 2>/dev/null || true
  for db in $(sed -n 's/^CREATE DATABASE \(\w*\);$/\1/p' "$ROOT/deploy/postgres/init-databases.sql") restored; do
    psql -q "$PG/postgres" -c "DROP DATABASE IF EXISTS ${TAG}_$db" || true
  done
  drop_stream 2>/dev/null || true; rm -rf "$WORK"
}
trap cleanup EXIT
cd "$WORK"

echo "== databases (deploy/postgres/init-databases.sql, prefixed ${TAG}_)"
sed "s/CREATE DATABASE \(\w*\);/CREATE DATABASE ${TAG}_\1;/" "$ROOT/deploy/postgres/init-databases.sql" | psql -q "$PG/postgres"
echo "== crp migrate (compose's migrate step, Kubernetes' Job)"
"$BIN/crp" migrate
echo "== crp serve every service, then the gateway; crp probe --ready (the health checks)"
for s in $SERVICES gateway; do CRP_PORT=$(port "$s") "$BIN/crp" serve "$s" >"$s.log" 2>&1 & PIDS+=($!); done
for s in $SERVICES gateway; do
  for _ in $(seq 100); do CRP_PORT=$(port "$s") "$BIN/crp" probe --ready 2>/dev/null && break; sleep 0.3; done
  CRP_PORT=$(port "$s") "$BIN/crp" probe --ready && echo "$s ready on $(port "$s")"
done
curl -s "http://127.0.0.1:$BASE/readyz"; echo
echo "== a first token, a community and two people through the gateway"
TOKEN=$("$BIN/crp" token --role admin --ttl 600)
H=(-H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json')
C=$(curl -s -X POST "http://127.0.0.1:$BASE/api/v1/communities" "${H[@]}" -d '{"name": "Rehearsal", "district_pcode": "IQG15Q05"}' \
    | "$BIN/python" -c 'import json,sys; print(json.load(sys.stdin)["id"])')
for n in Amal Noor; do
  curl -s -o /dev/null -w "register $n: %{http_code}\n" -X POST "http://127.0.0.1:$BASE/api/v1/beneficiaries" "${H[@]}" \
    -d '{"first_name": "'$n'", "father_name": "Saleh", "sex": "female", "date_of_birth": "1991-03-0'${#n}'",
         "displacement_status": "idp", "community_id": "'$C'", "confirm_not_duplicate": true,
         "consent": {"given": true, "obtained_on": "2026-11-01"}}'
done
count() { curl -s "http://127.0.0.1:$BASE/api/v1/indicators/summary" -H "Authorization: Bearer $TOKEN" \
  | "$BIN/python" -c 'import json,sys; print(json.load(sys.stdin)["beneficiaries_registered"])'; }
for _ in $(seq 50); do [ "$(count)" = 2 ] && break; sleep 0.2; done; echo "indicators: beneficiaries_registered=$(count)"
echo "== backups: pg_dump per database, then crp stream backup"
mkdir -p backups; stamp=$(date -u +%Y%m%dT%H%M%SZ)
for db in $SERVICES gateway; do pg_dump -Fc "$PG/${TAG}_$db" > "backups/$db-$stamp.dump"; done
ls -l backups | tail -n +2 | awk '{print $5, $9}'
"$BIN/crp" stream backup "backups/crp-stream-$stamp.jsonl"
echo "== restores: one database into a new one; the stream after losing it; then crp indicators rebuild"
psql -q "$PG/postgres" -c "CREATE DATABASE ${TAG}_restored"
pg_restore --no-owner -d "$PG/${TAG}_restored" "backups/beneficiaries-$stamp.dump"
echo "restored beneficiaries rows: $(psql -tA "$PG/${TAG}_restored" -c 'select count(*) from beneficiaries.beneficiaries')"
drop_stream && echo "stream $CRP_NATS_STREAM deleted"
"$BIN/crp" stream restore "backups/crp-stream-$stamp.jsonl"
"$BIN/crp" indicators rebuild
echo "after the rebuild: beneficiaries_registered=$(count)"
