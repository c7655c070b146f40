# Sourced by the distribution benchmarks (bench-distribution.sh, bench-sweep.sh): reading
# a running server's metrics and moving its test clock. Needs `addr` (host:port) and
# CREDITD_ADMIN_KEY set.

# metric NAME LABEL: the sum of the samples of NAME whose labels contain LABEL.
metric() {
  curl -sf "http://$addr/metrics" -H "Authorization: Bearer $CREDITD_ADMIN_KEY" |
    awk -v name="$1" -v label="$2" 'index($0, name "{") == 1 && index($0, label) { sum += $NF }
      END { printf "%d\n", sum }'
}

# events_reach TYPE COUNT PAUSE: waits until COUNT events of TYPE are recorded, looking
# every PAUSE seconds.
events_reach() {
  while [ "$(metric creditd_events_recorded_total "$1")" -lt "$2" ]; do sleep "$3"; done
}

# advance SECONDS: moves the test clock.
advance() {
  curl -sf -X POST "http://$addr/v1/test-clock" -H "Authorization: Bearer $CREDITD_ADMIN_KEY" \
    -H 'Content-Type: application/json' -d "{\"advance_seconds\": $1}" >/dev/null
}
