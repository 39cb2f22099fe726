#ifndef SEMSHARE_CACHE_NODE_REFERENCE_STORE_H_
#define SEMSHARE_CACHE_NODE_REFERENCE_STORE_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "cache_node/cache_node.h"
#include "cache_node/reference_key.h"
#include "common/tensor_blob.h"
#include "common/token_mapping.h"

namespace semshare::cache_node {

// What the node keeps in memory about a reference (the `meta` column family), kept apart
// from its codes and its KV so open never reads KV.
struct ReferenceMeta {
  int64_t num_tokens = 0;
  int32_t num_layers = 0;
  DType dtype = DType::kFloat32;
  int64_t kv_heads = 0;
  int64_t head_dim = 0;
  int64_t bytes = 0;  // everything stored for it, keys included
  int64_t created_unix_ms = 0;
  int64_t last_used_unix_ms = 0;
};

// The scoring side of a reference (the `codes` column family).
struct ReferenceCodes {
  TokenCodes codes;
  std::vector<float> sketch;
};

struct StoredReference {
  ReferenceScope scope;
  std::string reference_id;
  ReferenceMeta meta;
  ReferenceCodes codes;
};

// A stored reference to remove: its key and the layer count from its meta (-1 when the meta
// is unreadable, to remove by key range instead).
struct StoredReferenceKey {
  std::string reference_key;
  int32_t num_layers = -1;
};

// Durable storage of references. Implementations translate their own errors into
// absl::Status: DataLoss for anything that fails a checksum.
class ReferenceStore {
 public:
  virtual ~ReferenceStore() = default;

  // Writes everything of one reference and removes `replaced` (the references evicted to make
  // room for it), all in one atomic write: if it fails, nothing was removed. Keys come from
  // reference_key.h; meta.bytes should be StoredReferenceBytes of the same arguments.
  virtual absl::Status Put(const std::string& reference_key, const ReferenceMeta& meta,
                           const ReferenceCodes& codes, absl::Span<const int32_t> token_ids,
                           const std::vector<LayerKV>& layers,
                           absl::Span<const StoredReferenceKey> replaced) = 0;
  // Removes everything of one reference atomically. `num_layers` comes from its meta; pass
  // -1 when the meta is unreadable to remove by key range instead.
  virtual absl::Status Delete(const std::string& reference_key, int32_t num_layers) = 0;
  // Rewrites the meta of existing references (last use), in one batch, without fsync: a lost
  // update only makes eviction order after a crash slightly older.
  virtual absl::Status UpdateMeta(
      const std::vector<std::pair<std::string, ReferenceMeta>>& reference_keys_and_meta) = 0;
  // Reads one KV blob into `buffer` (reused between calls) and verifies its checksum; the
  // view points into `buffer`. NotFound when absent, DataLoss when corrupt.
  virtual absl::StatusOr<TensorBlobView> ReadKv(const std::string& reference_key, int32_t layer,
                                                KvPart part, std::string* buffer) = 0;
  // Every reference's meta and codes (never KV), in key order. A record that cannot be
  // decoded is passed to `on_corrupt` with its reference key instead.
  virtual absl::Status Scan(const std::function<void(StoredReference)>& on_reference,
                            const std::function<void(const std::string& reference_key,
                                                     const absl::Status& why)>& on_corrupt) = 0;
  // Makes everything written so far durable (WAL synced, memtables flushed).
  virtual absl::Status Flush() = 0;
};

struct RocksReferenceStoreOptions {
  std::string path;
  bool sync_writes = false;
  // KV values at least this large live in blob files rather than in the LSM tree.
  uint64_t min_blob_size = 4096;
};

// The RocksDB implementation: column families `meta`, `codes`, `kv` (blob files), WAL on.
absl::StatusOr<std::unique_ptr<ReferenceStore>> OpenRocksReferenceStore(
    const RocksReferenceStoreOptions& options);

// OpenCacheNode over a store already open (tests wrap the RocksDB store to inject failures).
// options.data_dir is not opened again; the rest of options applies.
absl::StatusOr<std::unique_ptr<CacheNode>> OpenCacheNodeOnStore(
    const CacheNodeOptions& options, std::unique_ptr<ReferenceStore> store);

// What a reference occupies in storage: every key and value it writes.
int64_t StoredReferenceBytes(const std::string& reference_key, const ReferenceCodes& codes,
                             size_t num_token_ids, const std::vector<LayerKV>& layers);

// Encodings of the `meta` and `codes` values (each ends in a CRC32C), exposed for tests.
std::string EncodeReferenceMeta(const ReferenceMeta& meta);
absl::StatusOr<ReferenceMeta> DecodeReferenceMeta(absl::string_view bytes);
std::string EncodeReferenceCodes(const ReferenceCodes& codes);
absl::StatusOr<ReferenceCodes> DecodeReferenceCodes(absl::string_view bytes);

}  // namespace semshare::cache_node

#endif  // SEMSHARE_CACHE_NODE_REFERENCE_STORE_H_
