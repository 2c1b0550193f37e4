#!/usr/bin/env bash
# Manages a project-local PostgreSQL cluster under <repo>/.data/pg, which the
# app and the tests use when DATABASE_URL is unset. It never touches another
# cluster: no pg_ctlcluster, no /etc/postgresql, no port 5432.
#
# Usage: scripts/local-pg.sh COMMAND
#   start          create the cluster if missing, start it if stopped, wait until it
#                  accepts connections and create the database siteline if missing
#   stop           stop the cluster (fast shutdown: open sessions are disconnected)
#   status         print the state; exit 0 running, 3 stopped, 4 not created
#   url            print the DATABASE_URL of the database siteline
#   admin-url      print the URL of the database postgres
#   env            print 'export DATABASE_URL=...', for eval "$(scripts/local-pg.sh env)"
#   drop-test-dbs  drop every database named siteline_test_*, disconnecting its sessions
#
# Environment:
#   SITELINE_PG_PORT  TCP port on 127.0.0.1 (default 54329)
#
# Run it as root: PostgreSQL refuses to run as root, so the server runs as the
# postgres system user. Run by another user, the server runs as that user.
set -euo pipefail

SCRIPT_NAME=local-pg
# shellcheck source=lib.sh
source "$(dirname -- "$0")/lib.sh"
export DEBIAN_FRONTEND=noninteractive

usage() {
  sed -n '6,21s/^# \{0,1\}//p' "$0"
}

# libpq reads PGHOST, PGPORT, PGSERVICE and others, which could send psql and
# pg_isready to another server. Every call below names its target explicitly.
while read -r name; do
  unset "$name"
done < <(compgen -e | grep '^PG' || true)

DATABASE_NAME=siteline
TEST_DATABASE_PREFIX=siteline_test_
DEFAULT_PORT=54329
# Seconds to wait for the server to accept connections after pg_ctl start.
READY_TIMEOUT=30
# Unix socket paths must fit sockaddr_un.sun_path (108 bytes on Linux, with
# the terminating NUL).
MAX_SOCKET_PATH_BYTES=107

DATA_ROOT="$SITELINE_REPO_ROOT/.data/pg"
PGDATA_DIR="$DATA_ROOT/data"
LOG_DIR="$DATA_ROOT/log"
LOG_FILE="$LOG_DIR/postgres.log"
LOCK_FILE="$DATA_ROOT/lock"

PORT="${SITELINE_PG_PORT:-$DEFAULT_PORT}"

validate_port() {
  if [[ ! "$PORT" =~ ^[0-9]+$ ]] || ((PORT < 1024 || PORT > 65535)); then
    die "SITELINE_PG_PORT='$PORT' is invalid: set a TCP port from 1024 to 65535, or unset it for $DEFAULT_PORT"
  fi
  if ((PORT == 5432)); then
    die "SITELINE_PG_PORT=5432 is the default port of the system cluster: choose another port, or unset it for $DEFAULT_PORT"
  fi
}

database_url() {
  printf 'postgres://postgres@127.0.0.1:%s/%s\n' "$PORT" "$1"
}

# --- who runs the server ----------------------------------------------------------

if [[ "$(id -u)" == 0 ]]; then
  PG_OS_USER=postgres
else
  PG_OS_USER="$(id -un)"
fi

# Runs a command as the server's OS user. The cd keeps initdb and pg_ctl from
# failing on a working directory that the postgres user cannot enter.
as_pg() {
  if [[ "$(id -u)" == 0 ]]; then
    (cd / && runuser -u "$PG_OS_USER" -- "$@")
  else
    "$@"
  fi
}

ensure_os_user() {
  [[ "$(id -u)" == 0 ]] || return 0
  id "$PG_OS_USER" >/dev/null 2>&1 && return
  useradd --system --user-group --no-create-home --home-dir /var/lib/postgresql \
    --shell /usr/sbin/nologin "$PG_OS_USER"
  say "created system user $PG_OS_USER: PostgreSQL refuses to run as root"
}

# --- binaries, paths and directories ----------------------------------------------

