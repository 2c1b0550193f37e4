#!/usr/bin/env bash
# Runs the browser end-to-end tests against a freshly built Siteline server.
#
# It creates a throwaway database, migrates it, seeds the demo tenant as `make run` does and
# creates a personal API token for the demo manager. Then it starts the server on a free
# 127.0.0.1 port with the demo jobs turned on, queues two demo.fail jobs for the Dead letters
# journeys, waits until both are dead and runs `npm test` here.
# On exit it stops the server and drops the database, and it exits with the status of the
# tests.
#
# Environment:
#   SERVER_BIN          path to the built server binary
#   LEPTOS_SITE_ROOT    the built site directory with the wasm bundle, passed to the server
#   ADMIN_DATABASE_URL  PostgreSQL URL of a maintenance database, such as
#                       postgres://postgres@127.0.0.1:54329/postgres; the test database is
#                       created and dropped through it
#   CHROMIUM_PATH       optional, the Chromium binary (default /usr/bin/chromium)
#
# The server log goes to end2end/screenshots/server.log, next to the screenshots.
set -euo pipefail

readonly READY_TIMEOUT_SECONDS=60
# The demo jobs fail for good on their first attempt, and the workers poll every JOB_POLL_MS.
readonly DEAD_LETTER_TIMEOUT_SECONDS=60
readonly ROLES=(manager approver approver2 admin)

E2E_DIR=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)
readonly E2E_DIR
readonly SCREENSHOT_DIR="$E2E_DIR/screenshots"
readonly SERVER_LOG="$SCREENSHOT_DIR/server.log"

fail() {
  printf 'run.sh: %s\n' "$*" >&2
  exit 1
}

: "${SERVER_BIN:?is missing: set it to the built server binary, for example ~/.cache/siteline/target/debug/server}"
: "${LEPTOS_SITE_ROOT:?is missing: set it to the built site directory, for example target/site}"
: "${ADMIN_DATABASE_URL:?is missing: set it to a maintenance database URL, for example postgres://postgres@127.0.0.1:54329/postgres}"

[[ -x "$SERVER_BIN" ]] || fail "SERVER_BIN=$SERVER_BIN is not an executable file. Build the server first."
[[ -d "$LEPTOS_SITE_ROOT" ]] || fail "LEPTOS_SITE_ROOT=$LEPTOS_SITE_ROOT is not a directory. Build the site first."
for tool in psql node npm curl; do
  command -v "$tool" >/dev/null || fail "$tool is not installed, and the end-to-end run needs it."
done
chromium_path=${CHROMIUM_PATH:-/usr/bin/chromium}
[[ -x "$chromium_path" ]] ||
  fail "Chromium is missing at $chromium_path. Install it with: apt-get install -y --no-install-recommends chromium"

# Prints a random lowercase hex string of $1 bytes.
random_hex() {
  od -An -N"$1" -tx1 /dev/urandom | tr -d ' \n'
}


# Runs one SQL statement against the maintenance database.
admin_sql() {
  psql -X -q -v ON_ERROR_STOP=1 -d "$ADMIN_DATABASE_URL" -c "$1"
}

