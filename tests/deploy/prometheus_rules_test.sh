#!/usr/bin/env bash
# ctest Deploy.PrometheusRules: promtool checks the configs and the rules and runs the rules'
# unit tests (deploy/prometheus/alerts_test.yml); prometheus_config_test.py checks the metric and
# job names against deploy/metrics.txt. Arg: SOURCE_DIR.
set -euo pipefail
SOURCE_DIR=$1
PROMETHEUS_DIR="$SOURCE_DIR/deploy/prometheus"
command -v promtool >/dev/null || { echo "promtool not found: run scripts/setup.sh" >&2; exit 1; }
WORK=$(mktemp -d "${TMPDIR:-/tmp}/semshare-promtool.XXXXXX")
trap 'rm -rf "$WORK"' EXIT

# The local config, with the target files local-targets.sh writes (none listed: no warnings).
cp "$PROMETHEUS_DIR/prometheus.yml" "$PROMETHEUS_DIR/alerts.yml" "$WORK/"
"$PROMETHEUS_DIR/local-targets.sh" "$WORK/targets"
promtool check config "$WORK/prometheus.yml"
# Debian's promtool is built without Kubernetes discovery; the upstream one checks that file.
if promtool check config "$PROMETHEUS_DIR/prometheus-k8s.yml" >"$WORK/k8s.out" 2>&1; then
  cat "$WORK/k8s.out"
elif grep -q "field kubernetes_sd_configs not found" "$WORK/k8s.out"; then
  echo "prometheus-k8s.yml: this promtool has no Kubernetes discovery; structure checked below"
else
  cat "$WORK/k8s.out" >&2
  exit 1
fi
promtool check rules "$PROMETHEUS_DIR/alerts.yml"
(cd "$PROMETHEUS_DIR" && promtool test rules alerts_test.yml)
/usr/bin/python3 "$SOURCE_DIR/tests/deploy/prometheus_config_test.py" "$SOURCE_DIR"
