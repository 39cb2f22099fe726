#!/usr/bin/env bash
# Runs clang-tidy (Debian 12's clang-tidy 14, with the repository's .clang-tidy, warnings as
# errors) on every translation unit of ours outside tests/ that does not include libtorch,
# directly or through our headers: parsing libtorch's headers costs tens of seconds a file,
# too slow for CI on 2 cores. Usage: scripts/check_tidy.sh BUILD_DIR (with
# compile_commands.json, after a build: the generated protobuf headers must exist).
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR="${1:-build}"
CLANG_TIDY="${CLANG_TIDY:-clang-tidy}"
mapfile -t units < <(python3 - "$BUILD_DIR/compile_commands.json" <<'PY'
import json, os, re, sys
root = os.getcwd()
include = re.compile(r'^\s*#\s*include\s*[<"]([^>"]+)[>"]', re.M)
memo = {}
def uses_torch(path, seen):
    if path in memo: return memo[path]
    if path in seen or not os.path.exists(path): return False
    seen.add(path)
    for name in include.findall(open(path, encoding="utf-8", errors="replace").read()):
        if name.split("/")[0] in ("ATen", "torch", "c10"):
            memo[path] = True
            return True
        local = os.path.join(root, name)
        if os.path.exists(local) and uses_torch(local, seen):
            memo[path] = True
            return True
    memo[path] = False
    return False
files = sorted({e["file"] for e in json.load(open(sys.argv[1]))})
for f in files:
    rel = os.path.relpath(f, root)
    if rel.startswith(("..", "tests/", os.path.relpath(os.path.dirname(sys.argv[1]), root) + "/")):
        continue
    if not uses_torch(f, set()):
        print(rel)
PY
)
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
