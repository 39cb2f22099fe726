#!/usr/bin/env bash
# Installs every build and test dependency on a fresh Debian 12 machine. Idempotent and
# non-interactive: packages already present are left alone.
set -euo pipefail

PACKAGES=(
  build-essential cmake ninja-build ccache pkg-config git clang-format clang-tidy
  libabsl-dev libtorch-dev libopenblas0-openmp
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler
  librocksdb-dev libfaiss-dev prometheus-cpp-dev
  libgtest-dev libgmock-dev
  # The chat-template engine's JSON adapter (common/jinja).
  nlohmann-json3-dev
  python3 python3-grpcio python3-protobuf python3-yaml
  # deploy/: promtool and a Prometheus server for the deploy tests, curl to query it.
  prometheus curl
  # The router's HTTP front (civetweb); jq reads its answers in the HTTP test.
  libcivetweb-dev jq
)
# The HTTP front's test drives it with the `openai` npm package; a node and npm already on the
# PATH (for example NodeSource's) are used as they are.
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then PACKAGES+=(nodejs npm); fi

SUDO=""
if [[ $(id -u) -ne 0 ]]; then SUDO="sudo"; fi

# kubectl (its `kubectl kustomize` renders deploy/k8s): Debian's kubernetes-client only when none
# is on PATH (a newer one from elsewhere is fine).
if ! command -v kubectl >/dev/null; then
  PACKAGES+=(kubernetes-client)
fi

missing=()
for package in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$package")
  fi
done

if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}"
  $SUDO apt-get update -q
  # Only the binaries are wanted: keep the packages' maintainer scripts from starting services
  # (Debian's prometheus starts its own server on :9090 otherwise, through systemd or its init
  # script; without systemd the init script's failure would fail the install).
  policy_rc=/usr/sbin/policy-rc.d
  if [[ ! -e $policy_rc ]]; then
    printf '#!/bin/sh\nexit 101\n' | $SUDO tee "$policy_rc" >/dev/null
    $SUDO chmod 755 "$policy_rc"
    trap '$SUDO rm -f "$policy_rc"' EXIT
  fi
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

# Debian's libtorch and FAISS pick the BLAS through alternatives; the OpenMP OpenBLAS is ~15x
# faster than the reference BLAS they fall back to.
if ! update-alternatives --query libblas.so.3-x86_64-linux-gnu 2>/dev/null |
    grep -q '^Value: .*openblas-openmp'; then
  for alt in libblas.so.3-x86_64-linux-gnu liblapack.so.3-x86_64-linux-gnu; do
    target=$(update-alternatives --list "$alt" 2>/dev/null | grep openblas-openmp | head -n1 || true)
    if [[ -n "$target" ]]; then
      $SUDO update-alternatives --set "$alt" "$target" >/dev/null || true
    fi
  done
fi
echo "setup: dependencies present"
