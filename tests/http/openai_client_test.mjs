// The router's OpenAI-compatible HTTP front through the official `openai` package.
// Usage: node openai_client_test.mjs CLUSTER_DIR PAIRS_JSONL
// CLUSTER_DIR holds cluster.env (deploy/local/cluster.sh up). Exits non-zero on any failure.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import OpenAI from 'openai';

// A miss's reference is stored after its reply: ask again (bounded) until it is there.
const MAX_POLLS = 200;

function readEnv(dir) {
  const env = {};
  for (const line of readFileSync(join(dir, 'cluster.env'), 'utf8').split('\n')) {
    const match = /^([A-Z0-9_]+)=(.*)$/.exec(line.trim());
    if (match) env[match[1]] = match[2];
  }
  return env;
}

function checkSemshare(semshare) {
  assert.equal(typeof semshare.cache_hit, 'boolean');
  assert.equal(typeof semshare.similarity, 'number');
  assert.ok(semshare.ttft_ms > 0 && semshare.latency_ms >= semshare.ttft_ms, JSON.stringify(semshare));
  for (const stage of ['tokenize_ms', 'search_ms', 'fetch_ms', 'recompute_ms', 'decode_ms']) {
    assert.equal(typeof semshare.stages[stage], 'number', stage);
  }
}

async function main() {
  const [clusterDir, pairsFile] = process.argv.slice(2);
  const env = readEnv(clusterDir);
  const baseURL = `http://${env.SEMSHARE_HTTP}/v1`;
  const client = new OpenAI({ baseURL, apiKey: env.SEMSHARE_API_KEY, maxRetries: 0, timeout: 300000 });

  const models = await client.models.list();
  assert.equal(models.data.length, 1);
  const model = models.data[0].id;

  // Non-streaming.
  const prompt = 'It is a truth universally acknowledged, that a single man in possession of a good fortune';
  const completion = await client.completions.create({ model, prompt, max_tokens: 6, temperature: 0 });
  assert.equal(completion.object, 'text_completion');
  assert.match(completion.id, /^cmpl-/);
  assert.equal(completion.model, model);
  assert.equal(completion.choices.length, 1);
  const choice = completion.choices[0];
  assert.equal(typeof choice.text, 'string');
  assert.ok(choice.text.length > 0, 'empty completion');
  assert.ok(['stop', 'length'].includes(choice.finish_reason), choice.finish_reason);
  assert.ok(completion.usage.prompt_tokens > 0);
  assert.ok(completion.usage.completion_tokens > 0 && completion.usage.completion_tokens <= 6);
  assert.equal(completion.usage.total_tokens, completion.usage.prompt_tokens + completion.usage.completion_tokens);
  checkSemshare(completion.semshare);

  // Streaming: text chunks, then a last chunk with finish_reason, usage and semshare.
  const stream = await client.completions.create({ model, prompt, max_tokens: 6, temperature: 0, stream: true });
  let text = '';
  let last = null;
  for await (const chunk of stream) {
    assert.equal(chunk.object, 'text_completion');
    text += chunk.choices[0].text;
    last = chunk;
  }
  assert.ok(last !== null, 'no chunk');
  assert.ok(['stop', 'length'].includes(last.choices[0].finish_reason));
  assert.equal(last.usage.completion_tokens, completion.usage.completion_tokens);
  checkSemshare(last.semshare);
  assert.equal(text, choice.text, 'greedy streaming and non-streaming differ');
  // The curl checks asked for this prompt first: its KV is reused from then on.
  const reused = completion.usage.prompt_tokens_details.cached_tokens;
  if (completion.semshare.cache_hit) {
    assert.ok(reused > 0 && reused <= completion.usage.prompt_tokens, JSON.stringify(completion.usage));
  } else {
    assert.equal(reused, 0, JSON.stringify(completion.usage));
  }

  // A stop string (here three characters inside the greedy text) ends the text before it, with
  // finish_reason "stop", streamed or not; a stream never sends what the stop string removes.
  assert.ok(choice.text.length >= 5, `too short for a stop string: "${choice.text}"`);
  const stop = choice.text.slice(2, 5);
  const before = choice.text.slice(0, choice.text.indexOf(stop));
  const stopped = await client.completions.create({
    model, prompt, max_tokens: 6, temperature: 0, stop: ['never here', stop],
  });
  assert.equal(stopped.choices[0].text, before);
  assert.equal(stopped.choices[0].finish_reason, 'stop');
  assert.ok(stopped.usage.completion_tokens <= 6, JSON.stringify(stopped.usage));
  const stoppedStream = await client.completions.create({
    model, prompt, max_tokens: 6, temperature: 0, stop, stream: true,
  });
  let stoppedText = '';
  let stoppedLast = null;
  for await (const chunk of stoppedStream) {
    stoppedText += chunk.choices[0].text;
    stoppedLast = chunk;
  }
  assert.equal(stoppedText, before);
  assert.equal(stoppedLast.choices[0].finish_reason, 'stop');
  await assert.rejects(
    client.completions.create({ model, prompt, max_tokens: 2, stop: ['a', 'b', 'c', 'd', 'e'] }),
    (error) => {
      assert.ok(error instanceof OpenAI.BadRequestError, `${error}`);
      assert.equal(error.param, 'stop');
      return true;
    });

  // A paraphrase after its reference is a hit.
  const pair = JSON.parse(readFileSync(pairsFile, 'utf8').split('\n')[0]);
  const reference = await client.completions.create({ model, prompt: pair.reference, max_tokens: 4, temperature: 0 });
  assert.equal(reference.semshare.cache_hit, false);
  assert.equal(reference.usage.prompt_tokens_details.cached_tokens, 0, 'a miss reuses nothing');
  let stored = false;
  for (let i = 0; i < MAX_POLLS && !stored; ++i) {
    const again = await client.completions.create({ model, prompt: pair.reference, max_tokens: 1, temperature: 0 });
    stored = again.semshare.cache_hit;
  }
  assert.ok(stored, 'the reference was never stored');
  const paraphrase = await client.completions.create({
    model, prompt: [pair.target], max_tokens: 4, temperature: 0, semshare_similarity_threshold: 0.8,
  });
  assert.equal(paraphrase.semshare.cache_hit, true, JSON.stringify(paraphrase.semshare));
  assert.ok(paraphrase.semshare.similarity >= 0.8, JSON.stringify(paraphrase.semshare));
  assert.ok(paraphrase.semshare.reference_id.length > 0);
  // The prompt tokens whose KV was reused rather than recomputed.
  const cached = paraphrase.usage.prompt_tokens_details.cached_tokens;
  assert.ok(cached > 0 && cached < paraphrase.usage.prompt_tokens, JSON.stringify(paraphrase.usage));

  // A wrong key is a 401, which the SDK raises as AuthenticationError.
  const stranger = new OpenAI({ baseURL, apiKey: 'sk-wrong-key-0000000000000000', maxRetries: 0 });
  await assert.rejects(stranger.completions.create({ model, prompt, max_tokens: 2 }), (error) => {
    assert.ok(error instanceof OpenAI.AuthenticationError, `${error}`);
    assert.equal(error.status, 401);
    return true;
  });

  console.log(`openai client: "${choice.text}" (${completion.usage.completion_tokens} tokens), ` +
              `paraphrase hit similarity ${paraphrase.semshare.similarity.toFixed(3)}`);
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
