#!/usr/bin/env bash
# The main job, end to end in one process: the engine serves a paraphrased prompt by reusing
# the KV cache of an earlier, similar prompt (SemShareKV), next to a full prefill of the same
# prompt. Installs dependencies and builds what it needs first.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
./scripts/build.sh semshare-generate >/dev/null

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
