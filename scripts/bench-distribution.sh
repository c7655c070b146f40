#!/usr/bin/env bash
# Monthly distributions at scale: COUNT members whose distribution falls due at one
# instant, distributed (with their events) by the background sweep while charges go on.
#   scripts/bench-distribution.sh [COUNT] [sqlite|postgres]
# 1. Seeds COUNT members anchored one month (less two hours) ago, through the writer
#    (crates/server/examples/seed_members.rs).
# 2. Starts creditd serve --test-clock on that database and waits until it has caught up
#    what is already due (the agent credits' expiring-soon notices).
# 3. Runs 10 s of charges (16 clients, 1,000 other accounts): the baseline.
# 4. Moves the test clock past the distribution instant and, with the same charges
#    running in rounds of 10 s until it is through, times the sweep until every member's
#    distribution is recorded.
# Prints the seconds, distributions/s, charges/s with and without the sweep, and the
# server's peak resident memory. PostgreSQL: a fresh database on 127.0.0.1:5432.
# BIN=path measures another creditd binary (default target/release/creditd), so that
# builds can be compared interleaved; SEEDER=path seeds with another build's seed_members
# (default target/release/examples/seed_members), for a build whose migrations differ.
set -euo pipefail
cd "$(dirname "$0")/.."
count=${1:-1000000}
backend=${2:-sqlite}
addr=127.0.0.1:18090
bin=${BIN:-target/release/creditd}
seeder=${SEEDER:-target/release/examples/seed_members}
cargo build --release --locked -p creditd -p creditd-loadgen >&2
cargo build --release --locked -p creditd-server --example seed_members >&2
work=$(mktemp -d "${TMPDIR:-/tmp}/creditd-dist.XXXXXX")
database="creditd_dist_$$"
server=
cleanup() {
  if [ -n "$server" ]; then kill -TERM "$server" 2>/dev/null || true; wait "$server" || true; fi
  [ "$backend" = postgres ] && dropdb -h 127.0.0.1 -U postgres --if-exists --force "$database" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT
if [ "$backend" = postgres ]; then
  createdb -h 127.0.0.1 -U postgres "$database"
  url="postgres://postgres@127.0.0.1:5432/$database"
else
  url="sqlite://$work/dist.db"
fi
export CREDITD_ADMIN_KEY=bench-admin-key-0123456789
anchor=$(date -u -d "-1 month +2 hours" +%FT%TZ)
echo "== seeding $count members anchored at $anchor ($backend)"
/usr/bin/time -f "seed: %e s, peak RSS %M KiB" \
  "$seeder" "$url" "$count" "$anchor"

"$bin" serve --listen "$addr" --database "$url" --test-clock >/dev/null 2>"$work/server.log" &
server=$!
for _ in $(seq 1 300); do curl -sf "http://$addr/healthz" >/dev/null && break; sleep 0.1; done
# shellcheck source=scripts/sweep-common.sh
. scripts/sweep-common.sh
echo "== waiting for what is due already (expiring-soon notices)"
start=$(date +%s.%N)
events_reach credits.expiring_soon "$count" 0.5
echo "notices: $(echo "$(date +%s.%N) - $start" | bc) s"

load() {
  target/release/creditd-load --addr "$addr" --clients 16 --accounts 1000 --seconds "$1" \
    --mix 100,0,0 --prefix "$2" 2>/dev/null | grep -E '^(op|charge)' || true
}
echo "== charges without the sweep (10 s)"
load 10 quiet-

echo "== moving the test clock past the distribution instant"
# Charges the whole time the sweep runs: rounds of 10 s until it is through (the last
# round ends up to 10 s after it, so it is left out of the mean when there are others).
( while [ ! -e "$work/swept" ]; do load 10 busy- | grep '^charge' || true; done ) \
  > "$work/load.txt" &
loader=$!
sleep 2
start=$(date +%s.%N)
advance 7200
events_reach membership.credits_distributed "$count" 0.25
end=$(date +%s.%N)
touch "$work/swept"
seconds=$(echo "$end - $start" | bc)
echo "distributed $count members in $seconds s ($(echo "$count / $seconds" | bc) a second)"
wait $loader
echo "== charges during the sweep, rounds of 10 s (the first began 2 s before it)"
echo "op           count      per s   p50 ms   p99 ms p99.9 ms    max ms   failed"
cat "$work/load.txt"
awk '{ rate[NR] = $3; gsub(",", "", rate[NR]) }
  END { n = NR > 1 ? NR - 1 : NR; for (i = 1; i <= n; i++) sum += rate[i];
        if (n > 0) printf "charges/s during the sweep: %d (mean of %d rounds of 10 s)\n", sum / n, n }' \
  "$work/load.txt"
echo "server peak RSS: $(grep VmHWM /proc/$server/status)"
