#ifndef SEMSHARE_ROUTER_RENDEZVOUS_H_
#define SEMSHARE_ROUTER_RENDEZVOUS_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"

// Placement of new references on shards by rendezvous (highest-random-weight) hashing: each
// shard scores a (tenant, reference_id) key and the highest score owns it. Adding or removing
// a shard moves only the keys that shard wins or owned; every router computes the same
// placement from the shard addresses alone (common/hash.h is stable across processes).
namespace semshare::router {

struct ShardView {
  std::string address;
  bool up = true;
};

// The score of one shard for one key: FNV-1a over the length-prefixed parts, then a 64-bit
// finaliser so nearby keys spread evenly.
uint64_t RendezvousWeight(absl::string_view shard_address, absl::string_view tenant,
                          absl::string_view reference_id);

// Indices of `shards` from the highest weight to the lowest (ties by address, then index),
// whether up or not: the preference order of this key.
std::vector<size_t> RankShards(absl::Span<const ShardView> shards, absl::string_view tenant,
                               absl::string_view reference_id);

// The highest-ranked shard that is up. Unavailable when no shard is up (a miss is then
// served without storing a reference).
absl::StatusOr<size_t> PlaceReference(absl::Span<const ShardView> shards, absl::string_view tenant,
                                      absl::string_view reference_id);

}  // namespace semshare::router

#endif  // SEMSHARE_ROUTER_RENDEZVOUS_H_
