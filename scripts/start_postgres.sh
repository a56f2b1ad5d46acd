#!/usr/bin/env bash
# Make sure the machine's PostgreSQL answers on 127.0.0.1:5432 (the tests' server, see scenarios_tests/pg_helpers.py):
# start the cluster when it is down, and fail (never skip) when it cannot be started.
set -euo pipefail

ready() { pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; }

if ! ready; then
    version="$(ls /etc/postgresql 2>/dev/null | sort -V | tail -n 1)"
    if [ -z "$version" ]; then
        echo "error: PostgreSQL is not running and no cluster exists under /etc/postgresql" >&2
        exit 1
    fi
    echo "== postgresql: starting cluster $version/main"
    pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
    for _ in $(seq 1 30); do ready && break; sleep 1; done
    if ! ready; then
        echo "error: PostgreSQL $version/main did not start (pg_ctlcluster failed or 127.0.0.1:5432 is not accepting connections)" >&2
        exit 1
    fi
fi

# The tests create their own throw-away databases from the database `test` (SCENARIOS_TEST_PG_URL).
if [ -z "${SCENARIOS_TEST_PG_URL:-}" ]; then
    if ! psql -h 127.0.0.1 -U postgres -d postgres -tAc "SELECT 1 FROM pg_database WHERE datname = 'test'" | grep -q 1; then
        createdb -h 127.0.0.1 -U postgres test
    fi
    echo "== postgresql: $(psql -h 127.0.0.1 -U postgres -d test -tAc 'SHOW server_version') on 127.0.0.1:5432"
fi
