#!/usr/bin/env bash
# Durable throughput of creditd on PostgreSQL, nodes and load generator on this machine.
#   scripts/bench-postgres.sh [SECONDS]
# For one node and for two nodes (group commit), for one node committing one transaction
# per request, and for the plain-SQL baseline (creditd-load --plain-sql: no creditd, each
# client's request one transaction of SELECT ... FOR UPDATE, UPDATE, INSERT), each on
# 10,000 accounts and on one hot account: a fresh database on
# the machine's PostgreSQL (CREDITD_BENCH_POSTGRES, default
# postgres://postgres@127.0.0.1:5432), then creditd-load with 64 clients (70% charges,
# 20% balance reads, 10% grants, every write with an Idempotency-Key), spread over the
# nodes. Figures go to stdout.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-10}
server=${CREDITD_BENCH_POSTGRES:-postgres://postgres@127.0.0.1:5432}
scripts/postgres-up.sh
cargo build --release --locked -p creditd -p creditd-loadgen >&2
database=creditd_bench_$$
trap 'pkill -TERM -f "creditd serve --listen 127.0.0.1:1809" 2>/dev/null || true
      psql "$server/postgres" -qc "DROP DATABASE IF EXISTS $database WITH (FORCE)" >/dev/null' EXIT
export CREDITD_ADMIN_KEY=bench-admin-key-0123456789
run() { # MODE NODES ACCOUNTS
  local mode=$1 nodes=$2 accounts=$3 addrs=() pids=()
  psql "$server/postgres" -qc "DROP DATABASE IF EXISTS $database WITH (FORCE)" >/dev/null
  psql "$server/postgres" -qc "CREATE DATABASE $database" >/dev/null
  for n in $(seq 1 "$nodes"); do
    target/release/creditd serve --listen "127.0.0.1:1809$n" --database "$server/$database" \
      --commit "$mode" 2>/dev/null &
    pids+=($!)
    addrs+=(--addr "127.0.0.1:1809$n")
    for _ in $(seq 1 100); do
      curl -sf "http://127.0.0.1:1809$n/healthz" >/dev/null && break
      sleep 0.1
    done
  done
  echo "== PostgreSQL, commit $mode, $nodes node(s), $accounts account(s), 64 clients, $seconds s"
  target/release/creditd-load "${addrs[@]}" --clients 64 --accounts "$accounts" \
    --seconds "$seconds" 2>/dev/null
  kill -TERM "${pids[@]}"
  wait "${pids[@]}" || true
}
plain() { # ACCOUNTS
  psql "$server/postgres" -qc "DROP DATABASE IF EXISTS $database WITH (FORCE)" >/dev/null
  psql "$server/postgres" -qc "CREATE DATABASE $database" >/dev/null
  echo "== PostgreSQL, plain SQL baseline (no creditd), $1 account(s), 64 clients, $seconds s"
  target/release/creditd-load --plain-sql "$server/$database" --clients 64 --accounts "$1" \
    --seconds "$seconds" 2>/dev/null
}
for accounts in 10000 1; do
  run group 1 "$accounts"
  run group 2 "$accounts"
  run per-request 1 "$accounts"
  plain "$accounts"
done
