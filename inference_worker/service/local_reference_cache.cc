#include "inference_worker/service/local_reference_cache.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <map>

namespace semshare::worker {
namespace {

// The distinct reference positions among `row_positions`, each row's KV once.
std::shared_ptr<const LocalReference> HoldRows(const KVCache& rows,
                                               const std::vector<int32_t>& row_positions) {
  std::map<int32_t, int64_t> first_row;
  for (size_t r = 0; r < row_positions.size(); ++r)
    first_row.emplace(row_positions[r], static_cast<int64_t>(r));
  auto held = std::make_shared<LocalReference>();
  std::vector<int64_t> index;
  std::vector<int64_t> positions;
  for (const auto& [position, row] : first_row) {
    held->positions.push_back(position);
    positions.push_back(position);
    index.push_back(row);
  }
  const at::Tensor index_tensor = at::tensor(index, at::kLong);
  const at::Tensor position_tensor = at::tensor(positions, at::kLong);
  for (const LayerKV& layer : rows.layers) {
    const at::Device device = layer.k().device();
    held->kv.layers.emplace_back(layer.k().index_select(1, index_tensor.to(device)),
                                 layer.v().index_select(1, index_tensor.to(device)),
                                 position_tensor.to(device));
    held->bytes += held->kv.layers.back().bytes();
  }
  return held;
}

// `held` extended by `rows`.
std::shared_ptr<const LocalReference> MergeRows(const LocalReference* held, const KVCache& rows,
                                                const std::vector<int32_t>& row_positions) {
  if (held == nullptr) return HoldRows(rows, row_positions);
  KVCache both;
  for (size_t l = 0; l < rows.layers.size(); ++l) {
    const LayerKV& a = held->kv.layers[l];
    const LayerKV& b = rows.layers[l];
    both.layers.emplace_back(at::cat({a.k(), b.k()}, 1), at::cat({a.v(), b.v()}, 1),
                             at::cat({a.positions(), b.positions()}, 0));
  }
  std::vector<int32_t> positions = held->positions;
  positions.insert(positions.end(), row_positions.begin(), row_positions.end());
  return HoldRows(both, positions);
}

}  // namespace

std::optional<KVCache> LocalReferenceCache::Gather(const LocalReferenceKey& key,
                                                   const std::vector<int32_t>& source) {
  std::shared_ptr<const LocalReference> held;
  {
    absl::MutexLock lock(&mutex_);
    held = entries_.Get(key).value_or(nullptr);
  }
  if (held == nullptr) return std::nullopt;
  std::vector<int64_t> index;
  index.reserve(source.size());
  for (int32_t s : source) {
    auto it = std::lower_bound(held->positions.begin(), held->positions.end(), s);
    if (it == held->positions.end() || *it != s) return std::nullopt;
    index.push_back(it - held->positions.begin());
  }
  const at::Tensor index_tensor = at::tensor(index, at::kLong);
  const at::Tensor positions =
      at::tensor(std::vector<int64_t>(source.begin(), source.end()), at::kLong);
  KVCache gathered;
  for (const LayerKV& layer : held->kv.layers) {
    const at::Device device = layer.k().device();
    gathered.layers.emplace_back(layer.k().index_select(1, index_tensor.to(device)),
                                 layer.v().index_select(1, index_tensor.to(device)),
                                 positions.to(device));
  }
  return gathered;
}

void LocalReferenceCache::Add(const LocalReferenceKey& key, const KVCache& rows,
                              const std::vector<int32_t>& row_positions) {
  std::shared_ptr<const LocalReference> held;
  {
    absl::MutexLock lock(&mutex_);
    held = entries_.Get(key).value_or(nullptr);
  }
  std::shared_ptr<const LocalReference> merged = MergeRows(held.get(), rows, row_positions);
  absl::MutexLock lock(&mutex_);
  entries_.Put(key, merged, merged->bytes);
}

std::vector<std::string> LocalReferenceCache::ReferenceIds() const {
  absl::MutexLock lock(&mutex_);
  std::vector<std::string> ids;
  for (const LocalReferenceKey& key : entries_.Keys()) ids.push_back(key.reference_id);
  return ids;
}

int64_t LocalReferenceCache::bytes() const {
  absl::MutexLock lock(&mutex_);
  return entries_.bytes();
}

int64_t LocalReferenceCache::size() const {
  absl::MutexLock lock(&mutex_);
  return static_cast<int64_t>(entries_.size());
}

}  // namespace semshare::worker
