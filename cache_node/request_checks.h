#ifndef SEMSHARE_CACHE_NODE_REQUEST_CHECKS_H_
#define SEMSHARE_CACHE_NODE_REQUEST_CHECKS_H_

#include <cstdint>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "cache_node/cache_node.h"
#include "cache_node/reference_store.h"

// Validation of what callers hand the node, before anything is locked or stored.
namespace semshare::cache_node {

// What every reference of one (tenant, model) shares.
struct ModelLayout {
  int32_t num_layers = 0;
  DType dtype = DType::kFloat32;
  int64_t kv_heads = 0;
  int64_t head_dim = 0;
  int32_t code_bits = 0;
  int32_t sketch_dim = 0;

  static ModelLayout Of(const ReferenceMeta& meta, const ReferenceCodes& codes);
};

// InvalidArgument unless tenant and model fingerprint are set.
absl::Status CheckScope(const ReferenceScope& scope);

// InvalidArgument naming the first thing wrong with a new reference; its layout otherwise.
absl::StatusOr<ModelLayout> CheckNewReference(const NewReference& reference);

// FailedPrecondition naming the first difference from the model's earlier references.
absl::Status CheckSameLayout(const ModelLayout& model, const ModelLayout& incoming);

// InvalidArgument unless `codes` is a well-formed non-empty set of codes.
absl::Status CheckTokenCodes(const TokenCodes& codes, absl::string_view what);

// InvalidArgument unless every source index is in [0, num_tokens) and token_subsets is
// empty or one strictly ascending list of target indices per layer.
absl::Status CheckFetch(absl::Span<const int32_t> source, int64_t num_tokens, int32_t num_layers,
                        const std::vector<std::vector<int32_t>>& token_subsets);

}  // namespace semshare::cache_node

#endif  // SEMSHARE_CACHE_NODE_REQUEST_CHECKS_H_
