#!/usr/bin/env bash
# Runs clang-tidy (Debian 12's clang-tidy 14, with the repository's .clang-tidy, warnings as
# errors) on every translation unit of ours outside tests/, the ones that include libtorch too
# (those parse ATen's headers: about 2.5 minutes for the 20 of them on 2 cores).
# Usage: scripts/check_tidy.sh BUILD_DIR (with compile_commands.json, after a build: the
# generated protobuf headers must exist).
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR="${1:-build}"
CLANG_TIDY="${CLANG_TIDY:-clang-tidy}"
mapfile -t units < <(python3 - "$BUILD_DIR/compile_commands.json" <<'PY'
import json, os, sys
root = os.getcwd()
build = os.path.relpath(os.path.dirname(os.path.abspath(sys.argv[1])), root)
for f in sorted({e["file"] for e in json.load(open(sys.argv[1]))}):
    rel = os.path.relpath(f, root)
    if not rel.startswith(("..", "tests/", build + "/")):
        print(rel)
PY
)
((${#units[@]} > 0)) || { echo "no translation units in $BUILD_DIR/compile_commands.json" >&2; exit 1; }
echo "clang-tidy on ${#units[@]} translation units ($("$CLANG_TIDY" --version | grep -o 'version [0-9.]*'))"
# clang-tidy's per-file summaries ("N warnings generated") are noise; diagnostics are kept.
set +e
printf '%s\n' "${units[@]}" |
  xargs -P "$(nproc)" -n 4 "$CLANG_TIDY" -p "$BUILD_DIR" --quiet 2>&1 |
  grep -v -E '^[0-9]+ warnings? (and [0-9]+ errors? )?generated\.$|^Suppressed [0-9]+ warnings|^Use -header-filter|^Use -system-headers'
status=${PIPESTATUS[1]}
set -e
if ((status != 0)); then
  echo "clang-tidy found problems (above); .clang-tidy says which checks run" >&2
  exit 1
fi
echo "clang-tidy: no findings"