# Sets PG_MAJOR and PG_BIN. An existing cluster keeps the major that created it,
# because a server of another major cannot open its data directory.
select_binaries() {
  local cluster_major=""
  if [[ -f "$PGDATA_DIR/PG_VERSION" ]]; then
    cluster_major="$(<"$PGDATA_DIR/PG_VERSION")"
  fi

  if [[ -n "$cluster_major" ]]; then
    if [[ ! -x "/usr/lib/postgresql/$cluster_major/bin/postgres" ]]; then
      die "the cluster at $PGDATA_DIR was created by PostgreSQL $cluster_major, but /usr/lib/postgresql/$cluster_major/bin/postgres is missing: install postgresql-$cluster_major, or delete $DATA_ROOT and run start again"
    fi
    PG_MAJOR="$cluster_major"
  else
    PG_MAJOR="$(pg_highest_major)"
    [[ -n "$PG_MAJOR" ]] || die "PostgreSQL server binaries not found under /usr/lib/postgresql: run scripts/prereqs.sh"
  fi
  PG_BIN="/usr/lib/postgresql/$PG_MAJOR/bin"
}

# Sets SOCKET_DIR. The socket stays inside .data unless its path would be too
# long for a Unix socket, as in deep CI checkouts. The fallback under /tmp is
# named after a hash of the repo path, so each checkout gets its own.
select_socket_dir() {
  SOCKET_DIR="$DATA_ROOT/run"
  local socket_path="$SOCKET_DIR/.s.PGSQL.$PORT"
  if (($(printf '%s' "$socket_path" | wc -c) > MAX_SOCKET_PATH_BYTES)); then
    local hash
    hash="$(printf '%s' "$SITELINE_REPO_ROOT" | sha256sum | cut -c1-16)"
    SOCKET_DIR="/tmp/siteline-pg-$hash"
  fi
}

# Creates a directory owned by the server's OS user with mode 700, after
# checking that an existing one (the socket folder may sit in /tmp) is not
# another user's.
make_server_dir() {
  local dir="$1" owner
  if [[ -L "$dir" ]]; then
    die "$dir is a symbolic link, not a directory: remove it and run start again"
  fi
  if [[ -e "$dir" ]]; then
    owner="$(stat -c %U "$dir")"
    if [[ ! -d "$dir" ]] || [[ "$owner" != "$PG_OS_USER" && "$owner" != "$(id -un)" ]]; then
      die "$dir exists but is not a directory owned by $PG_OS_USER (owner: $owner): remove it and run start again"
    fi
  fi
  install -d -m 700 -o "$PG_OS_USER" -g "$(id -g "$PG_OS_USER")" "$dir"
}

prepare_dirs() {
  mkdir -p "$DATA_ROOT"
  make_server_dir "$PGDATA_DIR"
  make_server_dir "$LOG_DIR"
  make_server_dir "$SOCKET_DIR"
}

# Installs the acl package for setfacl when it is missing.
ensure_setfacl() {
  command -v setfacl >/dev/null && return
  say "installing acl: setfacl grants $PG_OS_USER access to the folders above $SITELINE_REPO_ROOT"
  local log
  log="$(mktemp "${TMPDIR:-/tmp}/siteline-apt-acl.XXXXXX")"
  if ! { apt-get update -qq && apt-get install -y -qq --no-install-recommends acl; } \
    >"$log" 2>&1; then
    tail -n 20 "$log" >&2
    die "installing acl with apt-get failed (output in $log): run 'apt-get install acl', then start again"
  fi
  rm -f "$log"
}

# The repo may sit below a directory that the postgres user cannot enter, such
# as /root in CI. Only then, and only for that user, this adds an ACL entry with
# execute (traverse) permission to each such directory. Nothing is opened to others.
ensure_traversal() {
  [[ "$(id -u)" == 0 ]] || return 0
  runuser -u "$PG_OS_USER" -- test -x "$DATA_ROOT" && return

  # Walk down from /, because a folder below a blocked one looks blocked too
  # until its parent is fixed.
  local granted=() dir="" part
  local -a parts
  IFS=/ read -r -a parts <<<"${DATA_ROOT#/}"
  for part in "" "${parts[@]}"; do
    dir="${dir%/}/$part"
    runuser -u "$PG_OS_USER" -- test -x "$dir" && continue
    ensure_setfacl
    setfacl -m "u:$PG_OS_USER:x" "$dir" \
      || die "setfacl -m u:$PG_OS_USER:x $dir failed: the filesystem may lack ACL support, so move the repo below a folder that $PG_OS_USER can enter"
    granted+=("$dir")
  done
  say "granted $PG_OS_USER traverse (x) permission with setfacl on: ${granted[*]}"

  runuser -u "$PG_OS_USER" -- test -x "$DATA_ROOT" \
    || die "$PG_OS_USER still cannot enter $DATA_ROOT after setfacl: check the permissions of its parent folders"
}

take_lock() {
  exec 9>>"$LOCK_FILE"
  flock -w 120 9 || die "another local-pg.sh has held $LOCK_FILE for 120 s: wait for it to finish, then retry"
}

