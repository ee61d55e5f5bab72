#!/usr/bin/env bash
# Make sure every service the test suite needs is here: PostgreSQL on 127.0.0.1:5432 and
# Debian's chromium for the dashboard's browser tests, pgbouncer and openssl for the
# deployment tests. Under CI=true a missing service is
# an error, never a silent skip.
set -uo pipefail

PG_HOST=${XRAY_TEST_PG_HOST:-127.0.0.1}
PG_PORT=${XRAY_TEST_PG_PORT:-5432}

pg_up() { pg_isready -q -h "$PG_HOST" -p "$PG_PORT" 2>/dev/null \
  || python3 -c "import socket,sys; socket.create_connection(('$PG_HOST', $PG_PORT), 2)" 2>/dev/null; }

if ! pg_up; then
  if command -v pg_ctlcluster >/dev/null 2>&1 && [ -d /etc/postgresql ]; then
    echo "PostgreSQL is down; starting it" >&2
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n 1)" main start || true
    for _ in $(seq 1 30); do pg_up && break; sleep 1; done
  fi
fi
if pg_up; then
  echo "PostgreSQL: up on $PG_HOST:$PG_PORT"
elif [ "${CI:-}" = "true" ]; then
  echo "PostgreSQL is not reachable on $PG_HOST:$PG_PORT and CI=true: the PostgreSQL tests must run" >&2
  exit 1
else
  echo "PostgreSQL: not reachable on $PG_HOST:$PG_PORT; its tests will be skipped (they run under CI=true)" >&2
fi

# Debian's chromium (the dashboard's browser tests), PgBouncer (transaction mode, started by
# tests/deploy/test_pooler.py on its own port) and openssl (the TLS tests make their own CA);
# the TLS tests' initdb/pg_ctl come with PostgreSQL itself. What is missing is installed in
# one apt-get run.
NEEDS="chromium:/usr/bin/chromium pgbouncer:/usr/sbin/pgbouncer openssl:/usr/bin/openssl"
missing=
for need in $NEEDS; do
  [ -x "${need#*:}" ] || missing="$missing ${need%%:*}"
done
if [ -n "$missing" ] && [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
  echo "Installing Debian$missing for the browser and deployment tests" >&2
  # shellcheck disable=SC2086  # one word per package
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing) >/dev/null \
    || echo "apt-get install$missing failed" >&2
fi
if [ -x /usr/bin/chromium ]; then
  echo "chromium: $(/usr/bin/chromium --version 2>/dev/null | head -n 1)"
elif [ "${CI:-}" = "true" ]; then
  echo "/usr/bin/chromium is missing and could not be installed; the browser tests must run under CI=true" >&2
  exit 1
else
  echo "chromium: missing; the browser tests will be skipped (run as root to install it)" >&2
fi
for need in pgbouncer:/usr/sbin/pgbouncer openssl:/usr/bin/openssl; do
  package=${need%%:*}
  binary=${need#*:}
  if [ -x "$binary" ]; then
    echo "$package: $binary"
  elif [ "${CI:-}" = "true" ]; then
    echo "$binary is missing and could not be installed; the deployment tests must run under CI=true" >&2
    exit 1
  else
    echo "$package: missing; its deployment tests will be skipped (run as root to install it)" >&2
  fi
done
exit 0
