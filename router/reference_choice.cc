#include "router/reference_choice.h"

#include <cmath>
#include <tuple>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace semshare::router {
namespace {

bool IsSimilarity(double x) { return std::isfinite(x) && x >= 0 && x <= 1; }

// The FindResult contract (cache_node.h) as the router relies on it.
bool WellFormed(const cache_node::FindResult& result, int64_t target_tokens) {
  const auto& matches = result.matches;
  for (size_t i = 0; i < matches.size(); ++i) {
    if (!IsSimilarity(matches[i].similarity) || matches[i].reference_id.empty() ||
        matches[i].num_tokens <= 0) {
      return false;
    }
    if (i > 0 && matches[i].similarity > matches[i - 1].similarity) return false;
  }
  if (matches.empty()) return true;
  const TokenMapping& mapping = result.best_mapping;
  const size_t n = static_cast<size_t>(target_tokens);
  if (mapping.source.size() != n || mapping.distance.size() != n || mapping.unmatched.size() != n) {
    return false;
  }
  // The shard computed both from the same scan; a disagreement means a confused reply.
  if (std::abs(mapping.similarity - matches.front().similarity) > 1e-9) return false;
  for (int32_t j : mapping.source) {
    if (j < 0 || j >= matches.front().num_tokens) return false;
  }
  return true;
}

}  // namespace

absl::StatusOr<double> EffectiveThreshold(std::optional<double> request_threshold,
                                          double configured_default) {
  const double threshold = request_threshold.value_or(configured_default);
  if (!IsSimilarity(threshold)) {
    const char* source = request_threshold.has_value() ? "the request's similarity_threshold"
                                                       : "the configured similarity threshold";
    return absl::InvalidArgumentError(absl::StrCat(source, " ", threshold, " is not in [0, 1]"));
  }
  return threshold;
}

ReferenceSearch ChooseReference(absl::Span<const ShardFindReply> replies, int64_t target_tokens,
                                double threshold) {
  ReferenceSearch search;
  const ShardFindReply* best = nullptr;
  size_t best_index = 0;
  for (size_t i = 0; i < replies.size(); ++i) {
    const ShardFindReply& reply = replies[i];
    if (!reply.result.ok()) {
      ++search.shards_failed;
      continue;
    }
    if (!WellFormed(*reply.result, target_tokens)) {
      ++search.shards_garbage;
      continue;
    }
    ++search.shards_answered;
    if (reply.result->matches.empty()) continue;
    const cache_node::Match& match = reply.result->matches.front();
    if (match.similarity > search.best_similarity) search.best_similarity = match.similarity;
    if (match.similarity < threshold) continue;
    if (best != nullptr) {
      const cache_node::Match& current = best->result->matches.front();
      // Higher similarity first, then the smaller id and address: independent of reply order.
      if (std::make_tuple(-match.similarity, match.reference_id, reply.shard) >=
          std::make_tuple(-current.similarity, current.reference_id, best->shard)) {
        continue;
      }
    }
    best = &reply;
    best_index = i;
  }
  if (best != nullptr) {
    const cache_node::Match& match = best->result->matches.front();
    ReferenceChoice choice;
    choice.reply_index = best_index;
    choice.shard = best->shard;
    choice.reference_id = match.reference_id;
    choice.similarity = match.similarity;
    choice.reference_tokens = match.num_tokens;
    choice.mapping = best->result->best_mapping;
    search.choice = std::move(choice);
  }
  return search;
}

}  // namespace semshare::router