# --- server state -----------------------------------------------------------------

cluster_exists() {
  [[ -f "$PGDATA_DIR/PG_VERSION" ]]
}

server_running() {
  as_pg "$PG_BIN/pg_ctl" status -D "$PGDATA_DIR" >/dev/null 2>&1
}

# Prints line N of postmaster.pid: 1 is the pid, 4 the port, 5 the socket folder.
postmaster_pid_field() {
  sed -n "${1}p" "$PGDATA_DIR/postmaster.pid" 2>/dev/null || true
}

psql_admin() {
  "$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$SOCKET_DIR" -p "$PORT" -U postgres -d postgres "$@"
}

# --- start ------------------------------------------------------------------------

init_cluster() {
  if [[ -n "$(ls -A "$PGDATA_DIR")" ]]; then
    die "$PGDATA_DIR is not empty but has no PG_VERSION, perhaps from an interrupted initdb: delete it and run start again"
  fi
  # Trust authentication lets any local user connect as any database role
  # without a password. That is acceptable here because the server listens only
  # on 127.0.0.1 and on a socket in a folder that only root and the server's
  # user can enter. Any local user can still connect over TCP.
  if ! as_pg "$PG_BIN/initdb" -D "$PGDATA_DIR" --auth=trust --username=postgres \
    --encoding=UTF8 --locale=C.UTF-8 >"$LOG_DIR/initdb.log" 2>&1; then
    tail -n 20 "$LOG_DIR/initdb.log" >&2
    die "initdb failed for $PGDATA_DIR: see $LOG_DIR/initdb.log"
  fi
  printf "\n# Settings of scripts/local-pg.sh, rewritten at every start.\ninclude = 'siteline.conf'\n" \
    >>"$PGDATA_DIR/postgresql.conf"
  say "created cluster at $PGDATA_DIR (PostgreSQL $PG_MAJOR)"
}

# Quotes a value for postgresql.conf, which doubles single quotes.
conf_quote() {
  printf "'%s'" "${1//\'/\'\'}"
}

write_server_conf() {
  local conf="$PGDATA_DIR/siteline.conf"
  cat >"$conf" <<EOF
# Written by scripts/local-pg.sh at every start, so edits here are lost.
# Override a setting with ALTER SYSTEM, which postgresql.auto.conf keeps.
listen_addresses = '127.0.0.1'
port = $PORT
unix_socket_directories = $(conf_quote "$SOCKET_DIR")
# Integration tests open one pool per test database, many at a time.
max_connections = 200
shared_buffers = 128MB
# The cluster holds only test databases and the seeded demo, which are rebuilt at will, so it
# skips flushing to disk: tests run faster, and a crash (say, a full disk) does not leave
# minutes of start-up syncing behind. Never copy these three lines to a real server.
fsync = off
synchronous_commit = off
full_page_writes = off
EOF
  chown "$PG_OS_USER:" "$conf"
  chmod 600 "$conf"
}

