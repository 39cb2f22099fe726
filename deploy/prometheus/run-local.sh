#!/usr/bin/env bash
# A Prometheus server (Debian's `prometheus` binary) for the local cluster, on loopback.
#
#   deploy/prometheus/run-local.sh [start] DIR [CLUSTER_DIR]   start it (no-op when running)
#   deploy/prometheus/run-local.sh targets DIR CLUSTER_DIR     rewrite the scrape targets
#   deploy/prometheus/run-local.sh stop DIR                    SIGTERM it, wait for it to exit
#
# DIR holds its config (prometheus.yml and alerts.yml copied from this folder, scrape and rule
# intervals set from the environment), targets/*.json (local-targets.sh, from
# CLUSTER_DIR/cluster.env; no CLUSTER_DIR: empty target lists), data/ (TSDB), prometheus.log,
# prometheus.pid and prometheus.env (SEMSHARE_PROMETHEUS=127.0.0.1:PORT, SEMSHARE_PROMETHEUS_URL).
# The port is a free loopback port. Environment:
#   SEMSHARE_PROMETHEUS_BIN         server binary (default: prometheus on PATH)
#   SEMSHARE_PROMETHEUS_INTERVAL    scrape and rule evaluation interval (default: 5s)
#   SEMSHARE_PROMETHEUS_READY_TIMEOUT_S  how long to wait for /-/ready (default: 60)
set -euo pipefail

HERE="$(cd "$(dirname "$0")" && pwd)"
readonly HERE
readonly BIN="${SEMSHARE_PROMETHEUS_BIN:-prometheus}"
readonly INTERVAL="${SEMSHARE_PROMETHEUS_INTERVAL:-5s}"
readonly READY_TIMEOUT_S="${SEMSHARE_PROMETHEUS_READY_TIMEOUT_S:-60}"

die() {
  echo "run-local.sh: $*" >&2
  exit 1
}

# The pid of our server when it runs (and still is a prometheus, not a reused pid).
running_pid() {
  local pid
  [[ -f $DIR/prometheus.pid ]] || return 1
  pid=$(<"$DIR/prometheus.pid")
  [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q -- "--storage.tsdb.path=$DIR/data" || return 1
  echo "$pid"
}

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

http_get() { curl -fsS --max-time 5 "$1"; }

write_config() {
  [[ $INTERVAL =~ ^[0-9]+(ms|s|m)$ ]] || die "bad SEMSHARE_PROMETHEUS_INTERVAL '$INTERVAL'"
  sed -e "s/^\(  scrape_interval:\).*/\1 $INTERVAL/" -e "s/^\(  evaluation_interval:\).*/\1 $INTERVAL/" \
    -e "s/^\(  scrape_timeout:\).*/\1 $INTERVAL/" "$HERE/prometheus.yml" >"$DIR/prometheus.yml"
  cp "$HERE/alerts.yml" "$DIR/alerts.yml"
}

targets() {
  local -a env=()
  if [[ -n ${CLUSTER_DIR:-} ]]; then
    env=("$CLUSTER_DIR/cluster.env")
    [[ -r ${env[0]} ]] || die "no ${env[0]}; start the cluster first (deploy/local/cluster.sh up $CLUSTER_DIR)"
  fi
  "$HERE/local-targets.sh" "$DIR/targets" "${env[@]}"
}

# Starts the server on PORT; 0 once /-/ready answers, 1 when it exited (port taken, say).
try_start() {
  local port=$1 pid deadline
  setsid "$BIN" --config.file="$DIR/prometheus.yml" --storage.tsdb.path="$DIR/data" \
    --storage.tsdb.retention.time=7d --web.listen-address="127.0.0.1:$port" --web.enable-lifecycle \
    >>"$DIR/prometheus.log" 2>&1 </dev/null &
  pid=$!
  echo "$pid" >"$DIR/prometheus.pid"
  deadline=$((SECONDS + READY_TIMEOUT_S))
  until http_get "http://127.0.0.1:$port/-/ready" >/dev/null 2>&1; do
    if ! kill -0 "$pid" 2>/dev/null; then
      rm -f "$DIR/prometheus.pid"
      return 1
    fi
    if ((SECONDS >= deadline)); then
      kill -TERM "$pid" 2>/dev/null || true
      die "not ready within ${READY_TIMEOUT_S}s (log: $DIR/prometheus.log)"
    fi
    sleep 0.1
  done
  cat >"$DIR/prometheus.env.tmp" <<EOF2
# Written by deploy/prometheus/run-local.sh; source it.
SEMSHARE_PROMETHEUS=127.0.0.1:$port
SEMSHARE_PROMETHEUS_URL=http://127.0.0.1:$port
EOF2
  mv "$DIR/prometheus.env.tmp" "$DIR/prometheus.env"
  echo "prometheus: pid $pid, http://127.0.0.1:$port"
}

start() {
  command -v "$BIN" >/dev/null || die "$BIN not found (apt-get install prometheus, or scripts/setup.sh)"
  mkdir -p "$DIR/data"
  targets
  if pid=$(running_pid); then
    echo "prometheus: already running, pid $pid"
    return 0
  fi
  write_config
  # A free port can be taken between the probe and the bind: try a few.
  for _ in 1 2 3 4 5; do
    try_start "$(free_port)" && return 0
  done
  tail -n 20 "$DIR/prometheus.log" >&2
  die "prometheus did not start (log: $DIR/prometheus.log)"
}

stop() {
  local pid deadline
  if pid=$(running_pid); then
    kill -TERM "$pid" 2>/dev/null || true
    deadline=$((SECONDS + 60))
    while kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)); do sleep 0.1; done
    if kill -0 "$pid" 2>/dev/null; then
      echo "prometheus: no exit 60s after SIGTERM, SIGKILL" >&2
      kill -KILL "$pid" 2>/dev/null || true
    fi
    echo "prometheus: stopped"
  fi
  rm -f "$DIR/prometheus.pid" "$DIR/prometheus.env"
}

usage() { die "usage: run-local.sh [start] DIR [CLUSTER_DIR] | targets DIR CLUSTER_DIR | stop DIR"; }

mode=start
case "${1:-}" in
  start | stop | targets) mode=$1 && shift ;;
  "") usage ;;
esac
[[ $# -ge 1 ]] || usage
mkdir -p "$1"
DIR="$(cd "$1" && pwd)"
readonly DIR
CLUSTER_DIR=""
if [[ $# -ge 2 ]]; then CLUSTER_DIR="$(cd "$2" && pwd)" || die "no directory $2"; fi
case "$mode" in
  start) [[ $# -le 2 ]] || usage && start ;;
  targets) [[ $# -eq 2 ]] || usage && targets ;;
  stop) [[ $# -eq 1 ]] || usage && stop ;;
esac
