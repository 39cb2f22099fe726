#ifndef SEMSHARE_INFERENCE_WORKER_SERVICE_REFERENCE_SOURCE_H_
#define SEMSHARE_INFERENCE_WORKER_SERVICE_REFERENCE_SOURCE_H_

#include <functional>
#include <string>

#include "absl/status/status.h"
#include "absl/types/span.h"
#include "cache_node/cache_node.h"

namespace semshare::worker {

// The worker's transport to the shards: fetch a reference's KV gathered into target order,
// store a new reference. Each call names the shard (a cache node address) the router chose.
class ReferenceSource {
 public:
  virtual ~ReferenceSource() = default;

  // As CacheNode::FetchKV with every target token in every layer.
  virtual absl::Status FetchKV(
      const std::string& shard, const cache_node::ReferenceScope& scope,
      const std::string& reference_id, absl::Span<const int32_t> source,
      const std::function<absl::Status(cache_node::FetchedLayer)>& sink) = 0;
  virtual absl::Status Put(const std::string& shard, const cache_node::ReferenceScope& scope,
                           cache_node::NewReference reference) = 0;
};

}  // namespace semshare::worker

#endif  // SEMSHARE_INFERENCE_WORKER_SERVICE_REFERENCE_SOURCE_H_