# Prints ADMIN_DATABASE_URL with its database name replaced by $1, keeping any ?query.
database_url_for() {
  local without_query=${ADMIN_DATABASE_URL%%\?*}
  local query=${ADMIN_DATABASE_URL:${#without_query}}
  local scheme=${without_query%%://*}
  local rest=${without_query#*://}
  local authority=${rest%%/*}
  printf '%s://%s/%s%s' "$scheme" "$authority" "$1" "$query"
}

# Prints a TCP port that is free on 127.0.0.1 right now. Another process could take it
# before the server binds it, and then the server fails to start and logs the bind error.
free_port() {
  node -e '
    const server = require("node:net").createServer();
    server.listen(0, "127.0.0.1", () => {
      console.log(server.address().port);
      server.close();
    });
  '
}

show_server_log() {
  if [[ -f "$SERVER_LOG" ]]; then
    printf -- '--- last 50 lines of %s ---\n' "$SERVER_LOG" >&2
    tail -n 50 "$SERVER_LOG" >&2
    printf -- '--- end of server log ---\n' >&2
  fi
}

database_name=""
server_pid=""

# Stops the server and drops the test database, then exits with the status the script had.
# shellcheck disable=SC2317  # The EXIT trap calls it, which ShellCheck 0.9 does not see.
cleanup() {
  local status=$?
  set +e

  if [[ -n "$server_pid" ]] && kill -0 "$server_pid" 2>/dev/null; then
    kill -TERM "$server_pid"
    for _ in $(seq 50); do
      kill -0 "$server_pid" 2>/dev/null || break
      sleep 0.1
    done
    if kill -0 "$server_pid" 2>/dev/null; then
      printf 'run.sh: server (pid %s) did not exit within 5 s of SIGTERM, sending SIGKILL\n' "$server_pid" >&2
      kill -KILL "$server_pid"
    fi
    wait "$server_pid" 2>/dev/null
  fi

  if [[ -n "$database_name" ]]; then
    # WITH (FORCE) needs PostgreSQL 13 or newer and ends connections that a killed
    # server may have left open. The plain form covers older servers.
    if ! admin_sql "DROP DATABASE IF EXISTS \"$database_name\" WITH (FORCE)" 2>/dev/null &&
      ! admin_sql "DROP DATABASE IF EXISTS \"$database_name\""; then
      printf 'run.sh: failed to drop test database %s; drop it by hand through ADMIN_DATABASE_URL\n' \
        "$database_name" >&2
    fi
  fi

  exit "$status"
}
trap cleanup EXIT
# Bash runs the EXIT trap on `exit`, so turning these signals into exits also cleans up.
# NOTE: Bash handles a signal only after the foreground command returns. A SIGTERM sent to this
# script alone therefore waits for `npm test`, which the per-test timeouts bound. Ctrl-C reaches
# the whole process group and stops the tests at once.
trap 'exit 130' INT
trap 'exit 143' TERM

mkdir -p "$SCREENSHOT_DIR"
# Screenshots left by an earlier run would be mistaken for this run's.
rm -f "$SCREENSHOT_DIR"/*.png

if [[ ! -d "$E2E_DIR/node_modules/playwright-core" ]]; then
  (cd "$E2E_DIR" && npm ci --no-audit --no-fund)
fi

new_database_name="siteline_test_e2e_$(random_hex 8)"
admin_sql "CREATE DATABASE \"$new_database_name\""
# Set only after CREATE succeeded, so that cleanup never drops a database this run did not create.
database_name=$new_database_name
DATABASE_URL=$(database_url_for "$database_name")
export DATABASE_URL
echo "run.sh: created database $database_name"

"$SERVER_BIN" migrate

# The same seeding `make run` does, so the journeys sign in as the demo users a new user gets.
seed_output=$("$SERVER_BIN" admin seed-demo)
declare -A emails passwords
for role in "${ROLES[@]}"; do
  # Lines read: demo <role> <email>  password: <password>  (shown once)
  line=$(grep -E "^demo +$role " <<<"$seed_output") ||
    fail "admin seed-demo printed no line for the $role user"
  emails[$role]=$(awk '{print $3}' <<<"$line")
  passwords[$role]=$(sed -E 's/.*password: ([^ ]+).*/\1/' <<<"$line")
  [[ -n "${passwords[$role]}" && "${passwords[$role]}" != "$line" ]] ||
    fail "admin seed-demo printed no password for the $role user"
done

# A personal API token for the manager: the change-set journeys create their change set
# through the REST API with it. The output reads: token <id> for <email> (shown once; …):
# and then the token alone on the last line.
token_output=$("$SERVER_BIN" admin create-token --email "${emails[manager]}" --name e2e)
manager_token=$(tail -n 1 <<<"$token_output")
[[ -n "$manager_token" && "$manager_token" != *" "* ]] ||
  fail "admin create-token printed no token on its last line for ${emails[manager]}"

# The demo knowledge guides, published as `make run` does; the chat journey's proposal cites them.
"$SERVER_BIN" admin seed-demo-knowledge --dir "$E2E_DIR/../docs/knowledge"

port=$(free_port)
base_url="http://127.0.0.1:$port"
# DEMO_JOBS registers the demo.fail handler, and a short poll interval keeps retries quick.
LEPTOS_SITE_ADDR="127.0.0.1:$port" LEPTOS_SITE_ROOT="$LEPTOS_SITE_ROOT" LOG_FORMAT=json \
  DEMO_JOBS=true JOB_POLL_MS=200 \
  "$SERVER_BIN" serve >"$SERVER_LOG" 2>&1 &
server_pid=$!
echo "run.sh: started server (pid $server_pid) on $base_url, log in $SERVER_LOG"

deadline=$((SECONDS + READY_TIMEOUT_SECONDS))
until curl --silent --fail --output /dev/null --max-time 2 "$base_url/readyz"; do
  if ! kill -0 "$server_pid" 2>/dev/null; then
    show_server_log
    fail "the server exited before $base_url/readyz answered 200. See the log above."
  fi
  if ((SECONDS >= deadline)); then
    show_server_log
    fail "$base_url/readyz did not answer 200 within $READY_TIMEOUT_SECONDS s. See the log above."
  fi
  sleep 0.5
done
echo "run.sh: server is ready"

# Two demo.fail jobs for the Dead letters journeys. Both fail permanently on attempt 1, so
# they are dead at once. The first succeeds on attempt 2, when the page retries it. The second
# fails on every attempt and sleeps 10 ms first, which only sets it apart in its payload.
"$SERVER_BIN" jobs demo-fail --tenant demo --fail-attempts 1
"$SERVER_BIN" jobs demo-fail --tenant demo --sleep-ms 10
deadline=$((SECONDS + DEAD_LETTER_TIMEOUT_SECONDS))
dead_count=0
until ((dead_count >= 2)); do
  if ((SECONDS >= deadline)); then
    show_server_log
    fail "$dead_count of the 2 queued demo.fail jobs were dead after $DEAD_LETTER_TIMEOUT_SECONDS s. See the log above."
  fi
  sleep 0.5
  listing=$("$SERVER_BIN" dead-letters list --kind demo.fail) || listing=""
  dead_count=$(grep -c 'demo\.fail' <<<"$listing" || true)
done
echo "run.sh: both demo.fail jobs are dead"

test_status=0
(
  cd "$E2E_DIR"
  BASE_URL="$base_url" \
    MANAGER_EMAIL="${emails[manager]}" MANAGER_PASSWORD="${passwords[manager]}" \
    MANAGER_TOKEN="$manager_token" \
    APPROVER_EMAIL="${emails[approver]}" APPROVER_PASSWORD="${passwords[approver]}" \
    APPROVER2_EMAIL="${emails[approver2]}" APPROVER2_PASSWORD="${passwords[approver2]}" \
    ADMIN_EMAIL="${emails[admin]}" ADMIN_PASSWORD="${passwords[admin]}" \
    CHROMIUM_PATH="$chromium_path" \
    npm test
) || test_status=$?

if ((test_status != 0)); then
  show_server_log
  echo "run.sh: the browser tests failed (status $test_status). Screenshots are in $SCREENSHOT_DIR" >&2
fi
exit "$test_status"
