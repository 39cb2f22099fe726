#include "cache_node/cache_node.h"

#include <algorithm>
#include <map>
#include <numeric>
#include <thread>
#include <tuple>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "cache_node/kv_gather.h"
#include "cache_node/lru_budget.h"
#include "cache_node/reference_index.h"
#include "cache_node/reference_key.h"
#include "cache_node/reference_store.h"
#include "cache_node/request_checks.h"
#include "common/file_util.h"
#include "common/status_macros.h"

namespace semshare::cache_node {
namespace {

int64_t NowUnixMs() { return absl::ToUnixMillis(absl::Now()); }

enum class Removal { kDeleted, kEvicted, kCorrupt };

class CacheNodeImpl final : public CacheNode {
 public:
  CacheNodeImpl(const CacheNodeOptions& options, std::unique_ptr<ReferenceStore> store)
      : options_(options),
        store_(std::move(store)),
        budget_(options.capacity_bytes, options.tenant_capacity_bytes) {}

  // Rebuilds the in-memory state from the store: metadata, codes and sketches, never KV.
  absl::Status Load() {
    std::vector<StoredReference> stored;
    std::vector<std::string> corrupt;
    SEMSHARE_RETURN_IF_ERROR(
        store_->Scan([&](StoredReference r) { stored.push_back(std::move(r)); },
                     [&](const std::string& key, const absl::Status&) { corrupt.push_back(key); }));
    for (const std::string& key : corrupt) SEMSHARE_RETURN_IF_ERROR(store_->Delete(key, -1));
    // Least recently used first, so the budget's order continues where it stopped.
    std::sort(stored.begin(), stored.end(), [](const StoredReference& a, const StoredReference& b) {
      return std::tie(a.meta.last_used_unix_ms, a.meta.created_unix_ms) <
             std::tie(b.meta.last_used_unix_ms, b.meta.created_unix_ms);
    });
    std::map<std::string, std::vector<IndexedReference>> by_scope;
    absl::MutexLock write(&write_mu_);
    absl::MutexLock lock(&mu_);
    corrupt_removed_ += static_cast<int64_t>(corrupt.size());
    for (StoredReference& r : stored) {
      const std::string scope_key = ScopePrefix(r.scope);
      const ModelLayout layout = ModelLayout::Of(r.meta, r.codes);
      auto [scope, created] = scopes_.try_emplace(scope_key);
      if (created) {
        scope->second.layout = layout;
      } else if (!CheckSameLayout(scope->second.layout, layout).ok()) {
        // Cannot happen through Put; a record that disagrees with its model is not trusted.
        SEMSHARE_RETURN_IF_ERROR(store_->Delete(ReferenceKey(r.scope, r.reference_id), -1));
        ++corrupt_removed_;
        continue;
      }
      const uint64_t uid = next_uid_++;
      AddEntryLocked(uid, r.scope, r.reference_id, r.meta);
      by_scope[scope_key].push_back(IndexedReference{uid, r.reference_id, std::move(r.codes.codes),
                                                     std::move(r.codes.sketch)});
    }
    for (auto& [scope_key, references] : by_scope) {
      ScopeState& scope = scopes_[scope_key];
      SEMSHARE_ASSIGN_OR_RETURN(scope.index, CreateIndex(scope.layout));
      SEMSHARE_RETURN_IF_ERROR(scope.index->Add(std::move(references)));
    }
    // The budget may have shrunk since the last run.
    const std::vector<uint64_t> victims = budget_.VictimsFor("", 0);
    return RemoveLocked(victims, Removal::kEvicted);
  }

