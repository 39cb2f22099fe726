#!/usr/bin/env bash
# Builds everything with AddressSanitizer and UndefinedBehaviorSanitizer into build-sanitize/
# and runs every test through ctest under them: the first memory error or undefined behaviour
# in our code (the Debian libraries stay uninstrumented) aborts its test with a report.
#
#   ./scripts/sanitize_check.sh [ctest args]    # e.g. -R Retention
#
# SEMSHARE_SANITIZE picks the sanitizers (default address,undefined). Not part of
# scripts/test.sh: the instrumented build is a second full build, too long for CI's budget.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
sanitizers="${SEMSHARE_SANITIZE:-address,undefined}"
cmake -S . -B build-sanitize -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DSEMSHARE_SANITIZE="$sanitizers" >/dev/null
cmake --build build-sanitize -j "${SEMSHARE_JOBS:-2}"
cd build-sanitize
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1:strict_string_checks=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
ctest --output-on-failure -j "${SEMSHARE_TEST_JOBS:-2}" "$@"
