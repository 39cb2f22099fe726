#ifndef SEMSHARE_INFERENCE_WORKER_SERVICE_LOCAL_REFERENCE_CACHE_H_
#define SEMSHARE_INFERENCE_WORKER_SERVICE_LOCAL_REFERENCE_CACHE_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <tuple>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "inference_worker/engine/kv_cache.h"
#include "inference_worker/service/byte_lru.h"

// References' KV rows the worker keeps for repeat hits: a hit whose rows are all here needs no
// transfer. Rows arrive from fetches (the rows a mapping named) and stores (every row).
namespace semshare::worker {

struct LocalReferenceKey {
  std::string tenant;
  std::string model_fingerprint;
  std::string reference_id;

  bool operator==(const LocalReferenceKey& o) const {
    return std::tie(tenant, model_fingerprint, reference_id) ==
           std::tie(o.tenant, o.model_fingerprint, o.reference_id);
  }
  template <typename H>
  friend H AbslHashValue(H h, const LocalReferenceKey& k) {
    return H::combine(std::move(h), k.tenant, k.model_fingerprint, k.reference_id);
  }
};

// Rows of a reference's KV, in ascending reference position; each layer's positions are those
// reference positions. Immutable once made: hits share it.
struct LocalReference {
  std::vector<int32_t> positions;
  KVCache kv;
  int64_t bytes = 0;
};

// Thread-safe; bounded by bytes, least recently used evicted first.
class LocalReferenceCache {
 public:
  explicit LocalReferenceCache(int64_t capacity_bytes) : entries_(capacity_bytes) {}

  // Rows of the reference in target order (row i = reference token source[i], at its reference
  // position), or nullopt when it does not hold every one. May throw c10::Error.
  std::optional<KVCache> Gather(const LocalReferenceKey& key, const std::vector<int32_t>& source);
  // Adds `rows` (row r is reference position row_positions[r]) to what is held for the
  // reference. May throw c10::Error.
  void Add(const LocalReferenceKey& key, const KVCache& rows,
           const std::vector<int32_t>& row_positions);

  // Reference ids held, most recently used first.
  std::vector<std::string> ReferenceIds() const;
  int64_t bytes() const;
  int64_t size() const;

 private:
  mutable absl::Mutex mutex_;
  ByteLru<LocalReferenceKey, std::shared_ptr<const LocalReference>> entries_
      ABSL_GUARDED_BY(mutex_);
};

}  // namespace semshare::worker

#endif  // SEMSHARE_INFERENCE_WORKER_SERVICE_LOCAL_REFERENCE_CACHE_H_
