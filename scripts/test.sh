#!/usr/bin/env bash
# Every check `make test` runs, in order: formatting, lints, unit and integration tests
# against real PostgreSQL, then the browser journeys against the built site.
set -euo pipefail

: "${DATABASE_URL:?is missing: run this through scripts/with-db.sh, or set it}"
: "${CARGO_TARGET_DIR:?is missing: run this through make}"
here=$(cd -- "$(dirname -- "$0")" && pwd)
root=$(dirname -- "$here")
cd "$root"

# Each step prints the minutes and seconds since the start, so a slow step shows in CI logs.
step() { printf '\n==> [%dm%02ds] %s\n' $((SECONDS / 60)) $((SECONDS % 60)) "$*"; }

# Debug test executables are about 1 GB each, and every change of a test crate leaves the old
# one behind in the shared build directory, which filled the disk after a day of runs. Keep only
# the newest executable per name (cargo relinks any it finds missing).
prune_stale_test_binaries() {
  local deps="$CARGO_TARGET_DIR/debug/deps"
  [[ -d "$deps" ]] || return 0
  find "$deps" -maxdepth 1 -type f -perm -u+x ! -name '*.*' -printf '%T@ %f\n' |
    sort -rn |
    awk '{ name = $2; sub(/-[0-9a-f]+$/, "", name); if (seen[name]++) print $2 }' |
    while read -r stale; do rm -f -- "$deps/$stale"; done
}

# Incremental caches only help repeated local edits; in these runs they grow without bound.
export CARGO_INCREMENTAL=0
step "pruning stale test executables"
prune_stale_test_binaries

if [[ -n "${SITELINE_LOCAL_PG:-}" ]]; then
  step "dropping test databases left by earlier runs"
  scripts/local-pg.sh drop-test-dbs
fi

step "cargo fmt --check"
cargo fmt --all --check

step "cargo clippy --all-targets -- -D warnings"
cargo clippy --all-targets -- -D warnings

step "unit and integration tests"
cargo test --all-targets

step "building the site for the browser tests"
# The server binary is the one `cargo test` just built; this adds the wasm bundle and styles.
scripts/build-site.sh

step "browser journeys (Chromium)"
# The test databases are created and dropped through the server's maintenance database:
# DATABASE_URL with its database name replaced by postgres, keeping any ?query.
url_without_query=${DATABASE_URL%%\?*}
url_query=${DATABASE_URL:${#url_without_query}}
url_rest=${url_without_query#*://}
admin_url="${url_without_query%%://*}://${url_rest%%/*}/postgres$url_query"
SERVER_BIN="$CARGO_TARGET_DIR/debug/server" \
  LEPTOS_SITE_ROOT="$root/target/site" \
  ADMIN_DATABASE_URL="$admin_url" \
  end2end/run.sh
step "all checks passed"
