#ifndef SEMSHARE_INFERENCE_WORKER_SERVICE_BYTE_LRU_H_
#define SEMSHARE_INFERENCE_WORKER_SERVICE_BYTE_LRU_H_

#include <cstdint>
#include <list>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"

namespace semshare::worker {

// Least-recently-used map bounded by the bytes its values declare. Not thread-safe: the
// owner locks. An entry larger than the whole budget is not kept.
template <typename K, typename V>
class ByteLru {
 public:
  explicit ByteLru(int64_t capacity_bytes) : capacity_bytes_(capacity_bytes) {}

  // Marks the entry most recently used.
  std::optional<V> Get(const K& key) {
    auto it = index_.find(key);
    if (it == index_.end()) return std::nullopt;
    entries_.splice(entries_.begin(), entries_, it->second);
    return it->second->value;
  }

  // Inserts or replaces, then evicts least recently used entries past the budget.
  void Put(const K& key, V value, int64_t bytes) {
    Erase(key);
    if (bytes > capacity_bytes_) return;
    entries_.push_front(Entry{key, std::move(value), bytes});
    index_[key] = entries_.begin();
    bytes_ += bytes;
    while (bytes_ > capacity_bytes_) {
      bytes_ -= entries_.back().bytes;
      index_.erase(entries_.back().key);
      entries_.pop_back();
    }
  }

  void Erase(const K& key) {
    auto it = index_.find(key);
    if (it == index_.end()) return;
    bytes_ -= it->second->bytes;
    entries_.erase(it->second);
    index_.erase(it);
  }

  // Most recently used first.
  std::vector<K> Keys() const {
    std::vector<K> keys;
    keys.reserve(entries_.size());
    for (const Entry& e : entries_) keys.push_back(e.key);
    return keys;
  }

  int64_t bytes() const { return bytes_; }
  size_t size() const { return entries_.size(); }

 private:
  struct Entry {
    K key;
    V value;
    int64_t bytes;
  };

  int64_t capacity_bytes_;
  int64_t bytes_ = 0;
  std::list<Entry> entries_;
  absl::flat_hash_map<K, typename std::list<Entry>::iterator> index_;
};

}  // namespace semshare::worker

#endif  // SEMSHARE_INFERENCE_WORKER_SERVICE_BYTE_LRU_H_
