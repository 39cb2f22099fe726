#!/usr/bin/env bash
# The main job: a paraphrased prompt served by reusing the KV cache of an earlier, similar
# prompt (SemShareKV). First the engine alone (full prefill next to semshare), then the same
# through a local cluster (2 cache nodes, a worker, the router): the reference is a miss and is
# stored, its paraphrase a hit. Installs dependencies and builds what it needs first.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
./scripts/build.sh semshare-generate semshare-cache-node semshare-worker semshare-router semshare >/dev/null

MODEL=tests/data/austen-5m
PAIR=${SEMSHARE_DEMO_PAIR:-p016}
read_field() {
  python3 -c 'import json,sys
for line in open(sys.argv[1]):
    d = json.loads(line)
    if d["id"] == sys.argv[2]:
        print(d[sys.argv[3]], end="")' tests/data/pairs-dev.jsonl "$PAIR" "$1"
}
REFERENCE=$(read_field reference)
TARGET=$(read_field target)

echo "== Reference prompt (cached earlier), pair $PAIR:"
echo "${REFERENCE:0:300}..."
echo
echo "== New prompt (the same passage with ~10% of the words replaced by synonyms):"
echo "${TARGET:0:300}..."
echo
echo "== Full prefill of the new prompt (no reuse):"
./build/bin/semshare-generate --model "$MODEL" --prompt "$TARGET" --method full --retention none \
  --max-tokens 32 --json "${TMPDIR:-/tmp}/semshare-demo-full.json"
echo
echo "== SemShareKV: reuse the reference's KV, recompute the high-deviation tokens, prune by exp decay:"
./build/bin/semshare-generate --model "$MODEL" --prompt "$TARGET" --reference "$REFERENCE" \
  --max-tokens 32 --json "${TMPDIR:-/tmp}/semshare-demo-semshare.json"

echo
echo "== The same pair through a local cluster (deploy/local/cluster.sh): 2 cache nodes, a worker, the router"
CLUSTER_DIR=$(mktemp -d "${TMPDIR:-/tmp}/semshare-demo-cluster.XXXXXX")
trap 'deploy/local/cluster.sh down "$CLUSTER_DIR" >/dev/null 2>&1 || true' EXIT
deploy/local/cluster.sh up "$CLUSTER_DIR"
# shellcheck disable=SC1091
source "$CLUSTER_DIR/cluster.env"
client() {
  ./build/bin/semshare generate --router "$SEMSHARE_ROUTER" --api-key "$SEMSHARE_API_KEY" \
    --max-tokens 32 --json --prompt "$1"
}
summary() {
  python3 -c 'import json,sys
d = json.load(open(sys.argv[1])); s = d["stats"]
print(repr(d["text"]))
print("%-9s cache_hit=%s similarity=%.3f ttft=%.1f ms recompute=%.3f kv_kept=%.2f reference=%s" % (
    sys.argv[2], s.get("cache_hit"), s.get("similarity", 0), s.get("ttft_ms", 0),
    s.get("recompute_share", 0), s.get("kv_kept_share", 0), s.get("reference_id", "")))' "$1" "$2"
}
echo
echo "== 1. The reference prompt: a miss (full prefill); the worker stores it on a shard after replying"
client "$REFERENCE" >"$CLUSTER_DIR/miss.json"
summary "$CLUSTER_DIR/miss.json" miss
# The store happens off the request's path: give it a moment before the paraphrase arrives.
sleep 2
echo
echo "== 2. The paraphrase: a hit on that reference"
client "$TARGET" >"$CLUSTER_DIR/hit.json"
summary "$CLUSTER_DIR/hit.json" paraphrase
python3 -c 'import json,sys
m = json.load(open(sys.argv[1]))["stats"]; h = json.load(open(sys.argv[2]))["stats"]
if h.get("cache_hit"):
    print("time to first token: %.1f ms (reference, miss) vs %.1f ms (paraphrase, hit)" % (m["ttft_ms"], h["ttft_ms"]))
else:
    print("the paraphrase was a miss (the reference was not stored yet?)")' "$CLUSTER_DIR/miss.json" "$CLUSTER_DIR/hit.json"
