#!/usr/bin/env bash
# ctest Deploy.KustomizeManifests: renders deploy/k8s/base and every overlay with
# `kubectl kustomize` and validates each overlay's objects with k8s_manifests_test.py (flags from
# BIN_DIR's binaries when built, else from the sources). Args: SOURCE_DIR [BIN_DIR].
# KUBECTL: the kubectl to render with (default: kubectl on PATH; Debian's 1.20 renders them too).
set -euo pipefail
SOURCE_DIR=$1
BIN_DIR=${2:-}
KUBECTL=${KUBECTL:-kubectl}
command -v "$KUBECTL" >/dev/null || { echo "$KUBECTL not found: run scripts/setup.sh" >&2; exit 1; }
WORK=$(mktemp -d "${TMPDIR:-/tmp}/semshare-k8s.XXXXXX")
trap 'rm -rf "$WORK"' EXIT

"$KUBECTL" version --client 2>/dev/null | head -n 2 || true
# The base alone renders (it lacks the Secrets every overlay provides, so it is not validated).
"$KUBECTL" kustomize "$SOURCE_DIR/deploy/k8s/base" >"$WORK/base.yaml"
overlays=0
for overlay in "$SOURCE_DIR"/deploy/k8s/overlays/*/; do
  name=$(basename "$overlay")
  echo "== overlay $name"
  # Deprecation warnings of newer kustomize go to stderr; an error fails the test.
  "$KUBECTL" kustomize "$overlay" >"$WORK/$name.yaml"
  /usr/bin/python3 "$SOURCE_DIR/tests/deploy/k8s_manifests_test.py" "$SOURCE_DIR" "$WORK/$name.yaml" ${BIN_DIR:+"$BIN_DIR"}
  overlays=$((overlays + 1))
done
((overlays > 0)) || { echo "no overlay under deploy/k8s/overlays" >&2; exit 1; }
