#include "router/service/shard_search.h"

#include <thread>
#include <utility>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"

namespace semshare::router {

absl::Status ShardSearchOptions::Validate() const {
  if (deadline <= absl::ZeroDuration())
    return absl::InvalidArgumentError("search deadline must be positive");
  if (top_k < 1) return absl::InvalidArgumentError("top_k must be at least 1");
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<ShardSearch>> ShardSearch::Create(std::vector<std::string> shards,
                                                                 const ClusterToken& token,
                                                                 const ShardSearchOptions& options,
                                                                 EndpointHealth* health) {
  if (absl::Status valid = options.Validate(); !valid.ok()) return valid;
  if (shards.empty()) return absl::InvalidArgumentError("no shards given (--shards A,B,...)");
  absl::flat_hash_set<std::string> seen;
  std::vector<std::unique_ptr<cache_node::CacheNodeClient>> clients;
  cache_node::CacheNodeClient::Options client_options;
  client_options.timeout = options.deadline;
  for (const std::string& shard : shards) {
    if (!seen.insert(shard).second)
      return absl::InvalidArgumentError(absl::StrCat("shard ", shard, " is listed twice"));
    absl::StatusOr<std::unique_ptr<cache_node::CacheNodeClient>> client =
        cache_node::CacheNodeClient::Create(shard, token, client_options);
    if (!client.ok()) return client.status();
    clients.push_back(*std::move(client));
  }
  return std::unique_ptr<ShardSearch>(
      new ShardSearch(std::move(shards), std::move(clients), options, health));
}

std::vector<ShardFindReply> ShardSearch::FindSimilar(const cache_node::ReferenceScope& scope,
                                                     const TokenCodes& target,
                                                     absl::Span<const float> sketch) const {
  std::vector<ShardFindReply> replies(shards_.size());
  std::vector<std::thread> calls;
  for (size_t i = 0; i < shards_.size(); ++i) {
    replies[i].shard = shards_[i];
    if (!health_->Admit(shards_[i])) {
      replies[i].result =
          absl::UnavailableError(absl::StrCat("shard ", shards_[i], " is backing off"));
      continue;
    }
    calls.emplace_back([&, i] {
      replies[i].result = clients_[i]->FindSimilar(scope, target, sketch, options_.top_k);
      if (replies[i].result.ok()) {
        health_->RecordSuccess(shards_[i]);
      } else {
        health_->RecordFailure(shards_[i]);
      }
    });
  }
  for (std::thread& call : calls) call.join();
  return replies;
}

std::vector<absl::StatusOr<v1::GetStatsResponse>> ShardSearch::TenantStats(
    const std::string& tenant) const {
  std::vector<absl::StatusOr<v1::GetStatsResponse>> replies(shards_.size(),
                                                            absl::UnknownError("not asked"));
  std::vector<std::thread> calls;
  for (size_t i = 0; i < shards_.size(); ++i) {
    // Only shards the health tracker holds up are asked (without taking a probe from searches).
    if (!health_->IsUp(shards_[i])) {
      replies[i] = absl::UnavailableError(absl::StrCat("shard ", shards_[i], " is down"));
      continue;
    }
    calls.emplace_back([&, i] { replies[i] = clients_[i]->GetStats(tenant); });
  }
  for (std::thread& call : calls) call.join();
  return replies;
}

std::vector<ShardView> ShardSearch::Views() const {
  std::vector<ShardView> views;
  views.reserve(shards_.size());
  for (const std::string& shard : shards_) views.push_back(ShardView{shard, health_->IsUp(shard)});
  return views;
}

}  // namespace semshare::router
