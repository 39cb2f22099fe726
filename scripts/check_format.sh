#!/usr/bin/env bash
# Fails, naming the files, when any tracked C++ file differs from what clang-format (Debian 12's
# clang-format 14, with the repository's .clang-format) makes of it. Fix with:
#   git ls-files '*.cc' '*.h' | xargs clang-format -i
set -euo pipefail
cd "$(dirname "$0")/.."
CLANG_FORMAT="${CLANG_FORMAT:-clang-format}"
mapfile -t files < <(git ls-files '*.cc' '*.h')
unformatted=()
for f in "${files[@]}"; do
  if ! "$CLANG_FORMAT" --dry-run --Werror "$f" >/dev/null 2>&1; then unformatted+=("$f"); fi
done
if ((${#unformatted[@]})); then
  echo "not formatted with $("$CLANG_FORMAT" --version): ${unformatted[*]}" >&2
  echo "fix: git ls-files '*.cc' '*.h' | xargs clang-format -i" >&2
  exit 1
fi
echo "${#files[@]} C++ files formatted"
