#ifndef SEMSHARE_CACHE_NODE_TESTING_SYNTHETIC_H_
#define SEMSHARE_CACHE_NODE_TESTING_SYNTHETIC_H_

#include <cstdint>
#include <map>
#include <string>
#include <tuple>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "cache_node/cache_node.h"

// Test and benchmark support for the cache node: synthetic references, the expected result
// of a fetch, and an in-memory fake of the domain CacheNode for tests of the layers above it.
namespace semshare::cache_node::testing {

struct SyntheticShape {
  int64_t num_tokens = 64;
  int32_t num_layers = 2;
  int64_t kv_heads = 2;
  int64_t head_dim = 8;
  DType dtype = DType::kFloat32;
  int32_t code_bits = 256;
  int32_t sketch_width = 32;
};

// A reference with random token ids, codes, an L2-normalised sketch and random KV bytes, all
// determined by `seed`.
NewReference SyntheticReference(const std::string& reference_id, const SyntheticShape& shape,
                                uint64_t seed);

// A target of `reference` with `edits` of its tokens given fresh random codes (the rest keep
// the reference's codes), and its sketch.
struct SyntheticTarget {
  TokenCodes codes;
  std::vector<float> sketch;
};
SyntheticTarget SyntheticEditedTarget(const NewReference& reference, int64_t edits, uint64_t seed);

// What FetchKV must return for one layer: rows source[t] of the reference's KV for each target
// token t in `target_tokens`, per kv head.
FetchedLayer ExpectedFetchedLayer(const NewReference& reference, int32_t layer,
                                  const std::vector<int32_t>& source,
                                  std::vector<int32_t> target_tokens);
// 0 .. num_targets - 1: every target token.
std::vector<int32_t> AllTargetTokens(size_t num_targets);

// An in-memory CacheNode with the domain API's observable behaviour (scopes, duplicates,
// not-found, mapping, gathering), minus persistence, indexes and eviction.
class FakeCacheNode : public CacheNode {
 public:
  absl::Status Put(const ReferenceScope& scope, NewReference reference) override;
  absl::StatusOr<FindResult> FindSimilar(const ReferenceScope& scope, const TokenCodes& target,
                                         absl::Span<const float> sketch, int32_t top_k) override;
  absl::Status FetchKV(const ReferenceScope& scope, const std::string& reference_id,
                       absl::Span<const int32_t> source,
                       const std::vector<std::vector<int32_t>>& token_subsets,
                       const std::function<absl::Status(FetchedLayer)>& sink) override;
  absl::Status Delete(const ReferenceScope& scope, const std::string& reference_id) override;
  absl::StatusOr<std::vector<ReferenceInfo>> List(const ReferenceScope& scope) override;
  NodeStats Stats() override;
  absl::Status Flush() override { return absl::OkStatus(); }

 private:
  using Key = std::tuple<std::string, std::string, std::string>;  // tenant, model, id
  absl::Mutex mu_;
  std::map<Key, NewReference> references_ ABSL_GUARDED_BY(mu_);
};

}  // namespace semshare::cache_node::testing

#endif  // SEMSHARE_CACHE_NODE_TESTING_SYNTHETIC_H_
