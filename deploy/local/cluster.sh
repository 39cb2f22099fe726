#!/usr/bin/env bash
# A local semshare cluster on loopback: 2 cache nodes, 1 inference worker and the router.
#
#   deploy/local/cluster.sh up DIR      start whatever is not running (first time: everything)
#   deploy/local/cluster.sh down DIR    SIGTERM every process, wait for it to exit
#   deploy/local/cluster.sh status DIR  one line a process: name, pid, address, up|down
#
# Under DIR: cluster.env (SEMSHARE_ROUTER, SEMSHARE_HTTP, SEMSHARE_API_KEY, SEMSHARE_API_KEY_2,
# SEMSHARE_METRICS_ROUTER, SEMSHARE_METRICS_WORKER, SEMSHARE_METRICS_SHARDS: /metrics host:port,
# shards comma-separated), cluster.token, api_keys, data/shardN (RocksDB), logs/NAME.log,
# run/NAME.{pid,port,metrics_port}, run/router.http_port (the router's OpenAI-compatible HTTP
# front, SEMSHARE_HTTP). Every process serves /metrics on a free port.
# A process restarted by `up` keeps its data directory and, when it can bind it, its port, so
# the others need no restart. Environment:
#   SEMSHARE_BIN_DIR      binaries (default: build/bin of this checkout)
#   SEMSHARE_MODEL        model directory (default: tests/data/austen-5m)
#   SEMSHARE_DEVICE       worker device, cpu|cuda (default: cpu)
#   SEMSHARE_SHARD_CAPACITY_BYTES  each cache node's byte budget (default: 4 GiB)
#   SEMSHARE_MAX_BATCH  the worker's --max-batch (default 16)
#   SEMSHARE_WORKER_ARGS, SEMSHARE_ROUTER_ARGS, SEMSHARE_SHARD_ARGS  extra flags
#   SEMSHARE_READY_TIMEOUT_S  how long to wait for a ready line (default: 300)
#   MALLOC_ARENA_MAX      glibc malloc arenas per process (default here: 2)
set -euo pipefail

readonly ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
readonly BIN_DIR="${SEMSHARE_BIN_DIR:-$ROOT/build/bin}"
readonly MODEL="${SEMSHARE_MODEL:-$ROOT/tests/data/austen-5m}"
readonly DEVICE="${SEMSHARE_DEVICE:-cpu}"
readonly SHARD_CAPACITY="${SEMSHARE_SHARD_CAPACITY_BYTES:-4294967296}"
readonly READY_TIMEOUT_S="${SEMSHARE_READY_TIMEOUT_S:-300}"
# glibc gives each busy thread its own malloc arena; under 16 concurrent clients the worker's RSS
# grew by gigabytes with the default, much less with two (semshare-bench cluster, README).
export MALLOC_ARENA_MAX="${MALLOC_ARENA_MAX:-2}"
# Start order; `down` goes in reverse.
readonly PROCESSES=(shard0 shard1 worker router)

die() {
  echo "cluster.sh: $*" >&2
  exit 1
}

binary_of() {
  case "$1" in
    shard*) echo "$BIN_DIR/semshare-cache-node" ;;
    worker) echo "$BIN_DIR/semshare-worker" ;;
    router) echo "$BIN_DIR/semshare-router" ;;
  esac
}

# The pid of NAME when it is running (and is still our binary, not a reused pid).
running_pid() {
  local name=$1 pid_file="$DIR/run/$1.pid" pid
  [[ -f $pid_file ]] || return 1
  pid=$(<"$pid_file")
  [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q -- "$(basename "$(binary_of "$name")")" || return 1
  echo "$pid"
}

port_of() { cat "$DIR/run/$1.port" 2>/dev/null || true; }
metrics_port_of() { cat "$DIR/run/$1.metrics_port" 2>/dev/null || true; }
http_port_of() { cat "$DIR/run/$1.http_port" 2>/dev/null || true; }

random_hex() { od -An -N"$1" -tx1 /dev/urandom | tr -d ' \n'; }

# Writes the cluster secret and the API keys once; later `up`s reuse them.
ensure_secrets() {
  mkdir -p "$DIR/run" "$DIR/logs" "$DIR/data"
  if [[ ! -s $DIR/cluster.token ]]; then
    (umask 077 && random_hex 32 >"$DIR/cluster.token")
  fi
  if [[ ! -s $DIR/api_keys ]]; then
    (umask 077 && {
      echo "# KEY TENANT BYTE_BUDGET (router/api_keys.h)"
      echo "sk-$(random_hex 24) tenant-a 0"
      echo "sk-$(random_hex 24) tenant-b 0"
    } >"$DIR/api_keys")
  fi
}

args_of() {
  local name=$1 port
  port=$(port_of "$name")
  local listen="127.0.0.1:${port:-0}"
  case "$name" in
    shard*)
      # shellcheck disable=SC2086
      echo --listen "$listen" --data-dir "$DIR/data/$name" --metrics-listen 127.0.0.1:0 \
        --capacity-bytes "$SHARD_CAPACITY" --cluster-token-file "$DIR/cluster.token" ${SEMSHARE_SHARD_ARGS:-}
      ;;
    worker)
      echo --listen "$listen" --model "$MODEL" --device "$DEVICE" --metrics-listen 127.0.0.1:0 \
        --max-batch "${SEMSHARE_MAX_BATCH:-16}" --cluster-token-file "$DIR/cluster.token" \
        ${SEMSHARE_WORKER_ARGS:-}
      ;;
    router)
      local http_port
      http_port=$(http_port_of router)
      echo --listen "$listen" --shards "127.0.0.1:$(port_of shard0),127.0.0.1:$(port_of shard1)" \
        --workers "127.0.0.1:$(port_of worker)" --model "$MODEL" --worker-device "$DEVICE" \
        --api-keys "$DIR/api_keys" --metrics-listen 127.0.0.1:0 --cluster-token-file "$DIR/cluster.token" \
        --http-listen "127.0.0.1:${http_port:-0}" ${SEMSHARE_ROUTER_ARGS:-}
      ;;
  esac
}

