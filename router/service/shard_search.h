#ifndef SEMSHARE_ROUTER_SERVICE_SHARD_SEARCH_H_
#define SEMSHARE_ROUTER_SERVICE_SHARD_SEARCH_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "cache_node/rpc/cache_node_client.h"
#include "common/cluster_auth.h"
#include "router/backoff.h"
#include "router/reference_choice.h"
#include "router/rendezvous.h"

// The router's side of the shards: FindSimilar fanned out to every shard at once under one
// deadline. A shard that is backing off is not called; one that fails or runs out of time is
// a failed reply (ChooseReference leaves it out) and is marked down in the health tracker.
namespace semshare::router {

struct ShardSearchOptions {
  absl::Duration deadline = absl::Milliseconds(500);  // of each FindSimilar
  int32_t top_k = 1;

  absl::Status Validate() const;
};

// Thread-safe.
class ShardSearch {
 public:
  // `health` must outlive the search. InvalidArgument for no shards or a repeated address.
  static absl::StatusOr<std::unique_ptr<ShardSearch>> Create(std::vector<std::string> shards,
                                                             const ClusterToken& token,
                                                             const ShardSearchOptions& options,
                                                             EndpointHealth* health);

  // One reply per shard, in the order of the shard addresses.
  std::vector<ShardFindReply> FindSimilar(const cache_node::ReferenceScope& scope,
                                          const TokenCodes& target,
                                          absl::Span<const float> sketch) const;

  // The shards and whether each is up now, for placement.
  std::vector<ShardView> Views() const;

  // Each shard's GetStats for `tenant` (its references and bytes there), asked at once of the
  // shards that are up, in the order of the shard addresses; a shard down or failing is an error.
  std::vector<absl::StatusOr<v1::GetStatsResponse>> TenantStats(const std::string& tenant) const;

 private:
  ShardSearch(std::vector<std::string> shards,
              std::vector<std::unique_ptr<cache_node::CacheNodeClient>> clients,
              const ShardSearchOptions& options, EndpointHealth* health)
      : shards_(std::move(shards)),
        clients_(std::move(clients)),
        options_(options),
        health_(health) {}

  const std::vector<std::string> shards_;
  const std::vector<std::unique_ptr<cache_node::CacheNodeClient>> clients_;
  const ShardSearchOptions options_;
  EndpointHealth* const health_;
};

}  // namespace semshare::router

#endif  // SEMSHARE_ROUTER_SERVICE_SHARD_SEARCH_H_
