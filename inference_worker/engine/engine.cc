#include "inference_worker/engine/engine.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "inference_worker/engine/guarded.h"
#include "inference_worker/engine/kv_rearrange.h"
#include "inference_worker/engine/selective_recompute.h"

namespace semshare {
namespace {

// Waits for queued device work so stage timings mean something on CUDA.
void Sync(const at::Tensor& t) {
  if (t.defined() && t.is_cuda()) (void)t.sum().item<float>();
}

absl::StatusOr<PrefillOutcome> RunToCompletion(PrefillTask* task) {
  while (!task->done()) SEMSHARE_RETURN_IF_ERROR(task->Step());
  return task->Finish();
}

// Layers already in memory.
class GatheredCache : public GatheredLayerSource {
 public:
  explicit GatheredCache(KVCache cache) : cache_(std::move(cache)) {}
  absl::StatusOr<LayerKV> Layer(int64_t l) override {
    return std::move(cache_.layers[static_cast<size_t>(l)]);
  }

 private:
  KVCache cache_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<Engine>> Engine::Create(const Model* model,
                                                       const EngineOptions& options) {
  if (model == nullptr) return absl::InvalidArgumentError("engine needs a model");
  const bool on_gpu = model->device().is_cuda();
  return std::unique_ptr<Engine>(new Engine(model, options.measure_fixed_costs.value_or(on_gpu),
                                            options.gpu_cost_model.value_or(on_gpu)));
}

absl::StatusOr<const TokenEncoder*> Engine::EncoderFor(const ECacheOptions& options) const {
  absl::MutexLock lock(&mutex_);
  const auto key =
      std::make_tuple(options.use_rope, options.position_divisor, options.nbits, options.seed);
  auto it = encoders_.find(key);
  if (it != encoders_.end()) return it->second.get();
  SEMSHARE_ASSIGN_OR_RETURN(TokenEncoder encoder,
                            TokenEncoder::Create(model_->config(), options, model_->device()));
  auto inserted = encoders_.emplace(key, std::make_unique<TokenEncoder>(std::move(encoder)));
  return inserted.first->second.get();
}

absl::StatusOr<TokenCodes> Engine::EncodeCodesUnguarded(const std::vector<int32_t>& ids,
                                                        const ECacheOptions& ecache,
                                                        at::Tensor* sketch) const {
  if (ids.empty()) return absl::InvalidArgumentError("empty prompt");
  for (int32_t id : ids) {
    if (id < 0 || id >= model_->config().vocab_size) {
      return absl::InvalidArgumentError(absl::StrCat(
          "token id ", id, " outside the vocabulary [0, ", model_->config().vocab_size, ")"));
    }
  }
  SEMSHARE_ASSIGN_OR_RETURN(const TokenEncoder* encoder, EncoderFor(ecache));
  const at::Tensor rotated = encoder->RotatedEmbeddings(model_->Embed(model_->IdsTensor(ids)));
  if (sketch != nullptr) *sketch = encoder->Sketch(rotated);
  return encoder->Encode(rotated);
}

absl::StatusOr<TokenCodes> Engine::EncodeCodes(const std::vector<int32_t>& ids,
                                               const ECacheOptions& ecache,
                                               at::Tensor* sketch) const {
  return Guarded("encoding", [&] { return EncodeCodesUnguarded(ids, ecache, sketch); });
}

absl::StatusOr<Reference> Engine::BuildReference(const std::vector<int32_t>& ids,
                                                 const ECacheOptions& ecache) const {
  if (ids.empty()) return absl::InvalidArgumentError("empty prompt");
  SEMSHARE_RETURN_IF_ERROR(CheckFitsContext(model_->config(), static_cast<int64_t>(ids.size()), 0));
  return Guarded("building a reference", [&]() -> absl::StatusOr<Reference> {
    Reference reference;
    reference.ids = ids;
    reference.codes_options = ecache;
    SEMSHARE_ASSIGN_OR_RETURN(reference.codes,
                              EncodeCodesUnguarded(ids, ecache, &reference.sketch));
    reference.kv = model_->NewCache(static_cast<int64_t>(ids.size()));
    model_->Prefill(ids, &reference.kv);
    return reference;
  });
}

absl::Status Engine::ValidateTarget(const std::vector<int32_t>& target,
                                    const ReuseOptions& options) const {
  SEMSHARE_RETURN_IF_ERROR(options.Validate());
  return CheckPrompt(target, 0);
}

absl::Status Engine::CheckPrompt(const std::vector<int32_t>& target, int64_t max_tokens) const {
  const ModelConfig& c = model_->config();
  if (target.empty()) return absl::InvalidArgumentError("empty prompt");
  for (int32_t id : target) {
    if (id < 0 || id >= c.vocab_size) {
      return absl::InvalidArgumentError(
          absl::StrCat("token id ", id, " outside the vocabulary [0, ", c.vocab_size, ")"));
    }
  }
  return CheckFitsContext(c, static_cast<int64_t>(target.size()), max_tokens);
}

absl::Status Engine::CheckRequest(const std::vector<int32_t>& target,
                                  const SamplingOptions& sampling) const {
  SEMSHARE_RETURN_IF_ERROR(sampling.Validate());
  return CheckPrompt(target, sampling.max_tokens);
}

absl::StatusOr<bool> Engine::SemSharePrefill(const std::vector<int32_t>& target,
                                             const Reference& reference,
                                             const ReuseOptions& options,
                                             PrefillOutcome* out) const {
  const int64_t n = static_cast<int64_t>(target.size());
  const at::Device device = model_->device();

  auto stage = SteadyClock::now();
  SEMSHARE_ASSIGN_OR_RETURN(const TokenEncoder* encoder, EncoderFor(options.ecache));
  at::Tensor embeddings = model_->Embed(model_->IdsTensor(target));
  const TokenCodes codes = encoder->Encode(encoder->RotatedEmbeddings(embeddings));
  TokenCodes reference_codes_storage;
  const TokenCodes* reference_codes = &reference.codes;
  const ECacheOptions& rc = reference.codes_options;
  if (reference.codes.size() == 0 || rc.use_rope != options.ecache.use_rope ||
      rc.position_divisor != options.ecache.position_divisor || rc.nbits != options.ecache.nbits ||
      rc.seed != options.ecache.seed) {
    SEMSHARE_ASSIGN_OR_RETURN(reference_codes_storage,
                              EncodeCodesUnguarded(reference.ids, options.ecache, nullptr));
    reference_codes = &reference_codes_storage;
  }
  out->times.encode_ms = MillisSince(stage);

  stage = SteadyClock::now();
  SEMSHARE_ASSIGN_OR_RETURN(TokenMapping mapping,
                            MapTokens(codes, *reference_codes, options.mapping));
  out->times.match_ms = MillisSince(stage);
  out->similarity = mapping.similarity;
  if (mapping.similarity < options.similarity_threshold) return false;

  stage = SteadyClock::now();
  const at::Tensor positions = at::arange(n, at::TensorOptions().dtype(at::kLong).device(device));
  const at::Tensor source =
      at::tensor(std::vector<int64_t>(mapping.source.begin(), mapping.source.end()), at::kLong)
          .to(device);
  out->cache = RearrangeKV(reference.kv, source, positions, model_->rope(), options.rerotate_keys);
  Sync(out->cache.layers.back().k());
  out->times.rearrange_ms = MillisSince(stage);
  SelectiveRecompute recompute(model_, std::move(embeddings), mapping, options, out);
  while (!recompute.done()) recompute.StepLayer();
  recompute.Finish();
  return true;
}

absl::StatusOr<PrefillOutcome> Engine::Prefill(const std::vector<int32_t>& target,
                                               const Reference* reference,
                                               const ReuseOptions& options) const {
  return PrefillKeeping(target, reference, options, nullptr);
}

absl::StatusOr<PrefillOutcome> Engine::PrefillKeeping(const std::vector<int32_t>& target,
                                                      const Reference* reference,
                                                      const ReuseOptions& options,
                                                      KVCache* full_prefill_kv) const {
  SEMSHARE_RETURN_IF_ERROR(ValidateTarget(target, options));
  const ModelConfig& c = model_->config();
  if (reference != nullptr &&
      reference->kv.layers.size() != static_cast<size_t>(c.num_hidden_layers)) {
    return absl::InvalidArgumentError(absl::StrCat("reference KV has ", reference->kv.layers.size(),
                                                   " layers, the model ", c.num_hidden_layers));
  }
  const int64_t n = static_cast<int64_t>(target.size());
  return Guarded("prefill", [&]() -> absl::StatusOr<PrefillOutcome> {
    // A full prefill in one piece, keeping its KV before retention when asked.
    const auto full_prefill = [&]() -> absl::StatusOr<PrefillOutcome> {
      PrefillPieces pieces;
      pieces.keep_full_kv = full_prefill_kv != nullptr;
      const std::unique_ptr<PrefillTask> task =
          NewChunkedPrefill(model_, target, KVCache{}, options, pieces);
      SEMSHARE_ASSIGN_OR_RETURN(PrefillOutcome out, RunToCompletion(task.get()));
      if (full_prefill_kv != nullptr) *full_prefill_kv = task->TakeFullKV();
      return out;
    };
    if (reference == nullptr || options.method == ReuseMethod::kFull) return full_prefill();
    if (options.method == ReuseMethod::kPrefix) {
      int64_t prefix = 0;
      const int64_t limit = std::min<int64_t>(n, static_cast<int64_t>(reference->ids.size()));
      while (prefix < limit && target[prefix] == reference->ids[prefix]) ++prefix;
      // The last prompt token is always computed: its logits are the first output.
      prefix = std::min(prefix, n - 1);
      if (prefix == 0) return full_prefill();
      KVCache rows;
      for (const LayerKV& layer : reference->kv.layers) {
        rows.layers.emplace_back(layer.k().narrow(1, 0, prefix), layer.v().narrow(1, 0, prefix),
                                 layer.positions().narrow(0, 0, prefix));
      }
      const std::unique_ptr<PrefillTask> task =
          NewChunkedPrefill(model_, target, std::move(rows), options, PrefillPieces{});
      return RunToCompletion(task.get());
    }
    PrefillOutcome out;
    out.prompt_tokens = n;
    if (std::optional<std::string> reason =
            BypassReason(n, static_cast<int64_t>(reference->ids.size()), options)) {
      out.bypassed = true;
      out.bypass_reason = *std::move(reason);
    } else {
      SEMSHARE_ASSIGN_OR_RETURN(const bool hit, SemSharePrefill(target, *reference, options, &out));
      if (hit) return out;  // retention already applied, protecting the recompute sets
    }
    // A miss or a bypass: a full prefill, reporting what the match found.
    SEMSHARE_ASSIGN_OR_RETURN(PrefillOutcome full, full_prefill());
    full.bypassed = out.bypassed;
    full.bypass_reason = std::move(out.bypass_reason);
    full.similarity = out.similarity;
    full.times.encode_ms = out.times.encode_ms;
    full.times.match_ms = out.times.match_ms;
    return full;
  });
}

absl::StatusOr<PrefillOutcome> Engine::PrefillGathered(const std::vector<int32_t>& target,
                                                       const TokenMapping& mapping,
                                                       KVCache gathered,
                                                       const ReuseOptions& options) const {
  if (gathered.layers.size() != static_cast<size_t>(model_->num_layers())) {
    return absl::InvalidArgumentError(absl::StrCat("gathered KV has ", gathered.layers.size(),
                                                   " layers, the model ", model_->num_layers()));
  }
  GatheredCache layers(std::move(gathered));
  return PrefillGathered(target, mapping, &layers, options);
}

absl::StatusOr<PrefillOutcome> Engine::PrefillGathered(const std::vector<int32_t>& target,
                                                       const TokenMapping& mapping,
                                                       GatheredLayerSource* layers,
                                                       const ReuseOptions& options) const {
  SEMSHARE_ASSIGN_OR_RETURN(
      std::unique_ptr<PrefillTask> task,
      StartGatheredPrefill(target, mapping, layers, options, PrefillPieces{}));
  return RunToCompletion(task.get());
}

absl::StatusOr<std::unique_ptr<PrefillTask>> Engine::StartFullPrefill(
    const std::vector<int32_t>& target, const ReuseOptions& options,
    const PrefillPieces& pieces) const {
  SEMSHARE_RETURN_IF_ERROR(ValidateTarget(target, options));
  SEMSHARE_RETURN_IF_ERROR(pieces.Validate());
  return NewChunkedPrefill(model_, target, KVCache{}, options, pieces);
}

absl::StatusOr<std::unique_ptr<PrefillTask>> Engine::StartPrefixPrefill(
    const std::vector<int32_t>& target, KVCache prefix, const ReuseOptions& options,
    const PrefillPieces& pieces) const {
  SEMSHARE_RETURN_IF_ERROR(ValidateTarget(target, options));
  SEMSHARE_RETURN_IF_ERROR(pieces.Validate());
  const ModelConfig& c = model_->config();
  if (prefix.layers.size() != static_cast<size_t>(c.num_hidden_layers)) {
    return absl::InvalidArgumentError(absl::StrCat("prefix KV has ", prefix.layers.size(),
                                                   " layers, the model ", c.num_hidden_layers));
  }
  const int64_t p = prefix.layers.front().size();
  const int64_t n = static_cast<int64_t>(target.size());
  for (const LayerKV& layer : prefix.layers) {
    if (layer.size() != p || p < 1 || p >= n || layer.k().size(0) != c.num_key_value_heads ||
        layer.k().size(2) != c.head_dim || layer.v().sizes() != layer.k().sizes()) {
      return absl::InvalidArgumentError(absl::StrCat("prefix KV of ", layer.size(),
                                                     " tokens does not fit the model and a ", n,
                                                     "-token prompt"));
    }
  }
  return Guarded("prefill", [&]() -> absl::StatusOr<std::unique_ptr<PrefillTask>> {
    for (LayerKV& layer : prefix.layers) {
      layer = LayerKV(layer.k().to(model_->device(), model_->dtype()),
                      layer.v().to(model_->device(), model_->dtype()),
                      layer.positions().to(model_->device(), at::kLong));
    }
    return NewChunkedPrefill(model_, target, std::move(prefix), options, pieces);
  });
}

absl::StatusOr<std::unique_ptr<PrefillTask>> Engine::StartGatheredPrefill(
    const std::vector<int32_t>& target, const TokenMapping& mapping, GatheredLayerSource* layers,
    const ReuseOptions& options, const PrefillPieces& pieces) const {
  SEMSHARE_RETURN_IF_ERROR(ValidateTarget(target, options));
  SEMSHARE_RETURN_IF_ERROR(pieces.Validate());
  if (layers == nullptr) return absl::InvalidArgumentError("no gathered layers");
  const int64_t n = static_cast<int64_t>(target.size());
  if (static_cast<int64_t>(mapping.source.size()) != n ||
      static_cast<int64_t>(mapping.unmatched.size()) != n) {
    return absl::InvalidArgumentError(
        absl::StrCat("mapping covers ", mapping.source.size(), " tokens, the prompt has ", n));
  }
  return NewGatheredRecompute(model_, target, mapping, layers, options, pieces);
}

absl::StatusOr<DecodeSequence> Engine::StartDecode(PrefillOutcome prefill,
                                                   const ReuseOptions& options,
                                                   const SamplingOptions& sampling,
                                                   SteadyClock::time_point start) const {
  SEMSHARE_RETURN_IF_ERROR(sampling.Validate());
  SEMSHARE_RETURN_IF_ERROR(
      CheckFitsContext(model_->config(), prefill.prompt_tokens, sampling.max_tokens));
  if (sampling.max_tokens > 0 && !prefill.logits.defined()) {
    return absl::InvalidArgumentError("the prefill has no logits to decode from");
  }
  return Guarded("decode", [&]() -> absl::StatusOr<DecodeSequence> {
    return semshare::StartDecode(std::move(prefill), options.retention, sampling, start);
  });
}

absl::Status Engine::DecodeStep(absl::Span<DecodeSequence* const> batch) const {
  return Guarded("decode", [&]() -> absl::Status {
    if (decode_fault_) decode_fault_();
    semshare::DecodeStep(*model_, batch);
    return absl::OkStatus();
  });
}

absl::StatusOr<GenerateResult> Engine::FinishDecode(DecodeSequence sequence) const {
  return semshare::FinishDecode(*model_, std::move(sequence));
}

absl::StatusOr<GenerateResult> Engine::Decode(PrefillOutcome prefill, const ReuseOptions& options,
                                              const SamplingOptions& sampling,
                                              SteadyClock::time_point start) const {
  SEMSHARE_ASSIGN_OR_RETURN(DecodeSequence sequence,
                            StartDecode(std::move(prefill), options, sampling, start));
  DecodeSequence* const batch[] = {&sequence};
  while (!sequence.finished) SEMSHARE_RETURN_IF_ERROR(DecodeStep(batch));
  return FinishDecode(std::move(sequence));
}

absl::StatusOr<GenerateResult> Engine::Generate(const std::vector<int32_t>& target,
                                                const Reference* reference,
                                                const ReuseOptions& options,
                                                const SamplingOptions& sampling) const {
  SEMSHARE_RETURN_IF_ERROR(CheckRequest(target, sampling));
  const auto start = SteadyClock::now();
  SEMSHARE_ASSIGN_OR_RETURN(PrefillOutcome prefill, Prefill(target, reference, options));
  return Decode(std::move(prefill), options, sampling, start);
}

absl::StatusOr<GenerateResult> Engine::GenerateFrom(PrefillOutcome prefill,
                                                    const ReuseOptions& options,
                                                    const SamplingOptions& sampling) const {
  return Decode(std::move(prefill), options, sampling, SteadyClock::now());
}

absl::StatusOr<std::pair<GenerateResult, Reference>> Engine::GenerateMiss(
    const std::vector<int32_t>& target, const ReuseOptions& options,
    const SamplingOptions& sampling) const {
  SEMSHARE_RETURN_IF_ERROR(CheckRequest(target, sampling));
  const auto start = SteadyClock::now();
  Reference reference;
  reference.ids = target;
  reference.codes_options = options.ecache;
  SEMSHARE_ASSIGN_OR_RETURN(PrefillOutcome prefill,
                            PrefillKeeping(target, nullptr, options, &reference.kv));
  SEMSHARE_ASSIGN_OR_RETURN(GenerateResult result,
                            Decode(std::move(prefill), options, sampling, start));
  SEMSHARE_ASSIGN_OR_RETURN(reference.codes,
                            EncodeCodes(target, options.ecache, &reference.sketch));
  return std::make_pair(std::move(result), std::move(reference));
}

absl::StatusOr<GenerateResult> Engine::GenerateGathered(const std::vector<int32_t>& target,
                                                        const TokenMapping& mapping,
                                                        KVCache gathered,
                                                        const ReuseOptions& options,
                                                        const SamplingOptions& sampling) const {
  SEMSHARE_RETURN_IF_ERROR(CheckRequest(target, sampling));
  const auto start = SteadyClock::now();
  SEMSHARE_ASSIGN_OR_RETURN(PrefillOutcome prefill,
                            PrefillGathered(target, mapping, std::move(gathered), options));
  return Decode(std::move(prefill), options, sampling, start);
}

absl::StatusOr<GenerateResult> Engine::GenerateGathered(const std::vector<int32_t>& target,
                                                        const TokenMapping& mapping,
                                                        GatheredLayerSource* layers,
                                                        const ReuseOptions& options,
                                                        const SamplingOptions& sampling) const {
  SEMSHARE_RETURN_IF_ERROR(CheckRequest(target, sampling));
  const auto start = SteadyClock::now();
  SEMSHARE_ASSIGN_OR_RETURN(PrefillOutcome prefill,
                            PrefillGathered(target, mapping, layers, options));
  return Decode(std::move(prefill), options, sampling, start);
}

absl::StatusOr<double> Engine::ContinuationNll(PrefillOutcome* prefill,
                                               const std::vector<int32_t>& continuation,
                                               const ReuseOptions& options,
                                               std::vector<int32_t>* top1) const {
  if (top1 != nullptr) top1->clear();
  if (continuation.empty()) return absl::InvalidArgumentError("empty continuation");
  SEMSHARE_RETURN_IF_ERROR(CheckFitsContext(model_->config(), prefill->prompt_tokens,
                                            static_cast<int64_t>(continuation.size())));
  return Guarded("scoring", [&]() -> absl::StatusOr<double> {
    double nll = 0;
    at::Tensor logits = prefill->logits;
    for (size_t t = 0; t < continuation.size(); ++t) {
      const int32_t token = continuation[t];
      if (token < 0 || token >= model_->config().vocab_size) {
        return absl::InvalidArgumentError(
            absl::StrCat("continuation token ", token, " outside the vocabulary"));
      }
      nll -= at::log_softmax(logits.to(at::kFloat), 0)[token].item<double>();
      if (top1 != nullptr) top1->push_back(static_cast<int32_t>(logits.argmax().item<int64_t>()));
      if (t + 1 == continuation.size()) break;
      logits = model_->DecodeStep(token, prefill->prompt_tokens + static_cast<int64_t>(t),
                                  &prefill->cache, &prefill->stats);
      EvictForDecode(options.retention, prefill);
    }
    return nll / static_cast<double>(continuation.size());
  });
}

}  // namespace semshare