  absl::Status Put(const ReferenceScope& scope, NewReference reference) override {
    SEMSHARE_RETURN_IF_ERROR(CheckScope(scope));
    SEMSHARE_ASSIGN_OR_RETURN(const ModelLayout layout, CheckNewReference(reference));
    const std::string key = ReferenceKey(scope, reference.reference_id);
    const std::string scope_key = ScopePrefix(scope);
    ReferenceCodes codes{std::move(reference.codes), std::move(reference.sketch)};
    ReferenceMeta meta;
    meta.num_tokens = static_cast<int64_t>(reference.token_ids.size());
    meta.num_layers = layout.num_layers;
    meta.dtype = layout.dtype;
    meta.kv_heads = layout.kv_heads;
    meta.head_dim = layout.head_dim;
    meta.bytes = StoredReferenceBytes(key, codes, reference.token_ids.size(), reference.layers);
    meta.created_unix_ms = meta.last_used_unix_ms = NowUnixMs();

    absl::MutexLock write(&write_mu_);
    // Victims stay valid until the write below: removals all hold write_mu_.
    std::vector<uint64_t> victims;
    std::vector<StoredReferenceKey> evicted;
    {
      absl::MutexLock lock(&mu_);
      if (uid_by_key_.count(key) > 0) {
        return absl::AlreadyExistsError(
            absl::StrCat("reference '", reference.reference_id, "' already exists"));
      }
      if (auto it = scopes_.find(scope_key); it != scopes_.end()) {
        SEMSHARE_RETURN_IF_ERROR(CheckSameLayout(it->second.layout, layout));
      }
      SEMSHARE_RETURN_IF_ERROR(budget_.CheckFits(meta.bytes, reference.tenant_byte_budget));
      victims = budget_.VictimsFor(scope.tenant, meta.bytes, reference.tenant_byte_budget);
      for (uint64_t uid : victims) {
        auto it = entries_.find(uid);
        if (it != entries_.end()) {
          evicted.push_back({it->second.reference_key, it->second.meta.num_layers});
        }
      }
    }
    SEMSHARE_RETURN_IF_ERROR(PersistLastUse());
    // The evictions and the new reference are one write, so the stored bytes never exceed the
    // budgets and a failed write (a full disk, say) evicts nothing.
    SEMSHARE_RETURN_IF_ERROR(
        store_->Put(key, meta, codes, reference.token_ids, reference.layers, evicted));

    absl::MutexLock lock(&mu_);
    if (absl::Status forgot = ForgetLocked(victims, Removal::kEvicted); !forgot.ok()) {
      return UndoPutLocked(key, meta, scope_key, forgot);
    }
    ScopeState& state = scopes_[scope_key];
    if (state.index == nullptr) {
      state.layout = layout;
      absl::StatusOr<std::unique_ptr<ReferenceIndex>> index = CreateIndex(layout);
      if (!index.ok()) return UndoPutLocked(key, meta, scope_key, index.status());
      state.index = std::move(*index);
    }
    const uint64_t uid = next_uid_++;
    absl::Status added = state.index->Add({IndexedReference{
        uid, reference.reference_id, std::move(codes.codes), std::move(codes.sketch)}});
    if (!added.ok()) return UndoPutLocked(key, meta, scope_key, added);
    AddEntryLocked(uid, scope, reference.reference_id, meta);
    return absl::OkStatus();
  }

  absl::StatusOr<FindResult> FindSimilar(const ReferenceScope& scope, const TokenCodes& target,
                                         absl::Span<const float> sketch, int32_t top_k) override {
    SEMSHARE_RETURN_IF_ERROR(CheckScope(scope));
    SEMSHARE_RETURN_IF_ERROR(CheckTokenCodes(target, "target"));
    if (top_k <= 0) return absl::InvalidArgumentError(absl::StrCat("top_k = ", top_k, " <= 0"));
    if (sketch.empty()) return absl::InvalidArgumentError("empty sketch");
    std::shared_ptr<const ReferenceIndex> index;
    {
      absl::ReaderMutexLock lock(&mu_);
      auto it = scopes_.find(ScopePrefix(scope));
      if (it == scopes_.end() || it->second.index == nullptr) return FindResult{};  // a miss
      index = it->second.index;
    }
    // The search holds only the index's reader lock: finds run concurrently, and a put or
    // delete waits for it (and it for them) only on that one index.
    SEMSHARE_ASSIGN_OR_RETURN(IndexSearchResult found,
                              index->Search(target, sketch, top_k, options_.candidates));
    FindResult result;
    if (found.matches.empty()) return result;
    for (ScoredReference& m : found.matches) {
      result.matches.push_back(Match{std::move(m.reference_id), m.similarity, m.num_tokens});
    }
    result.best_mapping = std::move(found.best_mapping);
    absl::MutexLock lock(&mu_);
    TouchLocked(found.matches[0].uid);
    return result;
  }

