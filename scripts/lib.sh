# shellcheck shell=bash
# Shared helpers for the scripts in this folder. Source it rather than running it.
# Callers set SCRIPT_NAME before sourcing so messages name the script that failed.

# shellcheck disable=SC2034 # Used by the scripts that source this file.
SITELINE_REPO_ROOT="$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd -P)"

# Cargo installs wasm-bindgen and wasm-opt here, and a
# non-login shell (CI, `bash script.sh`) does not always have it on PATH.
case ":$PATH:" in
  *":$HOME/.cargo/bin:"*) ;;
  *) export PATH="$HOME/.cargo/bin:$PATH" ;;
esac

say() {
  printf '%s: %s\n' "${SCRIPT_NAME:-siteline}" "$*"
}

warn() {
  printf '%s: warning: %s\n' "${SCRIPT_NAME:-siteline}" "$*" >&2
}

die() {
  printf '%s: error: %s\n' "${SCRIPT_NAME:-siteline}" "$*" >&2
  exit 1
}

# Prints the installed PostgreSQL server majors under /usr/lib/postgresql
# (Debian's layout), highest first. Prints nothing when no server is installed.
pg_installed_majors() {
  local dir
  for dir in /usr/lib/postgresql/*/bin/postgres; do
    [[ -x "$dir" ]] || continue
    dir="${dir#/usr/lib/postgresql/}"
    printf '%s\n' "${dir%%/*}"
  done | sort -rn
}

# Prints the highest installed PostgreSQL server major, or nothing.
pg_highest_major() {
  pg_installed_majors | head -n 1
}
