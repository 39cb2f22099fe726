#!/usr/bin/env bash
# Configures and builds into build/ (binaries in build/bin/). Arguments name targets to build
# (default: everything); extra CMake options come from SEMSHARE_CMAKE_ARGS.
set -euo pipefail
cd "$(dirname "$0")/.."
jobs=${SEMSHARE_JOBS:-2}
# shellcheck disable=SC2086
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release ${SEMSHARE_CMAKE_ARGS:-} >/dev/null
targets=()
for target in "$@"; do targets+=(--target "$target"); done
cmake --build build -j "$jobs" "${targets[@]}"
