#include "cache_node/reference_store.h"

#include <cmath>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "rocksdb/db.h"
#include "rocksdb/options.h"
#include "rocksdb/slice.h"
#include "rocksdb/write_batch.h"

namespace semshare::cache_node {
namespace {

constexpr uint8_t kMetaVersion = 1;
constexpr uint8_t kCodesVersion = 1;
constexpr char kMetaFamily[] = "meta";
constexpr char kCodesFamily[] = "codes";
constexpr char kKvFamily[] = "kv";

// --- value codecs ----------------------------------------------------------------------------

class Writer {
 public:
  void U8(uint8_t v) { out_.push_back(static_cast<char>(v)); }
  void U32(uint32_t v) { Raw(&v, 4); }
  void U64(uint64_t v) { Raw(&v, 8); }
  void Raw(const void* p, size_t n) { out_.append(static_cast<const char*>(p), n); }
  std::string Finish() {
    U32(Crc32c(out_));
    return std::move(out_);
  }

 private:
  std::string out_;
};

class Reader {
 public:
  explicit Reader(absl::string_view in) : in_(in) {}
  // Checks and strips the trailing CRC32C.
  absl::Status Verify(absl::string_view what) {
    if (in_.size() < 4) return absl::DataLossError(absl::StrCat(what, " record truncated"));
    uint32_t stored;
    std::memcpy(&stored, in_.data() + in_.size() - 4, 4);
    in_.remove_suffix(4);
    if (Crc32c(in_) != stored)
      return absl::DataLossError(absl::StrCat(what, " record checksum mismatch"));
    return absl::OkStatus();
  }
  bool U8(uint8_t* v) { return Raw(v, 1); }
  bool U32(uint32_t* v) { return Raw(v, 4); }
  bool U64(uint64_t* v) { return Raw(v, 8); }
  bool Raw(void* p, size_t n) {
    if (in_.size() < n) return false;
    std::memcpy(p, in_.data(), n);
    in_.remove_prefix(n);
    return true;
  }
  bool done() const { return in_.empty(); }

 private:
  absl::string_view in_;
};

std::string EncodeTokenIds(absl::Span<const int32_t> token_ids) {
  Writer w;
  w.Raw(token_ids.data(), token_ids.size() * sizeof(int32_t));
  return w.Finish();
}

// --- RocksDB adapter -------------------------------------------------------------------------

absl::Status FromRocks(const rocksdb::Status& s, absl::string_view what) {
  if (s.ok()) return absl::OkStatus();
  const std::string message = absl::StrCat(what, ": ", s.ToString());
  if (s.IsNotFound()) return absl::NotFoundError(message);
  if (s.IsCorruption()) return absl::DataLossError(message);
  if (s.IsInvalidArgument()) return absl::InvalidArgumentError(message);
  if (s.IsNoSpace()) return absl::ResourceExhaustedError(message);
  if (s.IsIOError() || s.IsBusy() || s.IsTimedOut() || s.IsTryAgain()) {
    return absl::UnavailableError(message);
  }
  return absl::InternalError(message);
}

class RocksReferenceStore final : public ReferenceStore {
 public:
  RocksReferenceStore(const RocksReferenceStoreOptions& options, rocksdb::DB* db,
                      std::vector<rocksdb::ColumnFamilyHandle*> handles)
      : options_(options), db_(db), handles_(std::move(handles)) {
    write_options_.sync = options.sync_writes;
  }

  ~RocksReferenceStore() override {
    for (rocksdb::ColumnFamilyHandle* h : handles_) db_->DestroyColumnFamilyHandle(h);
    db_->Close().PermitUncheckedError();
    delete db_;
  }

