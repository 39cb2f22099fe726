#!/usr/bin/env bash
# Installs dependencies, builds everything and runs every test through ctest.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
./scripts/build.sh
cd build
ctest --output-on-failure -j "${SEMSHARE_TEST_JOBS:-2}" "$@"
