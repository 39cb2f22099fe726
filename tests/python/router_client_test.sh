#!/usr/bin/env bash
# ctest entry: a local cluster (deploy/local/cluster.sh), then the router called from Python
# through stubs generated from proto/ (router_client_test.py). Args: SOURCE_DIR BIN_DIR.
set -euo pipefail
SOURCE_DIR=$1
export SEMSHARE_BIN_DIR=$2
WORK=$(mktemp -d "${TMPDIR:-/tmp}/semshare-python-test.XXXXXX")
trap '"$SOURCE_DIR/deploy/local/cluster.sh" down "$WORK/cluster" >/dev/null 2>&1 || true; rm -rf "$WORK"' EXIT
"$SOURCE_DIR/deploy/local/cluster.sh" up "$WORK/cluster" >/dev/null
/usr/bin/python3 "$SOURCE_DIR/tests/python/router_client_test.py" "$WORK/cluster" "$WORK/stubs" "$SOURCE_DIR/proto"
