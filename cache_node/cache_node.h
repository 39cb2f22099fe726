#ifndef SEMSHARE_CACHE_NODE_CACHE_NODE_H_
#define SEMSHARE_CACHE_NODE_CACHE_NODE_H_

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "common/tensor_blob.h"
#include "common/token_mapping.h"

// One shard of the cluster (DESIGN.md, "The cluster"): references on RocksDB, an in-memory
// similarity index per (tenant, model), LRU eviction. The domain layer only: no gRPC here.
namespace semshare::cache_node {

// Every key is partitioned by both: nothing one tenant does can reach another's references.
struct ReferenceScope {
  std::string tenant;
  std::string model_fingerprint;
};

// Each [kv_heads, num_tokens, head_dim].
struct LayerKV {
  TensorBlob key;
  TensorBlob value;
};

struct NewReference {
  std::string reference_id;        // unique within a scope; AlreadyExists on duplicates
  std::vector<int32_t> token_ids;  // the prompt; non-empty
  TokenCodes codes;                // one code per token (common/token_mapping.h)
  std::vector<float> sketch;       // prompt sketch (L2-normalised), one width per model
  std::vector<LayerKV> layers;     // KV at positions 0..num_tokens-1, one entry per layer
  // The tenant's byte budget on this node (its API key's); 0: only the node's own budgets.
  // The smaller of it and the node's per-tenant budget applies.
  int64_t tenant_byte_budget = 0;
};

struct Match {
  std::string reference_id;
  double similarity = 0;
  int64_t num_tokens = 0;
};

struct FindResult {
  std::vector<Match> matches;  // best first, at most top_k; empty = miss
  // Full MapTokens(target, best reference codes) of matches[0], exactly what the engine
  // computes.
  TokenMapping best_mapping;
};

struct FetchedLayer {
  int32_t layer = 0;
  std::vector<int32_t> target_tokens;     // target indices carried, ascending
  std::vector<int32_t> source_positions;  // reference position each came from (key re-rotation)
  LayerKV kv;  // gathered: row r = reference token source[target_tokens[r]]
};

struct ReferenceInfo {
  std::string reference_id;
  int64_t num_tokens = 0;
  int32_t num_layers = 0;
  int64_t bytes = 0;
  int64_t created_unix_ms = 0;
  int64_t last_used_unix_ms = 0;
};

struct TenantStats {
  int64_t references = 0;
  int64_t bytes = 0;
  int64_t evicted_references = 0;
  int64_t evicted_bytes = 0;
  int64_t deleted_references = 0;  // by Delete (not eviction, not corruption)
};

struct NodeStats {
  int64_t references = 0;
  int64_t bytes = 0;
  int64_t capacity_bytes = 0;
  int64_t corrupt_blobs_removed = 0;
  int64_t evicted_references = 0;
  int64_t deleted_references = 0;
  std::map<std::string, TenantStats> tenants;
};

struct CacheNodeOptions {
  std::string data_dir;
  bool sync_writes = false;           // WAL always on; fsync per write when sync_writes
  int64_t capacity_bytes = 0;         // > 0 required
  int64_t tenant_capacity_bytes = 0;  // 0 = only the total budget
  int32_t candidates = 16;            // FAISS candidates scored per FindSimilar
  MappingOptions mapping;             // must match the engine's, so best_mapping is its mapping

  absl::Status Validate() const;
};

class CacheNode {
 public:
  virtual ~CacheNode() = default;

  // Atomic (one RocksDB WriteBatch): after a crash either all of it is visible or none.
  // Validates shapes (every layer [kv_heads, num_tokens, head_dim], K and V alike,
  // codes/sketch sizes, the same layer count/shape/dtype as earlier references of that
  // model -> FailedPrecondition naming the difference). Evicts least-recently-used
  // references past the budgets.
  virtual absl::Status Put(const ReferenceScope& scope, NewReference reference) = 0;

  virtual absl::StatusOr<FindResult> FindSimilar(const ReferenceScope& scope,
                                                 const TokenCodes& target,
                                                 absl::Span<const float> sketch, int32_t top_k) = 0;

  // Streams the reference's KV gathered into target order, layer by layer. source[i] =
  // reference token for target token i (FindResult::best_mapping.source). token_subsets:
  // empty = every target token in every layer, otherwise one ascending list of target
  // indices per layer. NotFound for an unknown id (also another tenant's id),
  // InvalidArgument for a source index out of range; a blob failing its checksum -> the
  // reference is removed and DataLoss is returned (a miss, never wrong data).
  virtual absl::Status FetchKV(const ReferenceScope& scope, const std::string& reference_id,
                               absl::Span<const int32_t> source,
                               const std::vector<std::vector<int32_t>>& token_subsets,
                               const std::function<absl::Status(FetchedLayer)>& sink) = 0;

  virtual absl::Status Delete(const ReferenceScope& scope, const std::string& reference_id) = 0;
  virtual absl::StatusOr<std::vector<ReferenceInfo>> List(const ReferenceScope& scope) = 0;
  virtual NodeStats Stats() = 0;
  virtual absl::Status Flush() = 0;  // before shutdown
};

absl::StatusOr<std::unique_ptr<CacheNode>> OpenCacheNode(const CacheNodeOptions& options);

}  // namespace semshare::cache_node

#endif  // SEMSHARE_CACHE_NODE_CACHE_NODE_H_