# Fails when any process already listens on 127.0.0.1:PORT, which postgres
# would otherwise report only in its log.
check_port_free() {
  if (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; then
    die "port $PORT on 127.0.0.1 is already in use by another process: set SITELINE_PG_PORT to a free port and run start again"
  fi
}

start_server() {
  check_port_free
  write_server_conf
  # 9>&- keeps the server from inheriting the lock, which would block every
  # later start and stop for as long as the server runs.
  as_pg "$PG_BIN/pg_ctl" start -D "$PGDATA_DIR" -l "$LOG_FILE" -W -s 9>&-

  local deadline=$((SECONDS + READY_TIMEOUT)) elapsed_checks=0
  until "$PG_BIN/pg_isready" -q -h "$SOCKET_DIR" -p "$PORT" -U postgres -d postgres; do
    # postgres writes postmaster.pid early in startup, so when pg_ctl status
    # finds no server after a second, postgres has exited and waiting is pointless.
    if ((elapsed_checks >= 5)) && ! server_running; then
      tail -n 20 "$LOG_FILE" >&2
      die "PostgreSQL exited during startup: see $LOG_FILE"
    fi
    if ((SECONDS >= deadline)); then
      tail -n 20 "$LOG_FILE" >&2
      die "PostgreSQL did not accept connections within $READY_TIMEOUT s on port $PORT: see $LOG_FILE"
    fi
    sleep 0.2
    elapsed_checks=$((elapsed_checks + 1))
  done
  say "started PostgreSQL $PG_MAJOR on 127.0.0.1:$PORT (data $PGDATA_DIR, log $LOG_FILE)"
}

ensure_database() {
  local exists
  exists="$(psql_admin -tA -c "SELECT 1 FROM pg_database WHERE datname = '$DATABASE_NAME'")"
  if [[ "$exists" != 1 ]]; then
    psql_admin -c "CREATE DATABASE $DATABASE_NAME"
    say "created database $DATABASE_NAME"
  fi
}

cmd_start() {
  validate_port
  ensure_os_user
  select_binaries
  select_socket_dir
  prepare_dirs
  ensure_traversal
  take_lock

  if ! cluster_exists; then
    init_cluster
  fi

  if server_running; then
    local running_port
    running_port="$(postmaster_pid_field 4)"
    if [[ "$running_port" != "$PORT" ]]; then
      die "the cluster at $PGDATA_DIR is running on port $running_port, not SITELINE_PG_PORT=$PORT: run 'scripts/local-pg.sh stop', then start again"
    fi
    say "already running on 127.0.0.1:$PORT (pid $(postmaster_pid_field 1), data $PGDATA_DIR)"
  else
    start_server
  fi

  ensure_database
  say "DATABASE_URL=$(database_url "$DATABASE_NAME")"
}

# --- stop, status, drop-test-dbs ------------------------------------------------------

cmd_stop() {
  if ! cluster_exists; then
    say "no cluster at $PGDATA_DIR, so nothing to stop"
    return
  fi
  select_binaries
  take_lock
  if ! server_running; then
    say "not running (cluster at $PGDATA_DIR)"
    return
  fi
  local port
  port="$(postmaster_pid_field 4)"
  as_pg "$PG_BIN/pg_ctl" stop -D "$PGDATA_DIR" -m fast -w -t 60 -s \
    || die "pg_ctl stop failed for $PGDATA_DIR: see $LOG_FILE"
  say "stopped PostgreSQL on 127.0.0.1:$port (data $PGDATA_DIR)"
}

cmd_status() {
  if ! cluster_exists; then
    say "not created: no cluster at $PGDATA_DIR: run 'scripts/local-pg.sh start' to create it"
    exit 4
  fi
  select_binaries
  if ! server_running; then
    say "stopped: cluster at $PGDATA_DIR (PostgreSQL $PG_MAJOR) is not running"
    exit 3
  fi
  local port
  port="$(postmaster_pid_field 4)"
  say "running: PostgreSQL $PG_MAJOR, pid $(postmaster_pid_field 1), 127.0.0.1:$port, socket folder $(postmaster_pid_field 5), data $PGDATA_DIR, log $LOG_FILE"
  if [[ "$port" != "$PORT" ]]; then
    warn "SITELINE_PG_PORT=$PORT differs from the running port $port, so 'url' prints a URL that does not connect: stop and start again"
  fi
}

cmd_drop_test_dbs() {
  validate_port
  cluster_exists || die "no cluster at $PGDATA_DIR: run 'scripts/local-pg.sh start' first"
  select_binaries
  select_socket_dir
  server_running || die "the cluster at $PGDATA_DIR is not running: run 'scripts/local-pg.sh start' first"
  take_lock

  local filter="starts_with(datname, '$TEST_DATABASE_PREFIX')" count
  count="$(psql_admin -tA -c "SELECT count(*) FROM pg_database WHERE $filter")"
  if [[ "$count" == 0 ]]; then
    say "no databases named $TEST_DATABASE_PREFIX* to drop"
    return
  fi
  # WITH (FORCE), from PostgreSQL 13 on, disconnects sessions that a crashed
  # or still running test left open, which would otherwise block the drop.
  psql_admin >/dev/null <<EOF
SELECT format('DROP DATABASE %I WITH (FORCE)', datname) FROM pg_database WHERE $filter
\gexec
EOF
  say "dropped $count database(s) named $TEST_DATABASE_PREFIX*"
}

# --- main ---------------------------------------------------------------------------

main() {
  if (($# != 1)); then
    usage >&2
    die "expected exactly one command, got $#: see the usage above"
  fi
  case "$1" in
    start) cmd_start ;;
    stop) cmd_stop ;;
    status) cmd_status ;;
    url) validate_port; database_url "$DATABASE_NAME" ;;
    admin-url) validate_port; database_url postgres ;;
    env) validate_port; printf 'export DATABASE_URL=%s\n' "$(database_url "$DATABASE_NAME")" ;;
    drop-test-dbs) cmd_drop_test_dbs ;;
    -h | --help | help) usage ;;
    *) usage >&2; die "unknown command '$1': see the usage above" ;;
  esac
}

# Bash reads a script while running it, so the exit on this line keeps an edit
# made in the meantime from being run.
main "$@"; exit
