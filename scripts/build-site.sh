#!/usr/bin/env bash
# Builds the browser half of the site into target/site: the hydrating wasm bundle under pkg/,
# the stylesheet and the public assets. The server binary is built separately (by `cargo test`
# for the browser tests, by `cargo build --release` for `make run`), so this never rebuilds it.
#
# Usage: scripts/build-site.sh [--release]
#   --release  build with the wasm-release profile and shrink the wasm with wasm-opt
#
# It does what `cargo leptos build` does for this workspace, with the tools prereqs.sh
# installs (wasm-bindgen, wasm-opt). `make` uses it for two reasons. Installing cargo-leptos
# from source takes about 13 min on 2 cores. And cargo-leptos compiles the server with its own
# flags (`--cfg erase_components` and LEPTOS_OUTPUT_NAME in debug builds), so cargo rebuilds
# leptos and everything above it after each `cargo test`. The output names match the server's
# LeptosOptions: output name "siteline", package folder "pkg".
set -euo pipefail

SCRIPT_NAME=build-site
# shellcheck source=lib.sh
source "$(dirname -- "$0")/lib.sh"

usage() {
  sed -n '5,6s/^# \{0,1\}//p' "$0"
}

RELEASE=0
for arg in "$@"; do
  case "$arg" in
    --release) RELEASE=1 ;;
    -h | --help) usage; exit 0 ;;
    *) usage >&2; die "unknown option '$arg': see the usage above" ;;
  esac
done

# The names below mirror [[workspace.metadata.leptos]] in Cargo.toml.
readonly OUTPUT_NAME=siteline
readonly LIB_PACKAGE=frontend
readonly WASM_TARGET=wasm32-unknown-unknown
root="$SITELINE_REPO_ROOT"
site="${LEPTOS_SITE_ROOT:-$root/target/site}"
pkg="$site/pkg"
target_dir="${CARGO_TARGET_DIR:-$root/target}"

command -v wasm-bindgen >/dev/null || die "wasm-bindgen is not on PATH: run scripts/prereqs.sh first"

cargo_args=(build --lib --package "$LIB_PACKAGE" --target "$WASM_TARGET")
# No `--cfg erase_components` (which cargo-leptos adds to debug builds): the server binary comes
# from plain cargo without it, and a bundle built with it fails to hydrate that server's pages.
if [[ "$RELEASE" == 1 ]]; then
  command -v wasm-opt >/dev/null || die "wasm-opt is not on PATH: run scripts/prereqs.sh --release first"
  cargo_args+=(--profile wasm-release)
  wasm="$target_dir/$WASM_TARGET/wasm-release/$LIB_PACKAGE.wasm"
else
  wasm="$target_dir/$WASM_TARGET/debug/$LIB_PACKAGE.wasm"
fi

say "compiling the $LIB_PACKAGE crate to wasm"
(cd "$root" && cargo "${cargo_args[@]}")
[[ -f "$wasm" ]] || die "cargo finished but $wasm is missing: check CARGO_TARGET_DIR ($target_dir)"

# Build into a fresh folder and swap it in, so a running server never serves half a bundle.
mkdir -p "$(dirname -- "$site")"
staging="$(mktemp -d "$site.staging.XXXXXX")"
trap 'rm -rf "$staging"' EXIT
chmod 755 "$staging"
mkdir -p "$staging/pkg"

say "generating the JavaScript bindings"
wasm-bindgen --target web --no-typescript --out-dir "$staging/pkg" --out-name "$OUTPUT_NAME" "$wasm"

if [[ "$RELEASE" == 1 ]]; then
  say "shrinking the wasm with $(wasm-opt --version)"
  wasm-opt -Oz --enable-bulk-memory --enable-nontrapping-float-to-int --enable-sign-ext \
    --enable-mutable-globals --enable-reference-types --enable-multivalue \
    -o "$staging/pkg/${OUTPUT_NAME}_bg.wasm" "$staging/pkg/${OUTPUT_NAME}_bg.wasm"
fi

cp "$root/style/main.css" "$staging/pkg/$OUTPUT_NAME.css"
# Public assets land at the site root, as cargo-leptos copies its assets-dir.
cp -R "$root/public/." "$staging/"

rm -rf "$site.old"
if [[ -d "$site" ]]; then
  mv "$site" "$site.old"
fi
mv "$staging" "$site"
rm -rf "$site.old"
trap - EXIT
say "ok: $site ($(du -sh "$pkg/${OUTPUT_NAME}_bg.wasm" | cut -f1) of wasm)"
