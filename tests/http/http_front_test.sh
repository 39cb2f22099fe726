#!/usr/bin/env bash
# ctest entry: a local cluster (deploy/local/cluster.sh), then the router's OpenAI-compatible
# HTTP front driven with curl and with the official `openai` npm package
# (openai_client_test.mjs, installed with `npm ci` from the committed lock file).
# Args: SOURCE_DIR BIN_DIR NPM_DIR (NPM_DIR: under the build tree; node_modules goes there).
set -euo pipefail
SOURCE_DIR=$1
export SEMSHARE_BIN_DIR=$2
NPM_DIR=$3
WORK=$(mktemp -d "${TMPDIR:-/tmp}/semshare-http-test.XXXXXX")
trap '"$SOURCE_DIR/deploy/local/cluster.sh" down "$WORK/cluster" >/dev/null 2>&1 || true; rm -rf "$WORK"' EXIT
"$SOURCE_DIR/deploy/local/cluster.sh" up "$WORK/cluster" >/dev/null
# shellcheck disable=SC1091
source "$WORK/cluster/cluster.env"
[[ -n $SEMSHARE_HTTP ]] || { echo "cluster.env has no SEMSHARE_HTTP" >&2; exit 1; }
BASE="http://$SEMSHARE_HTTP"
AUTH="Authorization: Bearer $SEMSHARE_API_KEY"
MODEL=austen-5m
failures=0

fail() {
  echo "FAIL: $*" >&2
  failures=$((failures + 1))
}

# request EXPECTED_STATUS CURL_ARGS...: the body lands in $WORK/body.
request() {
  local expected=$1 status
  shift
  status=$(curl -sS -o "$WORK/body" -w '%{http_code}' "$@")
  [[ $status == "$expected" ]] || fail "curl $*: HTTP $status, expected $expected: $(head -c 500 "$WORK/body")"
}

# check JQ_EXPRESSION: the last body makes it true.
check() {
  jq -e "$1" "$WORK/body" >/dev/null || fail "$1 is not true of $(head -c 800 "$WORK/body")"
}

request 200 "$BASE/healthz"
check '.status == "ok"'

request 200 -H "$AUTH" "$BASE/v1/models"
check '.object == "list" and .data[0].id == "'$MODEL'" and .data[0].object == "model"'

PROMPT='It is a truth universally acknowledged, that a single man in possession of a good fortune'
request 200 -H "$AUTH" -H 'Content-Type: application/json' "$BASE/v1/completions" \
  -d '{"model": "'$MODEL'", "prompt": "'"$PROMPT"'", "max_tokens": 5, "temperature": 0, "user": "ignored"}'
check '.object == "text_completion" and (.id | startswith("cmpl-")) and .model == "'$MODEL'"'
check '.choices | length == 1 and .[0].index == 0 and .[0].logprobs == null and (.[0].text | length > 0)'
check '.choices[0].finish_reason == "length" or .choices[0].finish_reason == "stop"'
check '.usage.prompt_tokens > 0 and .usage.completion_tokens > 0 and .usage.completion_tokens <= 5'
check '.usage.total_tokens == .usage.prompt_tokens + .usage.completion_tokens'
check '.semshare | (.cache_hit | type == "boolean") and .ttft_ms > 0 and .latency_ms > 0 and (.stages | has("decode_ms"))'

# Streaming: every event is "data: ..."; text chunks, then the chunk with usage and semshare, then [DONE].
request 200 -N -H "$AUTH" "$BASE/v1/completions" \
  -d '{"model": "'$MODEL'", "prompt": "'"$PROMPT"'", "max_tokens": 5, "temperature": 0, "stream": true}'
grep -v '^$' "$WORK/body" >"$WORK/events"
grep -qv '^data: ' "$WORK/events" && fail "a streamed line is not an SSE data line: $(cat "$WORK/events")"
[[ $(tail -n1 "$WORK/events") == 'data: [DONE]' ]] || fail "the stream does not end with [DONE]: $(cat "$WORK/events")"
tail -n2 "$WORK/events" | head -n1 | sed 's/^data: //' >"$WORK/body"
check '.object == "text_completion" and .usage.completion_tokens > 0 and (.semshare.cache_hit | type == "boolean")'
check '.choices[0].finish_reason == "length" or .choices[0].finish_reason == "stop"'
head -n1 "$WORK/events" | sed 's/^data: //' >"$WORK/body"
check '.choices[0].finish_reason == null and (.choices[0].text | length > 0)'

# Errors, in OpenAI's shape.
request 401 "$BASE/v1/completions" -d '{"model": "'$MODEL'", "prompt": "x"}'
check '.error.type == "invalid_request_error" and .error.code == "invalid_api_key" and (.error.message | length > 0)'
request 401 -H 'Authorization: Bearer sk-wrong-key-000000000000000000' "$BASE/v1/completions" \
  -d '{"model": "'$MODEL'", "prompt": "x"}'
check '.error.type == "invalid_request_error" and .error.code == "invalid_api_key"'
request 401 "$BASE/v1/models"
request 400 -H "$AUTH" "$BASE/v1/completions" -d '{"model": "'$MODEL'", "prompt": '
check '.error.type == "invalid_request_error" and (.error.message | contains("JSON"))'
request 400 -H "$AUTH" "$BASE/v1/completions" -d '{"model": "'$MODEL'"}'
check '.error.param == "prompt"'
request 400 -H "$AUTH" "$BASE/v1/completions" -d '{"model": "'$MODEL'", "prompt": "x", "max_tokens": -3}'
check '.error.param == "max_tokens"'
request 400 -H "$AUTH" "$BASE/v1/completions" -d '{"model": "'$MODEL'", "prompt": "x", "n": 2}'
check '.error.param == "n"'
# austen-5m's context is 2,048 tokens: under the router's max_tokens limit, past the model.
request 400 -H "$AUTH" "$BASE/v1/completions" -d '{"model": "'$MODEL'", "prompt": "x", "max_tokens": 3000}'
check '.error.code == "context_length_exceeded" and (.error.message | contains("context of 2048"))'
request 404 -H "$AUTH" "$BASE/v1/completions" -d '{"model": "gpt-4", "prompt": "x"}'
check '.error.message | contains("gpt-4")'
request 404 -H "$AUTH" "$BASE/v1/chat/completions" -d '{}'
check '.error.type == "invalid_request_error" and .error.code == "unknown_url"'
request 405 -H "$AUTH" "$BASE/v1/completions"
check '.error.code == "method_not_allowed"'
head -c 1100000 /dev/zero | tr '\0' 'a' >"$WORK/large"
request 413 -H "$AUTH" -H 'Expect:' "$BASE/v1/completions" --data-binary @"$WORK/large"
check '.error.code == "request_too_large"'

# The official openai package.
mkdir -p "$NPM_DIR"
cp "$SOURCE_DIR/tests/http/package.json" "$SOURCE_DIR/tests/http/package-lock.json" \
  "$SOURCE_DIR/tests/http/openai_client_test.mjs" "$NPM_DIR/"
(cd "$NPM_DIR" && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error >"$WORK/npm.log" 2>&1) ||
  { cat "$WORK/npm.log" >&2; fail "npm ci"; }
node "$NPM_DIR/openai_client_test.mjs" "$WORK/cluster" "$SOURCE_DIR/tests/data/pairs-dev.jsonl" ||
  fail "openai_client_test.mjs"

((failures == 0)) || { echo "$failures failures" >&2; exit 1; }
echo "http front: curl and openai client checks passed"
