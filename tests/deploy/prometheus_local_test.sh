#!/usr/bin/env bash
# ctest Deploy.PrometheusLocalServer: deploy/prometheus/run-local.sh starts a real Prometheus
# (Debian's binary) on loopback with no targets; it answers /-/ready and the query `up` (empty);
# `targets` with a cluster.env makes the file_sd targets appear in /api/v1/targets; `stop` ends
# it. Needs no semshare binary. Arg: SOURCE_DIR.
set -euo pipefail
SOURCE_DIR=$1
RUN_LOCAL="$SOURCE_DIR/deploy/prometheus/run-local.sh"
WORK=$(mktemp -d "${TMPDIR:-/tmp}/semshare-prometheus.XXXXXX")
trap '"$RUN_LOCAL" stop "$WORK/prometheus" >/dev/null 2>&1 || true; rm -rf "$WORK"' EXIT

fail() {
  echo "FAIL: $*" >&2
  tail -n 20 "$WORK/prometheus/prometheus.log" >&2 || true
  exit 1
}

"$RUN_LOCAL" "$WORK/prometheus"
[[ -r $WORK/prometheus/prometheus.env ]] || fail "no prometheus.env"
# shellcheck disable=SC1091
source "$WORK/prometheus/prometheus.env"
[[ $SEMSHARE_PROMETHEUS =~ ^127\.0\.0\.1:[0-9]+$ ]] || fail "bad SEMSHARE_PROMETHEUS=$SEMSHARE_PROMETHEUS"
curl -fsS "$SEMSHARE_PROMETHEUS_URL/-/ready" | grep -q "Ready" || fail "/-/ready"
answer=$(curl -fsS "$SEMSHARE_PROMETHEUS_URL/api/v1/query?query=up")
/usr/bin/python3 -c '
import json, sys
answer = json.loads(sys.argv[1])
assert answer["status"] == "success", answer
assert answer["data"]["result"] == [], answer' "$answer" || fail "query up: $answer"
# The alert rules are loaded.
curl -fsS "$SEMSHARE_PROMETHEUS_URL/api/v1/rules" | grep -q '"SemshareCacheNodeDown"' || fail "rules not loaded"

# A second start is a no-op on the same server.
"$RUN_LOCAL" start "$WORK/prometheus" | grep -q "already running" || fail "second start"

# Targets of a (pretend) local cluster: nothing listens there, the targets must still be listed.
mkdir -p "$WORK/cluster"
cat >"$WORK/cluster/cluster.env" <<EOF2
SEMSHARE_METRICS_ROUTER=127.0.0.1:1
SEMSHARE_METRICS_WORKER=127.0.0.1:2
SEMSHARE_METRICS_SHARDS=127.0.0.1:3,127.0.0.1:4
EOF2
"$RUN_LOCAL" targets "$WORK/prometheus" "$WORK/cluster"
deadline=$((SECONDS + 60))
until curl -fsS "$SEMSHARE_PROMETHEUS_URL/api/v1/targets" | /usr/bin/python3 -c '
import json, sys
targets = json.load(sys.stdin)["data"]["activeTargets"]
got = sorted((t["labels"]["job"], t["labels"]["instance"], t["labels"]["process"]) for t in targets)
want = [("semshare-cache-node", "127.0.0.1:3", "shard0"), ("semshare-cache-node", "127.0.0.1:4", "shard1"),
        ("semshare-router", "127.0.0.1:1", "router"), ("semshare-worker", "127.0.0.1:2", "worker")]
sys.exit(0 if got == want else 1)'; do
  ((SECONDS < deadline)) || fail "targets from cluster.env not discovered within 60 s"
  sleep 0.2
done

pid=$(<"$WORK/prometheus/prometheus.pid")
"$RUN_LOCAL" stop "$WORK/prometheus"
! kill -0 "$pid" 2>/dev/null || fail "still running after stop"
[[ ! -e $WORK/prometheus/prometheus.env ]] || fail "prometheus.env left after stop"
echo "PASS"
