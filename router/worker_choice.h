#ifndef SEMSHARE_ROUTER_WORKER_CHOICE_H_
#define SEMSHARE_ROUTER_WORKER_CHOICE_H_

#include <cstdint>
#include <optional>
#include <string>

#include "absl/container/flat_hash_set.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"

// Which inference worker serves a request (DESIGN.md, "The cluster"): one that already holds
// the reference in its local cache needs no KV transfer, so it goes first; otherwise the least
// loaded.
namespace semshare::router {

// Workers cache references per tenant; ids are unique only within a tenant.
std::string CachedReferenceKey(absl::string_view tenant, absl::string_view reference_id);

// What the router knows of one worker.
struct WorkerView {
  std::string address;
  bool up = true;
  int32_t in_flight = 0;  // requests the router has outstanding there
  int32_t capacity = 1;   // requests it runs at once (its max batch); <= 0 = unusable
  // The share of its KV budget its admitted requests hold, as it last reported (0..1).
  double kv_reserved_share = 0;
  absl::flat_hash_set<std::string> cached_references;  // CachedReferenceKey, as it reports
};

struct WorkerRequest {
  std::string tenant;
  std::optional<std::string> reference_id;  // set on a hit
  absl::Span<const size_t> exclude;         // indices already tried for this request
};

struct WorkerChoice {
  size_t index = 0;
  bool holds_reference = false;
};

// Candidates are the workers that are up, have capacity > 0 and are not excluded. On a hit,
// a holder of the reference with a free slot (in_flight < capacity) is chosen first, the least
// loaded of them; a saturated holder would queue, so then the least loaded of all candidates
// (a holder still wins a tie). Load is the KV share reserved plus in_flight / capacity: the
// worker's memory as it last reported, and the router's own calls since, which the report
// may not count yet (a burst spreads instead of piling onto the last idle report). Remaining
// ties go to the smaller address, then index. Unavailable when there is no candidate.
absl::StatusOr<WorkerChoice> ChooseWorker(absl::Span<const WorkerView> workers,
                                          const WorkerRequest& request);

}  // namespace semshare::router

#endif  // SEMSHARE_ROUTER_WORKER_CHOICE_H_