  absl::Status Put(const std::string& key, const ReferenceMeta& meta, const ReferenceCodes& codes,
                   absl::Span<const int32_t> token_ids, const std::vector<LayerKV>& layers,
                   absl::Span<const StoredReferenceKey> replaced) override {
    rocksdb::WriteBatch batch;
    for (const StoredReferenceKey& old : replaced) {
      SEMSHARE_RETURN_IF_ERROR(AddDelete(old.reference_key, old.num_layers, &batch));
    }
    SEMSHARE_RETURN_IF_ERROR(
        FromRocks(batch.Put(codes_cf(), key, EncodeReferenceCodes(codes)), "batch"));
    SEMSHARE_RETURN_IF_ERROR(
        FromRocks(batch.Put(kv_cf(), TokenIdsKey(key), EncodeTokenIds(token_ids)), "batch"));
    for (size_t l = 0; l < layers.size(); ++l) {
      for (KvPart part : {KvPart::kKey, KvPart::kValue}) {
        const TensorBlob& blob = part == KvPart::kKey ? layers[l].key : layers[l].value;
        const std::string kv_key = KvKey(key, static_cast<int32_t>(l), part);
        // Framed in place: the payload is copied once, into the batch.
        const TensorBlobFraming framing = FrameTensorBlob(blob);
        const rocksdb::Slice key_slice(kv_key);
        const rocksdb::Slice parts[3] = {framing.header, blob.data, framing.trailer};
        SEMSHARE_RETURN_IF_ERROR(FromRocks(
            batch.Put(kv_cf(), rocksdb::SliceParts(&key_slice, 1), rocksdb::SliceParts(parts, 3)),
            "batch"));
      }
    }
    SEMSHARE_RETURN_IF_ERROR(
        FromRocks(batch.Put(meta_cf(), key, EncodeReferenceMeta(meta)), "batch"));
    return FromRocks(db_->Write(write_options_, &batch), "write reference");
  }

  absl::Status Delete(const std::string& key, int32_t num_layers) override {
    rocksdb::WriteBatch batch;
    SEMSHARE_RETURN_IF_ERROR(AddDelete(key, num_layers, &batch));
    return FromRocks(db_->Write(write_options_, &batch), "delete reference");
  }

  absl::Status UpdateMeta(
      const std::vector<std::pair<std::string, ReferenceMeta>>& updates) override {
    if (updates.empty()) return absl::OkStatus();
    rocksdb::WriteBatch batch;
    for (const auto& [key, meta] : updates) {
      SEMSHARE_RETURN_IF_ERROR(
          FromRocks(batch.Put(meta_cf(), key, EncodeReferenceMeta(meta)), "batch"));
    }
    return FromRocks(db_->Write(rocksdb::WriteOptions(), &batch), "update meta");
  }

  absl::StatusOr<TensorBlobView> ReadKv(const std::string& reference_key, int32_t layer,
                                        KvPart part, std::string* buffer) override {
    rocksdb::ReadOptions read;
    // The blob carries its own CRC32C over every byte, checked below: RocksDB's own blob
    // checksum would read the same bytes a second time.
    read.verify_checksums = false;
    read.fill_cache = false;
    SEMSHARE_RETURN_IF_ERROR(
        FromRocks(db_->Get(read, kv_cf(), KvKey(reference_key, layer, part), buffer), "read kv"));
    return DecodeTensorBlobView(*buffer);
  }

  absl::Status Scan(
      const std::function<void(StoredReference)>& on_reference,
      const std::function<void(const std::string&, const absl::Status&)>& on_corrupt) override {
    rocksdb::ReadOptions read;
    read.fill_cache = false;
    read.readahead_size = 4 << 20;
    std::unique_ptr<rocksdb::Iterator> metas(db_->NewIterator(read, meta_cf()));
    std::unique_ptr<rocksdb::Iterator> codes(db_->NewIterator(read, codes_cf()));
    metas->SeekToFirst();
    codes->SeekToFirst();
    // Both families hold the same keys (written in one batch); walk them in step.
    while (metas->Valid() || codes->Valid()) {
      const int order = !metas->Valid()   ? 1
                        : !codes->Valid() ? -1
                                          : metas->key().compare(codes->key());
      if (order != 0) {
        rocksdb::Iterator* lone = order < 0 ? metas.get() : codes.get();
        on_corrupt(lone->key().ToString(),
                   absl::DataLossError(order < 0 ? "meta without codes" : "codes without meta"));
        lone->Next();
        continue;
      }
      const std::string key = metas->key().ToString();
      absl::StatusOr<DecodedReferenceKey> decoded = DecodeReferenceKey(key);
      absl::StatusOr<ReferenceMeta> meta = DecodeReferenceMeta(ToView(metas->value()));
      absl::StatusOr<ReferenceCodes> decoded_codes = DecodeReferenceCodes(ToView(codes->value()));
      if (!decoded.ok() || !meta.ok() || !decoded_codes.ok()) {
        on_corrupt(key, !decoded.ok() ? decoded.status()
                        : !meta.ok()  ? meta.status()
                                      : decoded_codes.status());
      } else {
        on_reference(StoredReference{std::move(decoded->scope), std::move(decoded->reference_id),
                                     *meta, std::move(*decoded_codes)});
      }
      metas->Next();
      codes->Next();
    }
    SEMSHARE_RETURN_IF_ERROR(FromRocks(metas->status(), "scan meta"));
    return FromRocks(codes->status(), "scan codes");
  }

