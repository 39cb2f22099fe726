#ifndef SEMSHARE_CACHE_NODE_REFERENCE_INDEX_H_
#define SEMSHARE_CACHE_NODE_REFERENCE_INDEX_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/types/span.h"
#include "common/token_mapping.h"

namespace faiss {
struct Index;
}

namespace semshare::cache_node {

struct ReferenceIndexOptions {
  int32_t sketch_dim = 0;  // every sketch of the model has this width
  int32_t code_bits = 0;   // every token code of the model has this width
  int32_t lsh_bits = 256;  // sign bits of the randomly rotated sketch FAISS compares
  // Target tokens whose exact nearest distances rank the FAISS candidates.
  int32_t sample_tokens = 64;
  // Full MapTokens runs at most this often per search (the best estimate, then the next
  // while an estimate still beats the best exact similarity).
  int32_t max_exact_mappings = 3;
  MappingOptions mapping;

  absl::Status Validate() const;
};

struct IndexedReference {
  uint64_t uid = 0;  // unique within the node, never reused
  std::string reference_id;
  TokenCodes codes;
  std::vector<float> sketch;
};

struct ScoredReference {
  uint64_t uid = 0;
  std::string reference_id;
  int64_t num_tokens = 0;
  double similarity = 0;  // exact MapTokens similarity when `exact`, else a sampled estimate
  bool exact = false;
};

struct IndexSearchResult {
  std::vector<ScoredReference> matches;  // best first; matches[0] is exact
  TokenMapping best_mapping;             // MapTokens(target, matches[0])
};

// The in-memory side of one (tenant, model): a FAISS LSH index over reference sketches for
// candidate retrieval, plus every reference's token codes for scoring and mapping.
// Searches run concurrently under a reader lock; adds and removes take the writer lock.
class ReferenceIndex {
 public:
  static absl::StatusOr<std::unique_ptr<ReferenceIndex>> Create(
      const ReferenceIndexOptions& options);
  ~ReferenceIndex();

  const ReferenceIndexOptions& options() const { return options_; }

  // InvalidArgument on a width that differs from the options, AlreadyExists on a known uid;
  // nothing is added unless all are.
  absl::Status Add(std::vector<IndexedReference> references);
  // Unknown uids are ignored.
  absl::Status Remove(absl::Span<const uint64_t> uids);

  // FAISS proposes `candidates` references by sketch; a sample of target tokens ranks them;
  // MapTokens maps the best. Empty when the index is.
  absl::StatusOr<IndexSearchResult> Search(const TokenCodes& target, absl::Span<const float> sketch,
                                           int32_t top_k, int32_t candidates) const;

  int64_t size() const;

 private:
  struct Entry {
    std::string reference_id;
    TokenCodes codes;
  };

  ReferenceIndex(const ReferenceIndexOptions& options, std::unique_ptr<faiss::Index> sketches);

  const ReferenceIndexOptions options_;
  mutable absl::Mutex mu_;
  std::unique_ptr<faiss::Index> sketches_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<uint64_t, Entry> entries_ ABSL_GUARDED_BY(mu_);
};

// Sampled similarity of `target` to `reference`: the MapTokens formula over the target
// tokens at `positions` only (exact nearest distances for those tokens).
double SampledSimilarity(const TokenCodes& target, absl::Span<const int32_t> positions,
                         const TokenCodes& reference, const MappingOptions& options);

}  // namespace semshare::cache_node

#endif  // SEMSHARE_CACHE_NODE_REFERENCE_INDEX_H_
