#!/usr/bin/env bash
# ctest entry: a real Prometheus server (deploy/prometheus/run-local.sh, Debian's prometheus)
# scraping a local cluster (deploy/local/cluster.sh); the hits and misses this test produces
# through the router must come back from PromQL queries. Args: SOURCE_DIR BIN_DIR.
set -euo pipefail
SOURCE_DIR=$1
export SEMSHARE_BIN_DIR=$2
WORK=$(mktemp -d "${TMPDIR:-/tmp}/semshare-prometheus-test.XXXXXX")
cleanup() {
  "$SOURCE_DIR/deploy/prometheus/run-local.sh" stop "$WORK/prometheus" >/dev/null 2>&1 || true
  "$SOURCE_DIR/deploy/local/cluster.sh" down "$WORK/cluster" >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT
"$SOURCE_DIR/deploy/local/cluster.sh" up "$WORK/cluster" >/dev/null
SEMSHARE_PROMETHEUS_INTERVAL=1s "$SOURCE_DIR/deploy/prometheus/run-local.sh" start "$WORK/prometheus" "$WORK/cluster" >/dev/null
/usr/bin/python3 "$SOURCE_DIR/tests/deploy/prometheus_cluster_test.py" "$SOURCE_DIR" "$SEMSHARE_BIN_DIR" \
  "$WORK/cluster" "$WORK/prometheus"
