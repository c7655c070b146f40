#!/usr/bin/env bash
# Starts this machine's PostgreSQL cluster if it is down, and waits until it accepts
# connections on 127.0.0.1:5432. Used by CI; harmless when it is already up.
set -euo pipefail
if pg_isready -q -h 127.0.0.1 -p 5432; then
  exit 0
fi
version=$(ls /etc/postgresql)
echo "starting PostgreSQL $version" >&2
pg_ctlcluster --skip-systemctl-redirect "$version" main start
for _ in $(seq 1 50); do
  pg_isready -q -h 127.0.0.1 -p 5432 && exit 0
  sleep 0.2
done
echo "PostgreSQL did not come up on 127.0.0.1:5432" >&2
exit 1
