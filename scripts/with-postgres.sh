#!/usr/bin/env bash
# Run a command against a throwaway PostgreSQL cluster.
#
#   scripts/with-postgres.sh CMD [ARGS...]
#
# Starts a private PostgreSQL server in a `mktemp -d` folder, listening on 127.0.0.1:$PGPORT
# (default 5433) and on a unix socket in that folder, tuned for tests (fsync, synchronous_commit
# and full_page_writes off). Creates the superuser role `tagwarden` (password `tagwarden`) and
# the database `tagwarden`, exports
#
#   DATABASE_URL=postgres://tagwarden:tagwarden@127.0.0.1:$PGPORT/tagwarden
#
# (and PGHOST/PGPORT/PGUSER/PGPASSWORD/PGDATABASE, so a bare `psql` connects too), runs CMD
# and exits with CMD's exit code. The server is stopped and the folder removed on every exit,
# including failures and Ctrl-C.
#
# Server binaries: $PG_BINDIR if set, else `pg_config --bindir`, else the newest
# /usr/lib/postgresql/*/bin, else initdb/pg_ctl on PATH. If none is found and we run as root,
# the Debian package `postgresql` is installed with apt-get.
#
# initdb refuses to run as root; as root the server runs as the system user `tagwarden-pg`
# (created with `useradd -r` on first use).
set -euo pipefail

PGPORT="${PGPORT:-5433}"
PG_SYSTEM_USER="tagwarden-pg"
DB_NAME="tagwarden"
DB_USER="tagwarden"
DB_PASSWORD="tagwarden"
START_TIMEOUT="${PG_START_TIMEOUT:-60}"

log() { printf 'with-postgres: %s\n' "$*" >&2; }
die() {
  printf 'with-postgres: error: %s\n' "$*" >&2
  exit 1
}

if [ "$#" -eq 0 ]; then
  die "usage: $0 CMD [ARGS...]"
fi
case "$PGPORT" in
  '' | *[!0-9]*) die "PGPORT must be a port number, got '$PGPORT'" ;;
esac

is_root() { [ "$(id -u)" -eq 0 ]; }

# --- locate (or install) the server binaries -------------------------------------------------
has_server_bins() { [ -x "$1/initdb" ] && [ -x "$1/pg_ctl" ] && [ -x "$1/postgres" ]; }

find_bindir() {
  local dir
  if [ -n "${PG_BINDIR:-}" ]; then
    has_server_bins "$PG_BINDIR" && { echo "$PG_BINDIR"; return 0; }
    die "PG_BINDIR=$PG_BINDIR does not contain initdb, pg_ctl and postgres"
  fi
  if command -v pg_config >/dev/null 2>&1; then
    dir="$(pg_config --bindir 2>/dev/null || true)"
    if [ -n "$dir" ] && has_server_bins "$dir"; then
      echo "$dir"
      return 0
    fi
  fi
  # Newest version first.
  # shellcheck disable=SC2012 # fixed, simple paths
  for dir in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -t/ -k5,5 -rn); do
    has_server_bins "$dir" && { echo "$dir"; return 0; }
  done
  if command -v initdb >/dev/null 2>&1 && command -v pg_ctl >/dev/null 2>&1; then
    dir="$(dirname "$(readlink -f "$(command -v initdb)")")"
    has_server_bins "$dir" && { echo "$dir"; return 0; }
  fi
  return 1
}

if ! BINDIR="$(find_bindir)"; then
  if is_root && command -v apt-get >/dev/null 2>&1; then
    log "no PostgreSQL server found; installing the 'postgresql' package with apt-get"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update
    apt-get install -y --no-install-recommends postgresql
    BINDIR="$(find_bindir)" || die "PostgreSQL was installed but its binaries were not found"
  else
    die "no PostgreSQL server binaries found (initdb, pg_ctl, postgres). Install PostgreSQL \
(e.g. 'sudo apt-get install postgresql') or set PG_BINDIR."
  fi
fi

PSQL="$BINDIR/psql"
[ -x "$PSQL" ] || PSQL="$(command -v psql || true)"
[ -n "$PSQL" ] || die "psql not found (install postgresql-client)"
PG_ISREADY="$BINDIR/pg_isready"
[ -x "$PG_ISREADY" ] || PG_ISREADY="$(command -v pg_isready || true)"

# --- run server commands as a non-root user ---------------------------------------------------
if is_root; then
  if ! id -u "$PG_SYSTEM_USER" >/dev/null 2>&1; then
    command -v useradd >/dev/null 2>&1 || die "running as root and useradd is missing; cannot create '$PG_SYSTEM_USER'"
    # `|| id -u` tolerates a concurrent run creating the user first.
    useradd -r -M -d /nonexistent -s /usr/sbin/nologin -U "$PG_SYSTEM_USER" 2>/dev/null \
      || id -u "$PG_SYSTEM_USER" >/dev/null 2>&1 \
      || die "could not create system user '$PG_SYSTEM_USER'"
  fi
  as_pg() {
    if command -v runuser >/dev/null 2>&1; then
      runuser -u "$PG_SYSTEM_USER" -- "$@"
    else
      # shellcheck disable=SC2016 # $0/$@ expand in the inner shell
      su -s /bin/sh "$PG_SYSTEM_USER" -c '"$0" "$@"' -- "$@"
    fi
  }
else
  as_pg() { "$@"; }
fi

# --- fail fast if the port is taken -----------------------------------------------------------
port_in_use() {
  # A successful TCP connect means something is listening.
  timeout 2 bash -c "exec 3<>/dev/tcp/127.0.0.1/$1" >/dev/null 2>&1
}
if port_in_use "$PGPORT"; then
  die "port $PGPORT on 127.0.0.1 is already in use; stop whatever listens there or set PGPORT to a free port"
