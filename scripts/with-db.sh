#!/usr/bin/env bash
# Runs a command with DATABASE_URL set: the caller's own when given, otherwise the
# project-local cluster under .data/, started first if it is not running.
#
# Usage: scripts/with-db.sh COMMAND [ARG...]
set -euo pipefail

here=$(cd -- "$(dirname -- "$0")" && pwd)
if [[ -z "${DATABASE_URL:-}" ]]; then
  "$here/local-pg.sh" start
  DATABASE_URL=$("$here/local-pg.sh" url)
  export DATABASE_URL
  export SITELINE_LOCAL_PG=1
fi
exec "$@"
