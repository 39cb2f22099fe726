#include "inference_worker/service/cache_node_reference_source.h"

#include <utility>

#include "common/status_macros.h"

namespace semshare::worker {

absl::StatusOr<cache_node::CacheNodeClient*> CacheNodeReferenceSource::Client(
    const std::string& shard) {
  if (shard.empty()) return absl::InvalidArgumentError("no shard address");
  absl::MutexLock lock(&mutex_);
  auto it = clients_.find(shard);
  if (it != clients_.end()) return it->second.get();
  SEMSHARE_ASSIGN_OR_RETURN(std::unique_ptr<cache_node::CacheNodeClient> client,
                            cache_node::CacheNodeClient::Create(shard, token_, options_));
  return clients_.emplace(shard, std::move(client)).first->second.get();
}

absl::Status CacheNodeReferenceSource::FetchKV(
    const std::string& shard, const cache_node::ReferenceScope& scope,
    const std::string& reference_id, absl::Span<const int32_t> source,
    const std::function<absl::Status(cache_node::FetchedLayer)>& sink) {
  SEMSHARE_ASSIGN_OR_RETURN(cache_node::CacheNodeClient * client, Client(shard));
  return client->FetchKV(scope, reference_id, source, {}, sink);
}

absl::Status CacheNodeReferenceSource::Put(const std::string& shard,
                                           const cache_node::ReferenceScope& scope,
                                           cache_node::NewReference reference) {
  SEMSHARE_ASSIGN_OR_RETURN(cache_node::CacheNodeClient * client, Client(shard));
  return client->Put(scope, std::move(reference));
}

}  // namespace semshare::worker
