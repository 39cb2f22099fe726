#include "cache_node/testing/synthetic.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <random>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"

namespace semshare::cache_node::testing {
namespace {

std::string RandomBytes(int64_t size, std::mt19937_64* rng) {
  std::string bytes(static_cast<size_t>(size), '\0');
  for (int64_t i = 0; i < size; i += 8) {
    const uint64_t word = (*rng)();
    std::memcpy(bytes.data() + i, &word, static_cast<size_t>(std::min<int64_t>(8, size - i)));
  }
  return bytes;
}

std::vector<float> RandomUnitVector(int32_t width, std::mt19937_64* rng) {
  std::normal_distribution<float> normal;
  std::vector<float> v(static_cast<size_t>(width));
  double norm = 0;
  for (float& x : v) {
    x = normal(*rng);
    norm += static_cast<double>(x) * x;
  }
  for (float& x : v) x = static_cast<float>(x / std::sqrt(norm));
  return v;
}

// Rows `rows` of a [heads, tokens, dim] tensor, per head: [heads, rows.size(), dim]. Written
// apart from the node's own gather (cache_node/kv_gather.h) on purpose: tests compare the
// node's output with this independent oracle.
TensorBlob GatherRows(const TensorBlob& blob, const std::vector<int32_t>& rows) {
  TensorBlob out;
  out.dtype = blob.dtype;
  const int64_t heads = blob.shape[0], tokens = blob.shape[1];
  const int64_t row_bytes = blob.shape[2] * DTypeSize(blob.dtype);
  out.shape = {heads, static_cast<int64_t>(rows.size()), blob.shape[2]};
  out.data.resize(static_cast<size_t>(heads * static_cast<int64_t>(rows.size()) * row_bytes));
  char* dst = out.data.data();
  for (int64_t h = 0; h < heads; ++h) {
    for (int32_t row : rows) {
      std::memcpy(dst, blob.data.data() + (h * tokens + row) * row_bytes,
                  static_cast<size_t>(row_bytes));
      dst += row_bytes;
    }
  }
  return out;
}

}  // namespace

NewReference SyntheticReference(const std::string& reference_id, const SyntheticShape& shape,
                                uint64_t seed) {
  std::mt19937_64 rng(seed);
  NewReference ref;
  ref.reference_id = reference_id;
  for (int64_t t = 0; t < shape.num_tokens; ++t)
    ref.token_ids.push_back(static_cast<int32_t>(rng() % 32000));
  ref.codes.nbits = shape.code_bits;
  ref.codes.words.resize(static_cast<size_t>(shape.num_tokens * ref.codes.words_per_code()));
  for (uint64_t& w : ref.codes.words) w = rng();
  ref.sketch = RandomUnitVector(shape.sketch_width, &rng);
  const int64_t part_bytes =
      shape.kv_heads * shape.num_tokens * shape.head_dim * DTypeSize(shape.dtype);
  for (int32_t l = 0; l < shape.num_layers; ++l) {
    LayerKV kv;
    for (TensorBlob* blob : {&kv.key, &kv.value}) {
      blob->dtype = shape.dtype;
      blob->shape = {shape.kv_heads, shape.num_tokens, shape.head_dim};
      blob->data = RandomBytes(part_bytes, &rng);
    }
    ref.layers.push_back(std::move(kv));
  }
  return ref;
}

SyntheticTarget SyntheticEditedTarget(const NewReference& reference, int64_t edits, uint64_t seed) {
  std::mt19937_64 rng(seed);
  SyntheticTarget target;
  target.codes = reference.codes;
  const int64_t n = reference.codes.size();
  const int32_t words = reference.codes.words_per_code();
  for (int64_t e = 0; e < edits && n > 0; ++e) {
    const int64_t t = static_cast<int64_t>(rng() % static_cast<uint64_t>(n));
    for (int32_t w = 0; w < words; ++w)
      target.codes.words[static_cast<size_t>(t * words + w)] = rng();
  }
  // Close to the reference's sketch: the reference plus a little noise, renormalised.
  std::vector<float> noise = RandomUnitVector(static_cast<int32_t>(reference.sketch.size()), &rng);
  double norm = 0;
  target.sketch.resize(reference.sketch.size());
  for (size_t i = 0; i < reference.sketch.size(); ++i) {
    target.sketch[i] = reference.sketch[i] + 0.05f * noise[i];
    norm += static_cast<double>(target.sketch[i]) * target.sketch[i];
  }
  for (float& x : target.sketch) x = static_cast<float>(x / std::sqrt(norm));
  return target;
}

FetchedLayer ExpectedFetchedLayer(const NewReference& reference, int32_t layer,
                                  const std::vector<int32_t>& source,
                                  std::vector<int32_t> target_tokens) {
  FetchedLayer out;
  out.layer = layer;
  for (int32_t t : target_tokens) out.source_positions.push_back(source[static_cast<size_t>(t)]);
  out.target_tokens = std::move(target_tokens);
  const LayerKV& kv = reference.layers[static_cast<size_t>(layer)];
  out.kv.key = GatherRows(kv.key, out.source_positions);
  out.kv.value = GatherRows(kv.value, out.source_positions);
  return out;
}

std::vector<int32_t> AllTargetTokens(size_t num_targets) {
  std::vector<int32_t> all(num_targets);
  for (size_t t = 0; t < num_targets; ++t) all[t] = static_cast<int32_t>(t);
  return all;
}

absl::Status FakeCacheNode::Put(const ReferenceScope& scope, NewReference reference) {
  if (reference.token_ids.empty()) return absl::InvalidArgumentError("empty prompt");
  absl::MutexLock lock(&mu_);
  const Key key{scope.tenant, scope.model_fingerprint, reference.reference_id};
  if (references_.count(key) > 0) {
    return absl::AlreadyExistsError(absl::StrCat("reference ", reference.reference_id, " exists"));
  }
  references_.emplace(key, std::move(reference));
  return absl::OkStatus();
}

absl::StatusOr<FindResult> FakeCacheNode::FindSimilar(const ReferenceScope& scope,
                                                      const TokenCodes& target,
                                                      absl::Span<const float> sketch,
                                                      int32_t top_k) {
  if (top_k <= 0) return absl::InvalidArgumentError("top_k must be > 0");
  absl::MutexLock lock(&mu_);
  std::vector<std::pair<Match, TokenMapping>> scored;
  for (const auto& [key, ref] : references_) {
    if (std::get<0>(key) != scope.tenant || std::get<1>(key) != scope.model_fingerprint) continue;
    SEMSHARE_ASSIGN_OR_RETURN(TokenMapping mapping, MapTokens(target, ref.codes, MappingOptions()));
    Match match{ref.reference_id, mapping.similarity, static_cast<int64_t>(ref.token_ids.size())};
    scored.emplace_back(match, std::move(mapping));
  }
  std::stable_sort(scored.begin(), scored.end(), [](const auto& a, const auto& b) {
    return a.first.similarity > b.first.similarity;
  });
  FindResult result;
  for (size_t i = 0; i < scored.size() && i < static_cast<size_t>(top_k); ++i) {
    result.matches.push_back(scored[i].first);
  }
  if (!scored.empty()) result.best_mapping = std::move(scored[0].second);
  return result;
}

absl::Status FakeCacheNode::FetchKV(const ReferenceScope& scope, const std::string& reference_id,
                                    absl::Span<const int32_t> source,
                                    const std::vector<std::vector<int32_t>>& token_subsets,
                                    const std::function<absl::Status(FetchedLayer)>& sink) {
  NewReference ref;
  {
    absl::MutexLock lock(&mu_);
    const auto it = references_.find(Key{scope.tenant, scope.model_fingerprint, reference_id});
    if (it == references_.end())
      return absl::NotFoundError(absl::StrCat("no reference ", reference_id));
    ref = it->second;
  }
  for (int32_t s : source) {
    if (s < 0 || s >= static_cast<int32_t>(ref.token_ids.size())) {
      return absl::InvalidArgumentError(absl::StrCat("source index ", s, " out of range"));
    }
  }
  if (!token_subsets.empty() && token_subsets.size() != ref.layers.size()) {
    return absl::InvalidArgumentError("one token subset per layer");
  }
  const std::vector<int32_t> source_vector(source.begin(), source.end());
  for (size_t l = 0; l < ref.layers.size(); ++l) {
    SEMSHARE_RETURN_IF_ERROR(sink(ExpectedFetchedLayer(
        ref, static_cast<int32_t>(l), source_vector,
        token_subsets.empty() ? AllTargetTokens(source.size()) : token_subsets[l])));
  }
  return absl::OkStatus();
}

absl::Status FakeCacheNode::Delete(const ReferenceScope& scope, const std::string& reference_id) {
  absl::MutexLock lock(&mu_);
  if (references_.erase(Key{scope.tenant, scope.model_fingerprint, reference_id}) == 0) {
    return absl::NotFoundError(absl::StrCat("no reference ", reference_id));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<ReferenceInfo>> FakeCacheNode::List(const ReferenceScope& scope) {
  absl::MutexLock lock(&mu_);
  std::vector<ReferenceInfo> infos;
  for (const auto& [key, ref] : references_) {
    if (std::get<0>(key) != scope.tenant || std::get<1>(key) != scope.model_fingerprint) continue;
    ReferenceInfo info;
    info.reference_id = ref.reference_id;
    info.num_tokens = static_cast<int64_t>(ref.token_ids.size());
    info.num_layers = static_cast<int32_t>(ref.layers.size());
    infos.push_back(info);
  }
  return infos;
}

NodeStats FakeCacheNode::Stats() {
  absl::MutexLock lock(&mu_);
  NodeStats stats;
  stats.references = static_cast<int64_t>(references_.size());
  for (const auto& [key, ref] : references_) ++stats.tenants[std::get<0>(key)].references;
  return stats;
}

}  // namespace semshare::cache_node::testing