fi

# --- the throwaway cluster --------------------------------------------------------------------
TMP_ROOT=""
DATA_DIR=""
STARTED=0

# shellcheck disable=SC2329 # called from the EXIT trap
cleanup() {
  local pid=""
  if [ "$STARTED" -eq 1 ] && [ -n "$DATA_DIR" ]; then
    if [ -f "$DATA_DIR/postmaster.pid" ]; then
      pid="$(head -n 1 "$DATA_DIR/postmaster.pid" 2>/dev/null || true)"
    fi
    (cd "$TMP_ROOT" && as_pg "$BINDIR/pg_ctl" -D "$DATA_DIR" -m immediate -w -t 20 stop) \
      >/dev/null 2>&1 || true
    # Belt and braces: the postmaster must not outlive us.
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
      kill -KILL "$pid" 2>/dev/null || true
      sleep 0.2
    fi
  fi
  if [ -n "$TMP_ROOT" ] && [ -d "$TMP_ROOT" ]; then
    rm -rf "$TMP_ROOT"
  fi
}
trap 'rc=$?; trap - EXIT INT TERM; cleanup; exit "$rc"' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

TMP_ROOT="$(mktemp -d -t tagwarden-pg.XXXXXX)"
# Unix socket paths are limited to ~107 bytes; a long $TMPDIR would break the socket.
if [ "${#TMP_ROOT}" -gt 80 ]; then
  rm -rf "$TMP_ROOT"
  TMP_ROOT="$(mktemp -d /tmp/tagwarden-pg.XXXXXX)"
fi
if is_root; then
  chown "$PG_SYSTEM_USER:" "$TMP_ROOT"
  if ! as_pg test -w "$TMP_ROOT"; then
    # $TMPDIR is not reachable by the server user (e.g. under /root); use /tmp instead.
    rm -rf "$TMP_ROOT"
    TMP_ROOT="$(mktemp -d /tmp/tagwarden-pg.XXXXXX)"
    chown "$PG_SYSTEM_USER:" "$TMP_ROOT"
    as_pg test -w "$TMP_ROOT" || die "$PG_SYSTEM_USER cannot write to $TMP_ROOT"
  fi
fi
DATA_DIR="$TMP_ROOT/data"
LOG_FILE="$TMP_ROOT/postgres.log"
PWFILE="$TMP_ROOT/pwfile"

printf '%s\n' "$DB_PASSWORD" >"$PWFILE"
is_root && chown "$PG_SYSTEM_USER:" "$PWFILE"

# Run server tools from the temp dir: the server user may not be able to enter our cwd.
if ! (cd "$TMP_ROOT" && as_pg "$BINDIR/initdb" -D "$DATA_DIR" -U "$DB_USER" --pwfile="$PWFILE" \
  --auth-local=trust --auth-host=scram-sha-256 -E UTF8 --no-locale --no-sync) \
  >"$TMP_ROOT/initdb.log" 2>&1; then
  cat "$TMP_ROOT/initdb.log" >&2
  die "initdb failed"
fi
rm -f "$PWFILE"

cat >>"$DATA_DIR/postgresql.conf" <<EOF

# --- scripts/with-postgres.sh: throwaway test cluster ---
listen_addresses = '127.0.0.1'
port = $PGPORT
unix_socket_directories = '$TMP_ROOT'
max_connections = 200
fsync = off
synchronous_commit = off
full_page_writes = off
logging_collector = off
EOF

STARTED=1
if ! (cd "$TMP_ROOT" && as_pg "$BINDIR/pg_ctl" -D "$DATA_DIR" -l "$LOG_FILE" -w -t "$START_TIMEOUT" start) \
  >/dev/null 2>&1; then
  cat "$LOG_FILE" >&2 2>/dev/null || true
  if grep -qi 'address already in use' "$LOG_FILE" 2>/dev/null; then
    die "port $PGPORT on 127.0.0.1 is already in use; set PGPORT to a free port"
  fi
  die "PostgreSQL did not start within ${START_TIMEOUT}s (log above)"
fi

# pg_ctl -w already waited; confirm TCP readiness, bounded.
if [ -n "$PG_ISREADY" ]; then
  for _ in $(seq 1 50); do
    if "$PG_ISREADY" -q -h 127.0.0.1 -p "$PGPORT" -d postgres; then
      break
    fi
    sleep 0.2
  done
  "$PG_ISREADY" -q -h 127.0.0.1 -p "$PGPORT" -d postgres || die "PostgreSQL is not accepting TCP connections on 127.0.0.1:$PGPORT"
fi

# Superuser role `tagwarden` was created by initdb (bootstrap user); now the database.
"$PSQL" -X -q -v ON_ERROR_STOP=1 -h "$TMP_ROOT" -p "$PGPORT" -U "$DB_USER" -d postgres \
  -c "CREATE DATABASE $DB_NAME OWNER $DB_USER" >/dev/null \
  || die "could not create database '$DB_NAME'"

export DATABASE_URL="postgres://$DB_USER:$DB_PASSWORD@127.0.0.1:$PGPORT/$DB_NAME"
export PGHOST=127.0.0.1 PGPORT PGUSER="$DB_USER" PGPASSWORD="$DB_PASSWORD" PGDATABASE="$DB_NAME"
log "PostgreSQL $("$BINDIR/postgres" --version | sed -E 's/^[^0-9]*([0-9][0-9.]*).*/\1/') ready at 127.0.0.1:$PGPORT (data in $TMP_ROOT)"

set +e
"$@"
rc=$?
set -e
exit "$rc"
