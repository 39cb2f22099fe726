#ifndef SEMSHARE_INFERENCE_WORKER_SERVICE_CACHE_NODE_REFERENCE_SOURCE_H_
#define SEMSHARE_INFERENCE_WORKER_SERVICE_CACHE_NODE_REFERENCE_SOURCE_H_

#include <memory>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"
#include "cache_node/rpc/cache_node_client.h"
#include "common/cluster_auth.h"
#include "inference_worker/service/reference_source.h"

namespace semshare::worker {

// The real source: one CacheNodeClient per shard address, made on first use. Thread-safe.
class CacheNodeReferenceSource final : public ReferenceSource {
 public:
  CacheNodeReferenceSource(ClusterToken token, cache_node::CacheNodeClient::Options options)
      : token_(std::move(token)), options_(options) {}

  absl::Status FetchKV(const std::string& shard, const cache_node::ReferenceScope& scope,
                       const std::string& reference_id, absl::Span<const int32_t> source,
                       const std::function<absl::Status(cache_node::FetchedLayer)>& sink) override;
  absl::Status Put(const std::string& shard, const cache_node::ReferenceScope& scope,
                   cache_node::NewReference reference) override;

 private:
  absl::StatusOr<cache_node::CacheNodeClient*> Client(const std::string& shard);

  const ClusterToken token_;
  const cache_node::CacheNodeClient::Options options_;
  absl::Mutex mutex_;
  absl::flat_hash_map<std::string, std::unique_ptr<cache_node::CacheNodeClient>> clients_
      ABSL_GUARDED_BY(mutex_);
};

}  // namespace semshare::worker

#endif  // SEMSHARE_INFERENCE_WORKER_SERVICE_CACHE_NODE_REFERENCE_SOURCE_H_
