#ifndef SEMSHARE_ROUTER_REFERENCE_CHOICE_H_
#define SEMSHARE_ROUTER_REFERENCE_CHOICE_H_

#include <cstdint>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "cache_node/cache_node.h"  // FindResult, Match: plain structs, nothing to link
#include "common/token_mapping.h"

// Step 3 of the method across shards: the router fans FindSimilar out to every shard and
// takes the best reference at or above the similarity threshold. A shard that failed, timed
// out or answered garbage is left out (DESIGN.md: a dead shard costs a miss, never an error).
namespace semshare::router {

// One shard's answer to FindSimilar for one target.
struct ShardFindReply {
  std::string shard;                              // its address, reported back on a hit
  absl::StatusOr<cache_node::FindResult> result;  // an error: failed or timed out
};

// A hit: which reference, where it lives, and the mapping to fetch its KV with.
struct ReferenceChoice {
  size_t reply_index = 0;  // into the replies
  std::string shard;
  std::string reference_id;
  double similarity = 0;
  int64_t reference_tokens = 0;
  TokenMapping mapping;  // the shard's best_mapping, source[i] < reference_tokens
};

struct ReferenceSearch {
  std::optional<ReferenceChoice> choice;  // empty = miss
  double best_similarity = 0;             // best seen from healthy shards, even below the threshold
  int32_t shards_answered = 0;
  int32_t shards_failed = 0;   // error replies
  int32_t shards_garbage = 0;  // replies that broke the FindResult contract (ignored)
};

// The threshold for one request: its override when set, else the configured default.
// InvalidArgument (naming the source) unless it is in [0, 1].
absl::StatusOr<double> EffectiveThreshold(std::optional<double> request_threshold,
                                          double configured_default);

// The best reply at or above `threshold`. Each shard offers its first (best) match; ties in
// similarity go to the smaller reference_id, then the smaller shard address, so the choice
// never depends on reply order. A reply is garbage (and skipped) when a similarity is not in
// [0, 1], matches are not best first, the mapping's similarity or size disagrees with its
// match and `target_tokens`, or a mapped index falls outside the reference.
ReferenceSearch ChooseReference(absl::Span<const ShardFindReply> replies, int64_t target_tokens,
                                double threshold);

}  // namespace semshare::router

#endif  // SEMSHARE_ROUTER_REFERENCE_CHOICE_H_