  absl::Status FetchKV(const ReferenceScope& scope, const std::string& reference_id,
                       absl::Span<const int32_t> source,
                       const std::vector<std::vector<int32_t>>& token_subsets,
                       const std::function<absl::Status(FetchedLayer)>& sink) override {
    SEMSHARE_RETURN_IF_ERROR(CheckScope(scope));
    const std::string key = ReferenceKey(scope, reference_id);
    uint64_t uid = 0;
    ReferenceMeta meta;
    {
      absl::MutexLock lock(&mu_);
      auto it = uid_by_key_.find(key);
      if (it == uid_by_key_.end()) {
        return absl::NotFoundError(absl::StrCat("no reference '", reference_id, "'"));
      }
      uid = it->second;
      meta = entries_.at(uid).meta;
      TouchLocked(uid);
    }
    SEMSHARE_RETURN_IF_ERROR(CheckFetch(source, meta.num_tokens, meta.num_layers, token_subsets));

    std::vector<int32_t> all_targets;
    if (token_subsets.empty()) {
      all_targets.resize(source.size());
      std::iota(all_targets.begin(), all_targets.end(), 0);
    }
    const std::vector<int64_t> stored_shape = {meta.kv_heads, meta.num_tokens, meta.head_dim};
    // Double-buffered: layer l + 1 is read and checksummed on a helper thread while layer l
    // is gathered and handed to the sink. The buffers are reused, so after the first two
    // layers reads allocate nothing.
    struct LayerRead {
      std::string key_buffer;
      std::string value_buffer;
      absl::StatusOr<TensorBlobView> key = absl::UnknownError("not read");
      absl::StatusOr<TensorBlobView> value = absl::UnknownError("not read");
    };
    LayerRead reads[2];
    const auto read_layer = [&](int32_t l, LayerRead* read) {
      read->key = store_->ReadKv(key, l, KvPart::kKey, &read->key_buffer);
      read->value = store_->ReadKv(key, l, KvPart::kValue, &read->value_buffer);
    };
    read_layer(0, &reads[0]);
    for (int32_t l = 0; l < meta.num_layers; ++l) {
      std::thread prefetch;
      if (l + 1 < meta.num_layers) prefetch = std::thread(read_layer, l + 1, &reads[(l + 1) % 2]);
      absl::StatusOr<FetchedLayer> layer =
          GatherLayer(l, reads[l % 2].key, reads[l % 2].value, stored_shape, meta.dtype,
                      token_subsets.empty() ? all_targets : token_subsets[l], source);
      // The sink's own errors (a client gone) are returned as they are.
      if (!layer.ok()) {
        if (prefetch.joinable()) prefetch.join();
        return FailFetch(uid, reference_id, l, layer.status());
      }
      absl::Status delivered = sink(*std::move(layer));
      if (prefetch.joinable()) prefetch.join();
      if (!delivered.ok()) return delivered;
    }
    return absl::OkStatus();
  }

  absl::Status Delete(const ReferenceScope& scope, const std::string& reference_id) override {
    SEMSHARE_RETURN_IF_ERROR(CheckScope(scope));
    absl::MutexLock write(&write_mu_);
    absl::MutexLock lock(&mu_);
    auto it = uid_by_key_.find(ReferenceKey(scope, reference_id));
    if (it == uid_by_key_.end()) {
      return absl::NotFoundError(absl::StrCat("no reference '", reference_id, "'"));
    }
    return RemoveLocked({it->second}, Removal::kDeleted);
  }

  absl::StatusOr<std::vector<ReferenceInfo>> List(const ReferenceScope& scope) override {
    SEMSHARE_RETURN_IF_ERROR(CheckScope(scope));
    const std::string prefix = ScopePrefix(scope);
    std::vector<ReferenceInfo> infos;
    absl::ReaderMutexLock lock(&mu_);
    // Keys are length-prefixed: everything under this prefix is this scope's, nothing else.
    for (auto it = uid_by_key_.lower_bound(prefix);
         it != uid_by_key_.end() && absl::StartsWith(it->first, prefix); ++it) {
      const Entry& e = entries_.at(it->second);
      infos.push_back(ReferenceInfo{e.reference_id, e.meta.num_tokens, e.meta.num_layers,
                                    e.meta.bytes, e.meta.created_unix_ms,
                                    e.meta.last_used_unix_ms});
    }
    return infos;
  }

  NodeStats Stats() override {
    absl::ReaderMutexLock lock(&mu_);
    NodeStats stats;
    stats.references = static_cast<int64_t>(entries_.size());
    stats.bytes = budget_.total_bytes();
    stats.capacity_bytes = options_.capacity_bytes;
    stats.corrupt_blobs_removed = corrupt_removed_;
    stats.tenants = tenant_stats_;
    for (const auto& [tenant, t] : tenant_stats_) {
      stats.evicted_references += t.evicted_references;
      stats.deleted_references += t.deleted_references;
    }
    return stats;
  }

  absl::Status Flush() override {
    absl::MutexLock write(&write_mu_);
    SEMSHARE_RETURN_IF_ERROR(PersistLastUse());
    return store_->Flush();
  }

