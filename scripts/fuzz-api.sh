#!/usr/bin/env bash
# Property-based fuzzing of the HTTP API against its own OpenAPI description, with
# schemathesis (PyPI), every check but one: no request may get a 5xx, every answer's
# status, headers, content type and body must be documented, schema-violating requests
# must be refused, auth must be required. Left out: positive_data_acceptance, whose
# remaining failures are refusals JSON Schema cannot foresee (docs/DECISIONS.md, "The
# OpenAPI document"). Then /metrics must parse with prometheus_client's parser.
#   scripts/fuzz-api.sh [MAX_EXAMPLES]      (default 30 per operation)
# FUZZ_SEED=N makes the run repeatable (CI sets it); without it every run explores anew.
set -euo pipefail
cd "$(dirname "$0")/.."
examples=${1:-30}
python3 -c 'import schemathesis, prometheus_client' 2>/dev/null ||
  python3 -m pip install -q schemathesis prometheus_client >&2
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
  --checks all --exclude-checks positive_data_acceptance \
  --max-examples "$examples" ${FUZZ_SEED:+--seed "$FUZZ_SEED"}
curl -sf -H "Authorization: Bearer $CREDITD_ADMIN_KEY" http://127.0.0.1:18091/metrics |
  python3 -c '
import sys
from prometheus_client.parser import text_string_to_metric_families
families = list(text_string_to_metric_families(sys.stdin.read()))
empty = [f.name for f in families if not f.samples]
assert not empty, f"families without samples: {empty}"
print(f"/metrics: {len(families)} families, {sum(len(f.samples) for f in families)} samples parsed")'
