#!/usr/bin/env bash
# Property-based fuzzing of the HTTP API against its own OpenAPI description, with
# schemathesis (PyPI): no request may get a 5xx, and every answer must match the schema
# /openapi.json gives for it.
#   scripts/fuzz-api.sh [MAX_EXAMPLES]      (default 30 per operation)
# FUZZ_SEED=N makes the run repeatable (CI sets it); without it every run explores anew.
set -euo pipefail
cd "$(dirname "$0")/.."
examples=${1:-30}
python3 -c 'import schemathesis' 2>/dev/null || python3 -m pip install -q schemathesis >&2
cargo build --release --locked -p creditd >&2
work=$(mktemp -d "${TMPDIR:-/tmp}/creditd-fuzz.XXXXXX")
export CREDITD_ADMIN_KEY=fuzz-admin-key-0123456789
# Webhook endpoints the fuzzer registers may point only at this machine: its deliveries
# must never reach another host.
target/release/creditd serve --listen 127.0.0.1:18091 --database "sqlite://$work/fuzz.db" \
  --test-clock --webhook-destinations loopback 2>"$work/server.log" &
server=$!
trap 'kill -TERM $server 2>/dev/null; wait $server 2>/dev/null; rm -rf "$work"' EXIT
for _ in $(seq 1 100); do
  curl -sf http://127.0.0.1:18091/healthz >/dev/null && break
  sleep 0.1
done
curl -sf -H "Authorization: Bearer $CREDITD_ADMIN_KEY" http://127.0.0.1:18091/openapi.json >"$work/openapi.json"
# From the temporary folder: schemathesis keeps its example database in the current one.
cd "$work"
schemathesis run "$work/openapi.json" --url http://127.0.0.1:18091 \
  -H "Authorization: Bearer $CREDITD_ADMIN_KEY" \
  --checks not_a_server_error,response_schema_conformance,content_type_conformance \
  --max-examples "$examples" ${FUZZ_SEED:+--seed "$FUZZ_SEED"}