 private:
  // Gathers one layer's blobs into target order. DataLoss for a blob that failed its
  // checksum or disagrees with the reference's metadata.
  static absl::StatusOr<FetchedLayer> GatherLayer(int32_t l,
                                                  const absl::StatusOr<TensorBlobView>& key,
                                                  const absl::StatusOr<TensorBlobView>& value,
                                                  const std::vector<int64_t>& stored_shape,
                                                  DType dtype, const std::vector<int32_t>& targets,
                                                  absl::Span<const int32_t> source) {
    for (const absl::StatusOr<TensorBlobView>* blob : {&key, &value}) {
      if (!blob->ok()) return blob->status();
      if ((*blob)->shape != stored_shape || (*blob)->dtype != dtype) {
        return absl::DataLossError("KV blob shape or dtype disagrees with its metadata");
      }
    }
    FetchedLayer layer;
    layer.layer = l;
    layer.target_tokens = targets;
    layer.source_positions.reserve(targets.size());
    for (int32_t t : targets) layer.source_positions.push_back(source[t]);
    layer.kv.key = GatherTokenRows(*key, layer.source_positions);
    layer.kv.value = GatherTokenRows(*value, layer.source_positions);
    return layer;
  }

  struct Entry {
    std::string reference_key;
    std::string scope_key;
    std::string tenant;
    std::string reference_id;
    ReferenceMeta meta;
  };
  struct ScopeState {
    ModelLayout layout;
    std::shared_ptr<ReferenceIndex> index;  // null only while being created
    int64_t references = 0;
  };

  absl::StatusOr<std::unique_ptr<ReferenceIndex>> CreateIndex(const ModelLayout& layout) const {
    ReferenceIndexOptions index_options;
    index_options.sketch_dim = layout.sketch_dim;
    index_options.code_bits = layout.code_bits;
    index_options.mapping = options_.mapping;
    return ReferenceIndex::Create(index_options);
  }

  void AddEntryLocked(uint64_t uid, const ReferenceScope& scope, const std::string& id,
                      const ReferenceMeta& meta) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    Entry entry{ReferenceKey(scope, id), ScopePrefix(scope), scope.tenant, id, meta};
    uid_by_key_[entry.reference_key] = uid;
    ++scopes_[entry.scope_key].references;
    TenantStats& t = tenant_stats_[scope.tenant];
    ++t.references;
    t.bytes += meta.bytes;
    budget_.Add(uid, scope.tenant, meta.bytes);
    entries_.emplace(uid, std::move(entry));
  }

  // After a failed index add, takes back the reference just written.
  absl::Status UndoPutLocked(const std::string& key, const ReferenceMeta& meta,
                             const std::string& scope_key, const absl::Status& why)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (scopes_[scope_key].references == 0) scopes_.erase(scope_key);
    absl::Status undone = store_->Delete(key, meta.num_layers);
    return undone.ok() ? why : undone;
  }

