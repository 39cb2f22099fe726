#ifndef SEMSHARE_CACHE_NODE_LRU_BUDGET_H_
#define SEMSHARE_CACHE_NODE_LRU_BUDGET_H_

#include <cstdint>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"

namespace semshare::cache_node {

// Byte accounting and least-recently-used order over a node's references, in total and per
// tenant. Plain bookkeeping, not thread-safe: the node guards it.
class LruBudget {
 public:
  // tenant_capacity_bytes == 0: only the total budget applies.
  LruBudget(int64_t capacity_bytes, int64_t tenant_capacity_bytes);

  // Adds a reference as the most recently used one.
  void Add(uint64_t uid, const std::string& tenant, int64_t bytes);
  // Marks it the most recently used.
  void Touch(uint64_t uid);
  void Remove(uint64_t uid);

  // ResourceExhausted when `bytes` exceeds a budget on its own (it can never fit).
  // `tenant_budget` > 0: the tenant's own budget for this call (its API key's); the smaller of
  // it and the node's per-tenant budget applies.
  absl::Status CheckFits(int64_t bytes, int64_t tenant_budget = 0) const;
  // The references to evict, least recently used first, so that `incoming_bytes` more for
  // `tenant` fits both budgets. Call CheckFits first.
  std::vector<uint64_t> VictimsFor(const std::string& tenant, int64_t incoming_bytes,
                                   int64_t tenant_budget = 0) const;

  int64_t total_bytes() const { return total_bytes_; }
  int64_t tenant_bytes(const std::string& tenant) const;
  // The per-tenant budget that applies with `tenant_budget` (0: none beyond the node's).
  int64_t TenantCapacity(int64_t tenant_budget) const;

 private:
  struct Entry {
    std::string tenant;
    int64_t bytes = 0;
    uint64_t tick = 0;
  };
  using Order = std::set<std::pair<uint64_t, uint64_t>>;  // (tick, uid), oldest first

  const int64_t capacity_bytes_;
  const int64_t tenant_capacity_bytes_;
  uint64_t next_tick_ = 1;
  int64_t total_bytes_ = 0;
  absl::flat_hash_map<uint64_t, Entry> entries_;
  Order order_;
  absl::flat_hash_map<std::string, Order> tenant_order_;
  absl::flat_hash_map<std::string, int64_t> tenant_bytes_;
};

}  // namespace semshare::cache_node

#endif  // SEMSHARE_CACHE_NODE_LRU_BUDGET_H_