  absl::Status Flush() override {
    SEMSHARE_RETURN_IF_ERROR(FromRocks(db_->FlushWAL(/*sync=*/true), "flush wal"));
    return FromRocks(db_->Flush(rocksdb::FlushOptions(), handles_), "flush memtables");
  }

 private:
  static absl::string_view ToView(const rocksdb::Slice& s) { return {s.data(), s.size()}; }

  // Adds the removal of everything of one reference to `batch`.
  absl::Status AddDelete(const std::string& key, int32_t num_layers, rocksdb::WriteBatch* batch) {
    SEMSHARE_RETURN_IF_ERROR(FromRocks(batch->Delete(meta_cf(), key), "batch"));
    SEMSHARE_RETURN_IF_ERROR(FromRocks(batch->Delete(codes_cf(), key), "batch"));
    return DeleteKv(key, num_layers, batch);
  }

  // Point deletes when the layer count is known; otherwise one range over the reference key
  // (length-prefixed, so the range holds this reference's records and nothing else).
  absl::Status DeleteKv(const std::string& key, int32_t num_layers, rocksdb::WriteBatch* batch) {
    if (num_layers < 0) {
      return FromRocks(batch->DeleteRange(kv_cf(), key, key + std::string(6, '\xff')), "batch");
    }
    SEMSHARE_RETURN_IF_ERROR(FromRocks(batch->Delete(kv_cf(), TokenIdsKey(key)), "batch"));
    for (int32_t l = 0; l < num_layers; ++l) {
      for (KvPart part : {KvPart::kKey, KvPart::kValue}) {
        SEMSHARE_RETURN_IF_ERROR(FromRocks(batch->Delete(kv_cf(), KvKey(key, l, part)), "batch"));
      }
    }
    return absl::OkStatus();
  }

  rocksdb::ColumnFamilyHandle* meta_cf() const { return handles_[1]; }
  rocksdb::ColumnFamilyHandle* codes_cf() const { return handles_[2]; }
  rocksdb::ColumnFamilyHandle* kv_cf() const { return handles_[3]; }