  void TouchLocked(uint64_t uid) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    auto it = entries_.find(uid);
    if (it == entries_.end()) return;
    budget_.Touch(uid);
    it->second.meta.last_used_unix_ms = NowUnixMs();
    last_use_dirty_.insert(uid);
  }

  // Writes last-use times touched since the previous call. Under write_mu_, so no reference
  // being written here can be deleted meanwhile (which would resurrect its meta).
  absl::Status PersistLastUse() ABSL_EXCLUSIVE_LOCKS_REQUIRED(write_mu_) {
    std::vector<std::pair<std::string, ReferenceMeta>> updates;
    {
      absl::MutexLock lock(&mu_);
      for (uint64_t uid : last_use_dirty_) {
        auto it = entries_.find(uid);
        if (it != entries_.end()) updates.emplace_back(it->second.reference_key, it->second.meta);
      }
      last_use_dirty_.clear();
    }
    return store_->UpdateMeta(updates);
  }

  // Removes references from disk, then from index and accounting. Stops at the first failed
  // delete; the references removed before it are forgotten all the same.
  absl::Status RemoveLocked(const std::vector<uint64_t>& uids, Removal why)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(write_mu_, mu_) {
    std::vector<uint64_t> removed;
    absl::Status deleted;
    for (uint64_t uid : uids) {
      auto it = entries_.find(uid);
      if (it == entries_.end()) continue;
      deleted = store_->Delete(it->second.reference_key, it->second.meta.num_layers);
      if (!deleted.ok()) break;
      removed.push_back(uid);
    }
    absl::Status forgot = ForgetLocked(removed, why);
    return deleted.ok() ? forgot : deleted;
  }

  // Drops references already removed from the store from index and accounting.
  absl::Status ForgetLocked(const std::vector<uint64_t>& uids, Removal why)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(write_mu_, mu_) {
    absl::flat_hash_map<std::string, std::vector<uint64_t>> by_scope;
    for (uint64_t uid : uids) {
      auto it = entries_.find(uid);
      if (it == entries_.end()) continue;
      const Entry& e = it->second;
      by_scope[e.scope_key].push_back(uid);
      TenantStats& t = tenant_stats_[e.tenant];
      --t.references;
      t.bytes -= e.meta.bytes;
      if (why == Removal::kEvicted) {
        ++t.evicted_references;
        t.evicted_bytes += e.meta.bytes;
      } else if (why == Removal::kDeleted) {
        ++t.deleted_references;
      } else {
        ++corrupt_removed_;
      }
      budget_.Remove(uid);
      last_use_dirty_.erase(uid);
      uid_by_key_.erase(e.reference_key);
      entries_.erase(it);
    }
    for (auto& [scope_key, scope_uids] : by_scope) {
      ScopeState& scope = scopes_.at(scope_key);
      SEMSHARE_RETURN_IF_ERROR(scope.index->Remove(scope_uids));
      scope.references -= static_cast<int64_t>(scope_uids.size());
      // An empty scope forgets its layout: the next reference of the model defines it anew.
      if (scope.references == 0) scopes_.erase(scope_key);
    }
    return absl::OkStatus();
  }

  // A KV read failed: a corrupt reference is removed (a miss from now on, never wrong data).
  absl::Status FailFetch(uint64_t uid, const std::string& reference_id, int32_t layer,
                         const absl::Status& status) {
    if (status.code() != absl::StatusCode::kDataLoss) return status;
    absl::MutexLock write(&write_mu_);
    absl::MutexLock lock(&mu_);
    absl::Status removed = RemoveLocked({uid}, Removal::kCorrupt);
    if (!removed.ok()) return removed;
    return absl::DataLossError(absl::StrCat("reference '", reference_id, "' layer ", layer,
                                            " is corrupt and was removed: ", status.message()));
  }

  const CacheNodeOptions options_;
  const std::unique_ptr<ReferenceStore> store_;

  // Serialises everything that writes to the store (put, delete, eviction, last-use), so
  // the in-memory view and the store change together. Taken before mu_.
  absl::Mutex write_mu_ ABSL_ACQUIRED_BEFORE(mu_);
  // Guards the in-memory view; held briefly, never across a search or a KV read.
  absl::Mutex mu_;
  uint64_t next_uid_ ABSL_GUARDED_BY(mu_) = 1;
  absl::flat_hash_map<uint64_t, Entry> entries_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, uint64_t> uid_by_key_ ABSL_GUARDED_BY(mu_);  // ordered for List
  absl::flat_hash_map<std::string, ScopeState> scopes_ ABSL_GUARDED_BY(mu_);
  LruBudget budget_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, TenantStats> tenant_stats_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_set<uint64_t> last_use_dirty_ ABSL_GUARDED_BY(mu_);
  int64_t corrupt_removed_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace

absl::Status CacheNodeOptions::Validate() const {
  if (data_dir.empty()) return absl::InvalidArgumentError("cache node: data_dir is required");
  if (capacity_bytes <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("cache node: capacity_bytes must be > 0 (got ", capacity_bytes, ")"));
  }
  if (tenant_capacity_bytes < 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "cache node: tenant_capacity_bytes must be >= 0 (got ", tenant_capacity_bytes, ")"));
  }
  if (candidates <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("cache node: candidates must be > 0 (got ", candidates, ")"));
  }
  return mapping.Validate();
}

absl::StatusOr<std::unique_ptr<CacheNode>> OpenCacheNode(const CacheNodeOptions& options) {
  SEMSHARE_RETURN_IF_ERROR(options.Validate());
  SEMSHARE_RETURN_IF_ERROR(MakeDirectories(options.data_dir));
  RocksReferenceStoreOptions store_options;
  store_options.path = options.data_dir;
  store_options.sync_writes = options.sync_writes;
  SEMSHARE_ASSIGN_OR_RETURN(std::unique_ptr<ReferenceStore> store,
                            OpenRocksReferenceStore(store_options));
  return OpenCacheNodeOnStore(options, std::move(store));
}

absl::StatusOr<std::unique_ptr<CacheNode>> OpenCacheNodeOnStore(
    const CacheNodeOptions& options, std::unique_ptr<ReferenceStore> store) {
  SEMSHARE_RETURN_IF_ERROR(options.Validate());
  auto node = std::make_unique<CacheNodeImpl>(options, std::move(store));
  SEMSHARE_RETURN_IF_ERROR(node->Load());
  return std::unique_ptr<CacheNode>(std::move(node));
}

}  // namespace semshare::cache_node
