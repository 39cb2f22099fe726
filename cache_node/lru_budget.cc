#include "cache_node/lru_budget.h"

#include <algorithm>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"

namespace semshare::cache_node {

LruBudget::LruBudget(int64_t capacity_bytes, int64_t tenant_capacity_bytes)
    : capacity_bytes_(capacity_bytes), tenant_capacity_bytes_(tenant_capacity_bytes) {}

void LruBudget::Add(uint64_t uid, const std::string& tenant, int64_t bytes) {
  Remove(uid);
  const uint64_t tick = next_tick_++;
  entries_[uid] = Entry{tenant, bytes, tick};
  order_.emplace(tick, uid);
  tenant_order_[tenant].emplace(tick, uid);
  tenant_bytes_[tenant] += bytes;
  total_bytes_ += bytes;
}

void LruBudget::Touch(uint64_t uid) {
  auto it = entries_.find(uid);
  if (it == entries_.end()) return;
  Entry& e = it->second;
  order_.erase({e.tick, uid});
  tenant_order_[e.tenant].erase({e.tick, uid});
  e.tick = next_tick_++;
  order_.emplace(e.tick, uid);
  tenant_order_[e.tenant].emplace(e.tick, uid);
}

void LruBudget::Remove(uint64_t uid) {
  auto it = entries_.find(uid);
  if (it == entries_.end()) return;
  const Entry& e = it->second;
  order_.erase({e.tick, uid});
  auto tenant = tenant_order_.find(e.tenant);
  tenant->second.erase({e.tick, uid});
  if (tenant->second.empty()) tenant_order_.erase(tenant);
  if ((tenant_bytes_[e.tenant] -= e.bytes) == 0) tenant_bytes_.erase(e.tenant);
  total_bytes_ -= e.bytes;
  entries_.erase(it);
}

int64_t LruBudget::TenantCapacity(int64_t tenant_budget) const {
  if (tenant_budget <= 0) return tenant_capacity_bytes_;
  if (tenant_capacity_bytes_ <= 0) return tenant_budget;
  return std::min(tenant_budget, tenant_capacity_bytes_);
}

absl::Status LruBudget::CheckFits(int64_t bytes, int64_t tenant_budget) const {
  if (bytes > capacity_bytes_) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "reference of ", bytes, " bytes exceeds the node's capacity of ", capacity_bytes_));
  }
  const int64_t tenant_capacity = TenantCapacity(tenant_budget);
  if (tenant_capacity > 0 && bytes > tenant_capacity) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "reference of ", bytes, " bytes exceeds the tenant capacity of ", tenant_capacity));
  }
  return absl::OkStatus();
}

int64_t LruBudget::tenant_bytes(const std::string& tenant) const {
  auto it = tenant_bytes_.find(tenant);
  return it == tenant_bytes_.end() ? 0 : it->second;
}

std::vector<uint64_t> LruBudget::VictimsFor(const std::string& tenant, int64_t incoming_bytes,
                                            int64_t tenant_budget) const {
  std::vector<uint64_t> victims;
  absl::flat_hash_set<uint64_t> chosen;
  int64_t tenant_freed = 0;
  int64_t total_freed = 0;
  const int64_t tenant_capacity = TenantCapacity(tenant_budget);
  // The tenant's own budget first: only its references count against it.
  if (tenant_capacity > 0) {
    auto order = tenant_order_.find(tenant);
    if (order != tenant_order_.end()) {
      for (auto it = order->second.begin();
           it != order->second.end() &&
           tenant_bytes(tenant) - tenant_freed + incoming_bytes > tenant_capacity;
           ++it) {
        const int64_t bytes = entries_.at(it->second).bytes;
        victims.push_back(it->second);
        chosen.insert(it->second);
        tenant_freed += bytes;
        total_freed += bytes;
      }
    }
  }
  for (auto it = order_.begin();
       it != order_.end() && total_bytes_ - total_freed + incoming_bytes > capacity_bytes_; ++it) {
    if (chosen.contains(it->second)) continue;
    victims.push_back(it->second);
    total_freed += entries_.at(it->second).bytes;
  }
  return victims;
}

}  // namespace semshare::cache_node
