#!/usr/bin/env bash
# Migrates the database, seeds the demo tenant (passwords are printed only when the users
# are first created) and its knowledge guides, and serves the built site. `make run` calls it through with-db.sh.
set -euo pipefail

: "${DATABASE_URL:?is missing: run this through scripts/with-db.sh, or set it}"
: "${CARGO_TARGET_DIR:?is missing: run this through make}"
here=$(cd -- "$(dirname -- "$0")" && pwd)
root=$(dirname -- "$here")
bin="$CARGO_TARGET_DIR/release/server"
[[ -x "$bin" ]] || { echo "run: $bin is missing; build it with make build" >&2; exit 1; }

export LEPTOS_SITE_ROOT=${LEPTOS_SITE_ROOT:-$root/target/site}
export LEPTOS_SITE_ADDR=${LEPTOS_SITE_ADDR:-127.0.0.1:3000}
export LOG_FORMAT=${LOG_FORMAT:-text}

"$bin" migrate
echo
echo "Demo accounts (tenant 'demo'):"
"$bin" admin seed-demo
echo
echo "Demo knowledge base (docs/knowledge), published on the first run:"
"$bin" admin seed-demo-knowledge --dir "$root/docs/knowledge"
echo
echo "Siteline is starting on http://$LEPTOS_SITE_ADDR (Ctrl-C stops it)."
exec "$bin" serve
