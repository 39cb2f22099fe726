#include "inference_worker/engine/decode.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <utility>

namespace semshare {
namespace {

// Records `token` as chosen; finishes the sequence when it stops it or the client went away.
void Emit(int32_t token, DecodeSequence* s) {
  s->tokens.push_back(token);
  if (s->sampling.on_token && !s->sampling.on_token(token)) {
    s->status = absl::CancelledError("the client went away");
    s->finished = true;
    return;
  }
  const std::vector<int32_t>& stops = s->sampling.stop_tokens;
  if (static_cast<int32_t>(s->tokens.size()) >= s->sampling.max_tokens ||
      std::find(stops.begin(), stops.end(), token) != stops.end()) {
    s->finished = true;
  }
}

}  // namespace

DecodeSequence StartDecode(PrefillOutcome prefill, const RetentionOptions& retention,
                           const SamplingOptions& sampling, SteadyClock::time_point start) {
  DecodeSequence s;
  s.prefill = std::move(prefill);
  s.retention = retention;
  s.sampling = sampling;
  s.rng.seed(sampling.seed);
  s.start = start;
  if (sampling.max_tokens <= 0) {
    s.ttft_ms = MillisSince(start);
    s.first_token_time = SteadyClock::now();
    s.finished = true;
    return s;
  }
  const int32_t token = SampleToken(s.prefill.logits, s.sampling, &s.rng);
  s.first_token_time = SteadyClock::now();
  s.ttft_ms = MillisBetween(start, s.first_token_time);
  Emit(token, &s);
  return s;
}

void DecodeStep(const Model& model, absl::Span<DecodeSequence* const> batch) {
  std::vector<DecodeSequence*> running;
  std::vector<Model::DecodeRow> rows;
  for (DecodeSequence* s : batch) {
    if (s->finished) continue;
    running.push_back(s);
    const int64_t position = s->prefill.prompt_tokens + static_cast<int64_t>(s->tokens.size()) - 1;
    rows.push_back({s->tokens.back(), position, &s->prefill.cache, &s->prefill.stats});
  }
  if (rows.empty()) return;
  const at::Tensor logits = model.DecodeBatch(rows).to(at::kCPU);
  for (size_t b = 0; b < running.size(); ++b) {
    DecodeSequence* s = running[b];
    EvictForDecode(s->retention, &s->prefill);
    Emit(SampleToken(logits[static_cast<int64_t>(b)], s->sampling, &s->rng), s);
  }
}

absl::StatusOr<GenerateResult> FinishDecode(const Model& model, DecodeSequence s) {
  if (!s.status.ok()) return s.status;
  GenerateResult result;
  result.prefill = std::move(s.prefill);
  result.tokens = std::move(s.tokens);
  result.ttft_ms = s.ttft_ms;
  result.latency_ms = MillisSince(s.start);
  if (!result.tokens.empty()) result.prefill.times.decode_ms = MillisSince(s.first_token_time);
  PrefillOutcome& prefill = result.prefill;
  result.kv_bytes = prefill.cache.bytes();
  const int64_t length =
      prefill.prompt_tokens + std::max<int64_t>(0, static_cast<int64_t>(result.tokens.size()) - 1);
  result.kv_kept_share = static_cast<double>(prefill.cache.token_layers()) /
                         static_cast<double>(std::max<int64_t>(1, length * model.num_layers()));
  return result;
}

}  // namespace semshare