  const RocksReferenceStoreOptions options_;
  rocksdb::DB* const db_;
  const std::vector<rocksdb::ColumnFamilyHandle*> handles_;  // default, meta, codes, kv
  rocksdb::WriteOptions write_options_;
};

}  // namespace

int64_t StoredReferenceBytes(const std::string& reference_key, const ReferenceCodes& codes,
                             size_t num_token_ids, const std::vector<LayerKV>& layers) {
  const int64_t key = static_cast<int64_t>(reference_key.size());
  int64_t bytes = 2 * key + static_cast<int64_t>(EncodeReferenceMeta(ReferenceMeta()).size());
  // codes: version, nbits, word count, words, sketch count, sketch, crc
  bytes += key + 1 + 4 + 8 + 8 * static_cast<int64_t>(codes.codes.words.size()) + 8 +
           4 * static_cast<int64_t>(codes.sketch.size()) + 4;
  bytes += static_cast<int64_t>(TokenIdsKey(reference_key).size()) +
           4 * static_cast<int64_t>(num_token_ids) + 4;
  const int64_t kv_key = static_cast<int64_t>(KvKey(reference_key, 0, KvPart::kKey).size());
  for (const LayerKV& layer : layers) {
    for (const TensorBlob* blob : {&layer.key, &layer.value}) {
      bytes += kv_key + EncodedTensorBlobSize(static_cast<int64_t>(blob->shape.size()),
                                              static_cast<int64_t>(blob->data.size()));
    }
  }
  return bytes;
}

std::string EncodeReferenceMeta(const ReferenceMeta& meta) {
  Writer w;
  w.U8(kMetaVersion);
  w.U64(meta.num_tokens);
  w.U32(meta.num_layers);
  w.U8(static_cast<uint8_t>(meta.dtype));
  w.U64(meta.kv_heads);
  w.U64(meta.head_dim);
  w.U64(meta.bytes);
  w.U64(meta.created_unix_ms);
  w.U64(meta.last_used_unix_ms);
  return w.Finish();
}

absl::StatusOr<ReferenceMeta> DecodeReferenceMeta(absl::string_view bytes) {
  Reader r(bytes);
  SEMSHARE_RETURN_IF_ERROR(r.Verify("meta"));
  uint8_t version = 0, dtype = 0;
  uint32_t layers = 0;
  uint64_t tokens = 0, heads = 0, dim = 0, size = 0, created = 0, used = 0;
  if (!r.U8(&version) || version != kMetaVersion || !r.U64(&tokens) || !r.U32(&layers) ||
      !r.U8(&dtype) || !r.U64(&heads) || !r.U64(&dim) || !r.U64(&size) || !r.U64(&created) ||
      !r.U64(&used) || !r.done() || dtype < 1 || dtype > 3) {
    return absl::DataLossError("malformed meta record");
  }
  ReferenceMeta meta;
  meta.num_tokens = static_cast<int64_t>(tokens);
  meta.num_layers = static_cast<int32_t>(layers);
  meta.dtype = static_cast<DType>(dtype);
  meta.kv_heads = static_cast<int64_t>(heads);
  meta.head_dim = static_cast<int64_t>(dim);
  meta.bytes = static_cast<int64_t>(size);
  meta.created_unix_ms = static_cast<int64_t>(created);
  meta.last_used_unix_ms = static_cast<int64_t>(used);
  return meta;
}

std::string EncodeReferenceCodes(const ReferenceCodes& codes) {
  Writer w;
  w.U8(kCodesVersion);
  w.U32(static_cast<uint32_t>(codes.codes.nbits));
  w.U64(codes.codes.words.size());
  w.Raw(codes.codes.words.data(), codes.codes.words.size() * sizeof(uint64_t));
  w.U64(codes.sketch.size());
  w.Raw(codes.sketch.data(), codes.sketch.size() * sizeof(float));
  return w.Finish();
}

absl::StatusOr<ReferenceCodes> DecodeReferenceCodes(absl::string_view bytes) {
  Reader r(bytes);
  SEMSHARE_RETURN_IF_ERROR(r.Verify("codes"));
  uint8_t version = 0;
  uint32_t nbits = 0;
  uint64_t words = 0, sketch = 0;
  ReferenceCodes codes;
  if (!r.U8(&version) || version != kCodesVersion || !r.U32(&nbits) || !r.U64(&words) ||
      words > bytes.size() / 8) {
    return absl::DataLossError("malformed codes record");
  }
  codes.codes.nbits = static_cast<int32_t>(nbits);
  codes.codes.words.resize(words);
  if (!r.Raw(codes.codes.words.data(), words * 8) || !r.U64(&sketch) || sketch > bytes.size() / 4) {
    return absl::DataLossError("malformed codes record");
  }
  codes.sketch.resize(sketch);
  if (!r.Raw(codes.sketch.data(), sketch * 4) || !r.done()) {
    return absl::DataLossError("malformed codes record");
  }
  return codes;
}

absl::StatusOr<std::unique_ptr<ReferenceStore>> OpenRocksReferenceStore(
    const RocksReferenceStoreOptions& options) {
  rocksdb::DBOptions db_options;
  db_options.create_if_missing = true;
  db_options.create_missing_column_families = true;
  db_options.max_background_jobs = 2;

  rocksdb::ColumnFamilyOptions meta_options;
  rocksdb::ColumnFamilyOptions codes_options;
  codes_options.compression = rocksdb::kNoCompression;  // random bits and floats
  rocksdb::ColumnFamilyOptions kv_options;
  kv_options.compression = rocksdb::kNoCompression;
  kv_options.enable_blob_files = true;
  kv_options.min_blob_size = options.min_blob_size;
  kv_options.blob_compression_type = rocksdb::kNoCompression;
  // Deleted and evicted KV is reclaimed from blob files by compaction.
  kv_options.enable_blob_garbage_collection = true;
  kv_options.blob_garbage_collection_age_cutoff = 0.5;

  const std::vector<rocksdb::ColumnFamilyDescriptor> families = {
      {rocksdb::kDefaultColumnFamilyName, rocksdb::ColumnFamilyOptions()},
      {kMetaFamily, meta_options},
      {kCodesFamily, codes_options},
      {kKvFamily, kv_options},
  };
  std::vector<rocksdb::ColumnFamilyHandle*> handles;
  rocksdb::DB* db = nullptr;
  SEMSHARE_RETURN_IF_ERROR(
      FromRocks(rocksdb::DB::Open(db_options, options.path, families, &handles, &db),
                absl::StrCat("open RocksDB at ", options.path)));
  return std::unique_ptr<ReferenceStore>(
      std::make_unique<RocksReferenceStore>(options, db, std::move(handles)));
}

}  // namespace semshare::cache_node
