#!/usr/bin/env bash
# The distribution sweep alone, with no load: what one member's distribution costs the
# server (the figures of docs/BENCHMARKS.md, "a scrape and a count").
#   scripts/bench-sweep.sh [COUNT] [sqlite|postgres]
# Environment:
#   BIN=path     the creditd binary to measure (default target/release/creditd), so that
#                builds can be compared interleaved on one seeded database
#   SEED=path    SQLite: a database seeded by seed_members with COUNT members (copied, not
#                changed); without it, COUNT members are seeded first
#   SEED=name    PostgreSQL: a database on 127.0.0.1:5432 seeded likewise, cloned for the
#                run (CREATE DATABASE … TEMPLATE); without it, a fresh one is seeded
#   PERF=file    also record `perf record -g` of the server during the sweep into file
# 1. Starts creditd serve --test-clock and waits until it has recorded the notices due
#    already (the agent credits' expiring-soon notices).
# 2. Moves the test clock past the distribution instant and times the sweep until every
#    member's distribution is recorded.
# Prints the seconds, members/s, the server's CPU per member (from /proc/PID/stat), the
# bytes it wrote per member (wchar of /proc/PID/io: WAL and checkpoints), its threads'
# context switches per member, how
# long /metrics answers, and the server's peak resident memory; on PostgreSQL also the
# CPU its processes used a member.
set -euo pipefail
cd "$(dirname "$0")/.."
count=${1:-400000}
backend=${2:-sqlite}
bin=${BIN:-target/release/creditd}
addr=127.0.0.1:18091
[ -n "${BIN:-}" ] || cargo build --release --locked -p creditd >&2
work=$(mktemp -d "${TMPDIR:-/tmp}/creditd-sweep.XXXXXX")
database="creditd_sweep_$$"
server=
cleanup() {
  if [ -n "$server" ]; then kill -TERM "$server" 2>/dev/null || true; wait "$server" || true; fi
  [ "$backend" = postgres ] && dropdb -h 127.0.0.1 -U postgres --if-exists --force "$database" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT
export CREDITD_ADMIN_KEY=bench-admin-key-0123456789
if [ "$backend" = postgres ]; then
  url="postgres://postgres@127.0.0.1:5432/$database"
  if [ -n "${SEED:-}" ]; then
    createdb -h 127.0.0.1 -U postgres -T "$SEED" "$database"
  else
    createdb -h 127.0.0.1 -U postgres "$database"
  fi
  # Every run starts at the same point of PostgreSQL's checkpoint cycle.
  psql -h 127.0.0.1 -U postgres -qc CHECKPOINT
else
  url="sqlite://$work/sweep.db"
  [ -z "${SEED:-}" ] || cp "$SEED" "$work/sweep.db"
fi
if [ -z "${SEED:-}" ]; then
  cargo build --release --locked -p creditd-server --example seed_members >&2
  anchor=$(date -u -d "-1 month +2 hours" +%FT%TZ)
  target/release/examples/seed_members "$url" "$count" "$anchor"
fi
"$bin" serve --listen "$addr" --database "$url" --test-clock \
  >/dev/null 2>"$work/server.log" &
server=$!
for _ in $(seq 1 300); do curl -sf "http://$addr/healthz" >/dev/null && break; sleep 0.1; done
# shellcheck source=scripts/sweep-common.sh
. scripts/sweep-common.sh
cpu() { awk '{ print $14 + $15 }' "/proc/$server/stat"; }
# CPU ticks of every PostgreSQL process (its backends come and go; those that ended are
# not counted: the server keeps its connections).
pg_cpu() {
  for pid in $(pgrep -x postgres); do cat "/proc/$pid/stat" 2>/dev/null; done |
    awk '{ n += $14 + $15 } END { print n + 0 }'
}
# The WAL PostgreSQL has written: bytes, full-page images, records.
pg_wal() {
  psql -h 127.0.0.1 -U postgres -Atc "SELECT wal_bytes, wal_fpi, wal_records FROM pg_stat_wal" |
    tr '|' ' '
}
written() { awk '/^wchar/ { print $2 }' "/proc/$server/io"; }
# Context switches of all the server's threads (those that ended are not counted).
switches() { cat /proc/"$server"/task/*/status | awk '/ctxt_switches/ { n += $2 } END { print n }'; }
events_reach credits.expiring_soon "$count" 0.5
sleep 2
echo "after the notices: $(grep VmHWM "/proc/$server/status")"
before=$(cpu)
pg_before=$(pg_cpu)
[ "$backend" = sqlite ] || wal_before=$(pg_wal)
written_before=$(written)
switches_before=$(switches)
if [ -n "${PERF:-}" ]; then
  perf record -F 299 -g -p "$server" -o "$PERF" 2>/dev/null &
  perf=$!
  sleep 1
fi
start=$(date +%s.%N)
advance 7200
events_reach membership.credits_distributed "$count" 0.1
end=$(date +%s.%N)
after=$(cpu)
pg_after=$(pg_cpu)
[ "$backend" = sqlite ] || wal_after=$(pg_wal)
written_after=$(written)
switches_after=$(switches)
if [ -n "${PERF:-}" ]; then kill -INT "$perf"; wait "$perf" || true; fi
seconds=$(echo "$end - $start" | bc)
ticks=$(getconf CLK_TCK)
echo "distributed $count members in $seconds s ($(echo "$count / $seconds" | bc) a second)"
echo "server CPU: $(echo "scale=1; ($after - $before) / $ticks" | bc) s," \
  "$(echo "($after - $before) * 1000000 / $ticks / $count" | bc) µs a member"
[ "$backend" = sqlite ] ||
  echo "PostgreSQL CPU: $(echo "scale=1; ($pg_after - $pg_before) / $ticks" | bc) s," \
    "$(echo "($pg_after - $pg_before) * 1000000 / $ticks / $count" | bc) µs a member"
if [ "$backend" = postgres ]; then
  read -r bytes0 fpi0 records0 <<<"$wal_before"
  read -r bytes1 fpi1 records1 <<<"$wal_after"
  echo "PostgreSQL WAL: $(( (bytes1 - bytes0) / count )) bytes, " \
    "$(echo "scale=2; ($fpi1 - $fpi0) / $count" | bc) full-page images," \
    "$(echo "scale=1; ($records1 - $records0) / $count" | bc) records a member"
fi
echo "server wrote $(( (written_after - written_before) / 1000000 )) MB," \
  "$(( (written_after - written_before) / count )) bytes a member (wchar)"
echo "server threads switched $(( switches_after - switches_before )) times," \
  "$(echo "scale=2; ($switches_after - $switches_before) / $count" | bc) a member"
curl -s -o /dev/null -w "/metrics answered in %{time_total} s\n" "http://$addr/metrics" \
  -H "Authorization: Bearer $CREDITD_ADMIN_KEY"
grep 'counted the accounts' "$work/server.log" | sed 's/^.*INFO //' || true
echo "server peak RSS: $(grep VmHWM "/proc/$server/status")"