# Starts NAME in its own session and waits (bounded) for its ready line; records pid and port.
start() {
  local name=$1 binary log offset pid line deadline
  binary=$(binary_of "$name")
  [[ -x $binary ]] || die "$binary not found; build it (./scripts/build.sh) or set SEMSHARE_BIN_DIR"
  log="$DIR/logs/$name.log"
  touch "$log"
  offset=$(($(stat -c %s "$log") + 1))
  # shellcheck disable=SC2046
  setsid "$binary" $(args_of "$name") >>"$log" 2>&1 </dev/null &
  pid=$!
  echo "$pid" >"$DIR/run/$name.pid"
  deadline=$((SECONDS + READY_TIMEOUT_S))
  while true; do
    line=$(tail -c "+$offset" "$log" | grep -m1 "^semshare-[a-z-]* ready:" || true)
    [[ -n $line ]] && break
    if ! kill -0 "$pid" 2>/dev/null; then
      tail -c "+$offset" "$log" >&2
      die "$name exited before its ready line (log: $log)"
    fi
    ((SECONDS < deadline)) || die "$name: no ready line within ${READY_TIMEOUT_S}s (log: $log)"
    sleep 0.1
  done
  local port
  port=$(sed -n 's/.* port=\([0-9]*\).*/\1/p' <<<"$line")
  [[ -n $port ]] || die "$name: no port in its ready line: $line"
  echo "$port" >"$DIR/run/$name.port"
  local metrics_port
  metrics_port=$(sed -n 's/.* metrics_port=\([0-9]*\).*/\1/p' <<<"$line")
  [[ -n $metrics_port ]] || die "$name: no metrics_port in its ready line: $line"
  echo "$metrics_port" >"$DIR/run/$name.metrics_port"
  local http_port
  http_port=$(sed -n 's/.* http_port=\([0-9]*\).*/\1/p' <<<"$line")
  if [[ -n $http_port && $http_port != 0 ]]; then echo "$http_port" >"$DIR/run/$name.http_port"; fi
  echo "$name: pid $pid, 127.0.0.1:$port"
}

write_env() {
  local keys
  mapfile -t keys < <(awk '!/^#/ && NF == 3 {print $1}' "$DIR/api_keys")
  cat >"$DIR/cluster.env.tmp" <<EOF
# Written by deploy/local/cluster.sh up; source it.
SEMSHARE_ROUTER=127.0.0.1:$(port_of router)
SEMSHARE_HTTP=127.0.0.1:$(http_port_of router)
SEMSHARE_API_KEY=${keys[0]}
SEMSHARE_API_KEY_2=${keys[1]}
SEMSHARE_METRICS_ROUTER=127.0.0.1:$(metrics_port_of router)
SEMSHARE_METRICS_WORKER=127.0.0.1:$(metrics_port_of worker)
SEMSHARE_METRICS_SHARDS=127.0.0.1:$(metrics_port_of shard0),127.0.0.1:$(metrics_port_of shard1)
SEMSHARE_CLUSTER_DIR=$DIR
EOF
  mv "$DIR/cluster.env.tmp" "$DIR/cluster.env"
}

up() {
  ensure_secrets
  local name
  for name in "${PROCESSES[@]}"; do
    if running_pid "$name" >/dev/null; then continue; fi
    # A fresh shard or worker on a new port would need a router restart to be found.
    if [[ $name != router ]] && [[ -z $(port_of "$name") ]] && running_pid router >/dev/null; then
      stop router
    fi
    start "$name"
  done
  write_env
}

stop() {
  local name=$1 pid
  pid=$(running_pid "$name") || return 0
  kill -TERM "$pid" 2>/dev/null || true
  local deadline=$((SECONDS + 60))
  while kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)); do sleep 0.1; done
  if kill -0 "$pid" 2>/dev/null; then
    echo "$name: no exit 60s after SIGTERM, SIGKILL" >&2
    kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$DIR/run/$name.pid"
  echo "$name: stopped"
}

down() {
  local i
  for ((i = ${#PROCESSES[@]} - 1; i >= 0; i--)); do stop "${PROCESSES[i]}"; done
}

status() {
  local name pid all_up=0
  for name in "${PROCESSES[@]}"; do
    if pid=$(running_pid "$name"); then
      echo "$name pid=$pid address=127.0.0.1:$(port_of "$name") up"
    else
      echo "$name pid=- address=127.0.0.1:$(port_of "$name") down"
      all_up=3
    fi
  done
  return "$all_up"
}

[[ $# -eq 2 ]] || die "usage: cluster.sh up|down|status DIR"
mkdir -p "$2"
DIR="$(cd "$2" && pwd)"
readonly DIR
case "$1" in
  up) up ;;
  down) down ;;
  status) status ;;
  *) die "usage: cluster.sh up|down|status DIR" ;;
esac
