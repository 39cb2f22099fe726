#!/usr/bin/env bash
# Writes Prometheus file_sd target files for the local cluster (deploy/local/cluster.sh):
#
#   deploy/prometheus/local-targets.sh TARGETS_DIR [CLUSTER_ENV]
#
# TARGETS_DIR/semshare-router.json, semshare-worker.json and semshare-cache-node.json (the job
# names of prometheus.yml), from cluster.env's SEMSHARE_METRICS_ROUTER, SEMSHARE_METRICS_WORKER
# and SEMSHARE_METRICS_SHARDS (comma-separated host:port, shard0 first). Without CLUSTER_ENV, or
# for a variable that is missing or empty, the file lists no target. Files are replaced
# atomically, so a running Prometheus picks up a restarted cluster's ports by itself.
set -euo pipefail

die() {
  echo "local-targets.sh: $*" >&2
  exit 1
}

[[ $# -eq 1 || $# -eq 2 ]] || die "usage: local-targets.sh TARGETS_DIR [CLUSTER_ENV]"
readonly TARGETS_DIR=$1 CLUSTER_ENV=${2:-}
[[ -z $CLUSTER_ENV || -r $CLUSTER_ENV ]] || die "cannot read $CLUSTER_ENV"
mkdir -p "$TARGETS_DIR"

# The value of KEY in cluster.env (KEY=VALUE lines; the file is not sourced).
value_of() {
  [[ -n $CLUSTER_ENV ]] || return 0
  sed -n "s/^$1=//p" "$CLUSTER_ENV" | tail -n1 | tr -d '[:space:]'
}

# write JOB NAME_PREFIX ADDRESSES: one target group per address, labelled with the process name
# as cluster.sh calls it (router, worker, shard0, shard1, ...).
write() {
  local job=$1 prefix=$2 addresses=$3 out="$TARGETS_DIR/$1.json" i=0 sep="" address
  local -a list=()
  [[ -n $addresses ]] && IFS=, read -r -a list <<<"$addresses"
  {
    printf '['
    for address in "${list[@]}"; do
      [[ $address =~ ^[A-Za-z0-9._-]+:[0-9]+$ ]] || die "$job: bad address '$address'"
      local name=$prefix
      if [[ $prefix == shard ]] || ((${#list[@]} > 1)); then name="$prefix$i"; fi
      printf '%s\n  {"targets": ["%s"], "labels": {"process": "%s"}}' "$sep" "$address" "$name"
      sep=,
      i=$((i + 1))
    done
    printf '\n]\n'
  } >"$out.tmp"
  mv "$out.tmp" "$out"
}

write semshare-router router "$(value_of SEMSHARE_METRICS_ROUTER)"
write semshare-worker worker "$(value_of SEMSHARE_METRICS_WORKER)"
write semshare-cache-node shard "$(value_of SEMSHARE_METRICS_SHARDS)"
