#include "router/rendezvous.h"

#include <algorithm>
#include <numeric>
#include <tuple>

#include "absl/status/status.h"
#include "common/hash.h"

namespace semshare::router {
namespace {

// SplitMix64's finaliser: FNV-1a alone leaves the last bytes poorly mixed into high bits.
uint64_t Mix(uint64_t x) {
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

}  // namespace

uint64_t RendezvousWeight(absl::string_view shard_address, absl::string_view tenant,
                          absl::string_view reference_id) {
  StableHasher hasher;
  // Length prefixes keep ("ab", "c") and ("a", "bc") apart.
  for (absl::string_view part : {shard_address, tenant, reference_id}) {
    hasher.UpdateU64(part.size());
    hasher.Update(part);
  }
  return Mix(hasher.Digest());
}

std::vector<size_t> RankShards(absl::Span<const ShardView> shards, absl::string_view tenant,
                               absl::string_view reference_id) {
  std::vector<uint64_t> weights(shards.size());
  for (size_t i = 0; i < shards.size(); ++i) {
    weights[i] = RendezvousWeight(shards[i].address, tenant, reference_id);
  }
  std::vector<size_t> order(shards.size());
  std::iota(order.begin(), order.end(), size_t{0});
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    return std::make_tuple(~weights[a], absl::string_view(shards[a].address), a) <
           std::make_tuple(~weights[b], absl::string_view(shards[b].address), b);
  });
  return order;
}

absl::StatusOr<size_t> PlaceReference(absl::Span<const ShardView> shards, absl::string_view tenant,
                                      absl::string_view reference_id) {
  for (size_t index : RankShards(shards, tenant, reference_id)) {
    if (shards[index].up) return index;
  }
  return absl::UnavailableError(shards.empty() ? "no shards configured" : "every shard is down");
}

}  // namespace semshare::router
