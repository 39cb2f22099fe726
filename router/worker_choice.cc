#include "router/worker_choice.h"

#include <algorithm>
#include <tuple>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace semshare::router {
namespace {

double Load(const WorkerView& w) {
  return w.kv_reserved_share + static_cast<double>(w.in_flight) / w.capacity;
}

int CompareLoad(const WorkerView& a, const WorkerView& b) {
  const double left = Load(a);
  const double right = Load(b);
  return left < right ? -1 : (left > right ? 1 : 0);
}

}  // namespace

std::string CachedReferenceKey(absl::string_view tenant, absl::string_view reference_id) {
  // Length-prefixed: no (tenant, id) pair can spell another's key.
  return absl::StrCat(tenant.size(), ":", tenant, "/", reference_id);
}

absl::StatusOr<WorkerChoice> ChooseWorker(absl::Span<const WorkerView> workers,
                                          const WorkerRequest& request) {
  const std::string key = request.reference_id.has_value()
                              ? CachedReferenceKey(request.tenant, *request.reference_id)
                              : std::string();
  bool any_candidate = false;
  bool any_free_holder = false;
  std::vector<uint8_t> holds(workers.size(), 0);
  std::vector<uint8_t> candidate(workers.size(), 0);
  for (size_t i = 0; i < workers.size(); ++i) {
    const WorkerView& w = workers[i];
    if (!w.up || w.capacity <= 0 ||
        std::find(request.exclude.begin(), request.exclude.end(), i) != request.exclude.end()) {
      continue;
    }
    candidate[i] = 1;
    any_candidate = true;
    holds[i] = !key.empty() && w.cached_references.contains(key);
    if (holds[i] && w.in_flight < w.capacity) any_free_holder = true;
  }
  if (!any_candidate) {
    return absl::UnavailableError(workers.empty() ? "no workers configured"
                                                  : "no worker is up and untried");
  }
  size_t best = workers.size();
  for (size_t i = 0; i < workers.size(); ++i) {
    if (!candidate[i] || (any_free_holder && !holds[i])) continue;
    if (best == workers.size()) {
      best = i;
      continue;
    }
    const int load = CompareLoad(workers[i], workers[best]);
    // Less loaded, then a holder, then the smaller address, then the earlier index (kept).
    if (std::make_tuple(load, !holds[i], absl::string_view(workers[i].address)) <
        std::make_tuple(0, !holds[best], absl::string_view(workers[best].address))) {
      best = i;
    }
  }
  return WorkerChoice{best, holds[best] != 0};
}

}  // namespace semshare::router
