#!/usr/bin/env bash
# Durable throughput of creditd over HTTP, server and load generator on this machine.
#   scripts/bench-http.sh [SECONDS]
# Runs creditd-load (64 clients; 70% charges, 20% balance reads, 10% grants; every write
# with an Idempotency-Key) against a fresh SQLite database, for each commit mode (group,
# per-request) and each spread (10,000 accounts, one hot account). Figures go to stdout.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-10}
cargo build --release --locked -p creditd -p creditd-loadgen >&2
work=$(mktemp -d "${TMPDIR:-/tmp}/creditd-bench.XXXXXX")
trap 'pkill -TERM -f "creditd serve --listen 127.0.0.1:18089" 2>/dev/null || true; rm -rf "$work"' EXIT
export CREDITD_ADMIN_KEY=bench-admin-key-0123456789
for mode in group per-request; do
  for accounts in 10000 1; do
    rm -f "$work"/bench.db*
    target/release/creditd serve --listen 127.0.0.1:18089 --database "sqlite://$work/bench.db" \
      --commit "$mode" 2>"$work/server.log" &
    for _ in $(seq 1 100); do
      curl -sf http://127.0.0.1:18089/healthz >/dev/null && break
      sleep 0.1
    done
    echo "== commit $mode, $accounts account(s), 64 clients, $seconds s"
    target/release/creditd-load --addr 127.0.0.1:18089 --clients 64 --accounts "$accounts" \
      --seconds "$seconds" 2>/dev/null
    kill -TERM %1
    wait
  done
done
