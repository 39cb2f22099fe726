#include "cache_node/cache_node.h"

#include <atomic>
#include <cstdio>
#include <filesystem>
#include <random>
#include <thread>

#include "cache_node/reference_key.h"
#include "cache_node/reference_store.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "rocksdb/db.h"
#include "tests/cache_node/test_references.h"

namespace semshare::cache_node {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;

const ReferenceScope kTenantA{"tenant-a", "model-1"};
const ReferenceScope kTenantB{"tenant-b", "model-1"};

class CacheNodeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    options_.data_dir = FreshDir(::testing::UnitTest::GetInstance()->current_test_info()->name());
    options_.capacity_bytes = int64_t{1} << 30;
    Open();
  }

  void Open() {
    node_.reset();
    absl::StatusOr<std::unique_ptr<CacheNode>> node = OpenCacheNode(options_);
    ASSERT_TRUE(node.ok()) << node.status();
    node_ = std::move(*node);
  }

  // Fetches every layer, returning the status and what the sink received.
  absl::Status Fetch(const ReferenceScope& scope, const std::string& id,
                     const std::vector<int32_t>& source,
                     const std::vector<std::vector<int32_t>>& subsets,
                     std::vector<FetchedLayer>* layers) {
    return node_->FetchKV(scope, id, source, subsets, [&](FetchedLayer layer) {
      layers->push_back(std::move(layer));
      return absl::OkStatus();
    });
  }

  // Checks a fetch against the stored reference gathered by hand, bit for bit.
  void ExpectFetchMatches(const ReferenceScope& scope, const NewReference& ref,
                          const std::vector<int32_t>& source,
                          const std::vector<std::vector<int32_t>>& subsets = {}) {
    std::vector<FetchedLayer> layers;
    ASSERT_TRUE(Fetch(scope, ref.reference_id, source, subsets, &layers).ok());
    ASSERT_EQ(layers.size(), ref.layers.size());
    for (size_t l = 0; l < layers.size(); ++l) {
      std::vector<int32_t> targets;
      if (subsets.empty()) {
        for (size_t i = 0; i < source.size(); ++i) targets.push_back(static_cast<int32_t>(i));
      } else {
        targets = subsets[l];
      }
      std::vector<int32_t> rows;
      for (int32_t t : targets) rows.push_back(source[t]);
      EXPECT_EQ(layers[l].layer, static_cast<int32_t>(l));
      EXPECT_EQ(layers[l].target_tokens, targets);
      EXPECT_EQ(layers[l].source_positions, rows);
      const TensorBlob& key = layers[l].kv.key;
      EXPECT_EQ(key.dtype, ref.layers[l].key.dtype);
      EXPECT_THAT(key.shape,
                  ElementsAre(ref.layers[l].key.shape[0], static_cast<int64_t>(rows.size()),
                              ref.layers[l].key.shape[2]));
      EXPECT_TRUE(key.data == HandGather(ref.layers[l].key, rows)) << "layer " << l << " keys";
      EXPECT_TRUE(layers[l].kv.value.data == HandGather(ref.layers[l].value, rows))
          << "layer " << l << " values";
    }
  }

  std::vector<std::string> ListIds(const ReferenceScope& scope) {
    absl::StatusOr<std::vector<ReferenceInfo>> infos = node_->List(scope);
    EXPECT_TRUE(infos.ok()) << infos.status();
    std::vector<std::string> ids;
    if (infos.ok()) {
      for (const ReferenceInfo& info : *infos) ids.push_back(info.reference_id);
    }
    return ids;
  }

  CacheNodeOptions options_;
  std::unique_ptr<CacheNode> node_;
};

// A target that shares most tokens with `ref`, reordered and partly new: a realistic miss of
// an exact prefix match that the mapping still covers.
TokenCodes SimilarTarget(const TokenCodes& codes, uint64_t seed) {
  std::mt19937_64 rng(seed);
  TokenCodes target;
  target.nbits = codes.nbits;
  const int32_t words = codes.words_per_code();
  for (int64_t t = codes.size() - 1; t >= 0; t -= 1) {
    if (t % 5 == 0) {
      for (int32_t w = 0; w < words; ++w) target.words.push_back(rng());
    } else {
      target.words.insert(target.words.end(), codes.code(t), codes.code(t) + words);
    }
  }
  return target;
}

TEST(CacheNodeOptionsTest, ValidateRejectsBadConfig) {
  CacheNodeOptions options;
  EXPECT_EQ(options.Validate().code(), absl::StatusCode::kInvalidArgument);
  options.data_dir = "/tmp/x";
  EXPECT_EQ(options.Validate().code(), absl::StatusCode::kInvalidArgument);
  options.capacity_bytes = 1 << 20;
  EXPECT_TRUE(options.Validate().ok());
  options.candidates = 0;
  EXPECT_EQ(options.Validate().code(), absl::StatusCode::kInvalidArgument);
  options.candidates = 4;
  options.tenant_capacity_bytes = -1;
  EXPECT_EQ(options.Validate().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(OpenCacheNode(options).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(CacheNodeTest, PutFindFetchRoundTrip) {
  const ReferenceShape shape;
  const NewReference ref = MakeReference("r1", shape, 1);
  const NewReference other = MakeReference("r2", shape, 2);
  ASSERT_TRUE(node_->Put(kTenantA, ref).ok());
  ASSERT_TRUE(node_->Put(kTenantA, other).ok());

  const TokenCodes target = SimilarTarget(ref.codes, 3);
  absl::StatusOr<FindResult> found = node_->FindSimilar(kTenantA, target, ref.sketch, 2);
  ASSERT_TRUE(found.ok()) << found.status();
  ASSERT_EQ(found->matches.size(), 2u);
  EXPECT_EQ(found->matches[0].reference_id, "r1");
  EXPECT_EQ(found->matches[0].num_tokens, shape.tokens);
  EXPECT_EQ(found->matches[1].reference_id, "r2");
  // Exactly the engine's mapping.
  absl::StatusOr<TokenMapping> expected = MapTokens(target, ref.codes, MappingOptions{});
  ASSERT_TRUE(expected.ok());
  EXPECT_EQ(found->matches[0].similarity, expected->similarity);
  EXPECT_EQ(found->best_mapping.source, expected->source);
  EXPECT_EQ(found->best_mapping.distance, expected->distance);
  EXPECT_EQ(found->best_mapping.unmatched, expected->unmatched);

  ExpectFetchMatches(kTenantA, ref, found->best_mapping.source);

  absl::StatusOr<FindResult> top1 = node_->FindSimilar(kTenantA, ref.codes, ref.sketch, 1);
  ASSERT_TRUE(top1.ok());
  ASSERT_EQ(top1->matches.size(), 1u);
  EXPECT_EQ(top1->matches[0].similarity, 1.0);
}

TEST_F(CacheNodeTest, FetchesTokenSubsetsInTheBlobsDtype) {
  ReferenceShape shape;
  shape.dtype = DType::kBFloat16;
  shape.layers = 4;
  const NewReference ref = MakeReference("half", shape, 4);
  ASSERT_TRUE(node_->Put(kTenantA, ref).ok());
  std::vector<int32_t> source;
  for (int32_t i = 0; i < 25; ++i) source.push_back((i * 7) % shape.tokens);
  ExpectFetchMatches(kTenantA, ref, source, {{0, 1, 2}, {}, {24}, {3, 10, 11, 20}});
  ExpectFetchMatches(kTenantA, ref, source);
}

TEST_F(CacheNodeTest, ReopenFindsEverything) {
  const ReferenceShape shape;
  std::vector<NewReference> refs;
  for (int i = 0; i < 6; ++i) {
    refs.push_back(MakeReference("r" + std::to_string(i), shape, 10 + i));
    ASSERT_TRUE(node_->Put(i % 2 ? kTenantA : kTenantB, refs.back()).ok());
  }
  const NodeStats before = node_->Stats();
  ASSERT_TRUE(node_->Flush().ok());
  Open();
  const NodeStats after = node_->Stats();
  EXPECT_EQ(after.references, 6);
  EXPECT_EQ(after.bytes, before.bytes);
  EXPECT_EQ(after.tenants.at("tenant-a").bytes, before.tenants.at("tenant-a").bytes);
  EXPECT_THAT(ListIds(kTenantA), ElementsAre("r1", "r3", "r5"));
  EXPECT_THAT(ListIds(kTenantB), ElementsAre("r0", "r2", "r4"));
  for (int i = 0; i < 6; ++i) {
    const ReferenceScope& scope = i % 2 ? kTenantA : kTenantB;
    absl::StatusOr<FindResult> found = node_->FindSimilar(scope, refs[i].codes, refs[i].sketch, 1);
    ASSERT_TRUE(found.ok());
    ASSERT_EQ(found->matches.size(), 1u);
    EXPECT_EQ(found->matches[0].reference_id, refs[i].reference_id);
    ExpectFetchMatches(scope, refs[i], found->best_mapping.source);
  }
}

TEST_F(CacheNodeTest, WithoutFlushAcknowledgedPutsSurviveReopen) {
  const NewReference ref = MakeReference("r", ReferenceShape(), 5);
  ASSERT_TRUE(node_->Put(kTenantA, ref).ok());
  Open();  // no Flush: the WAL carries it
  EXPECT_THAT(ListIds(kTenantA), ElementsAre("r"));
  std::vector<int32_t> identity(ref.token_ids.size());
  for (size_t i = 0; i < identity.size(); ++i) identity[i] = static_cast<int32_t>(i);
  ExpectFetchMatches(kTenantA, ref, identity);
}

TEST_F(CacheNodeTest, TenantsAreIsolated) {
  const ReferenceShape shape;
  const NewReference ref = MakeReference("shared-id", shape, 6);
  ASSERT_TRUE(node_->Put(kTenantA, ref).ok());
  std::vector<int32_t> source(10, 0);

  absl::StatusOr<FindResult> found = node_->FindSimilar(kTenantB, ref.codes, ref.sketch, 5);
  ASSERT_TRUE(found.ok());
  EXPECT_THAT(found->matches, IsEmpty());
  std::vector<FetchedLayer> layers;
  EXPECT_EQ(Fetch(kTenantB, "shared-id", source, {}, &layers).code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(layers, IsEmpty());
  EXPECT_THAT(ListIds(kTenantB), IsEmpty());
  EXPECT_EQ(node_->Delete(kTenantB, "shared-id").code(), absl::StatusCode::kNotFound);
  // Look-alike scopes whose concatenated names equal A's cannot reach it either.
  for (const ReferenceScope& forged :
       {ReferenceScope{"tenant-am", "odel-1"}, ReferenceScope{"tenant-", "amodel-1"},
        ReferenceScope{"tenant-a", "model-1shared-id"}}) {
    EXPECT_EQ(node_->Delete(forged, "shared-id").code(), absl::StatusCode::kNotFound);
    EXPECT_THAT(ListIds(forged), IsEmpty());
  }
  // B may use the same id for its own reference; A's stays A's.
  const NewReference mine = MakeReference("shared-id", shape, 7);
  ASSERT_TRUE(node_->Put(kTenantB, mine).ok());
  ASSERT_TRUE(node_->Delete(kTenantB, "shared-id").ok());
  EXPECT_THAT(ListIds(kTenantA), ElementsAre("shared-id"));
  ExpectFetchMatches(kTenantA, ref, source);
  EXPECT_EQ(node_->Stats().tenants.at("tenant-b").deleted_references, 1);
}

TEST_F(CacheNodeTest, BadInputGetsTheRightStatusAndTheNodeKeepsWorking) {
  const ReferenceShape shape;
  const NewReference good = MakeReference("good", shape, 8);
  ASSERT_TRUE(node_->Put(kTenantA, good).ok());
  using Code = absl::StatusCode;
  const auto put = [&](const ReferenceScope& scope, NewReference r) {
    return node_->Put(scope, std::move(r)).code();
  };
  const auto variant = [&](auto change) {
    NewReference r = MakeReference("other", shape, 9);
    change(r);
    return r;
  };
  EXPECT_EQ(put({"", "model-1"}, variant([](NewReference&) {})), Code::kInvalidArgument);
  EXPECT_EQ(put({"tenant-a", ""}, variant([](NewReference&) {})), Code::kInvalidArgument);
  EXPECT_EQ(put(kTenantA, variant([](NewReference& r) { r.reference_id.clear(); })),
            Code::kInvalidArgument);
  EXPECT_EQ(put(kTenantA, variant([](NewReference& r) { r.token_ids.clear(); })),
            Code::kInvalidArgument);
  EXPECT_EQ(put(kTenantA, variant([](NewReference& r) { r.token_ids.pop_back(); })),
            Code::kInvalidArgument);
  EXPECT_EQ(put(kTenantA, variant([](NewReference& r) { r.codes.words.pop_back(); })),
            Code::kInvalidArgument);
  EXPECT_EQ(put(kTenantA, variant([](NewReference& r) { r.sketch.clear(); })),
            Code::kInvalidArgument);
  EXPECT_EQ(put(kTenantA, variant([](NewReference& r) { r.sketch[0] = NAN; })),
            Code::kInvalidArgument);
  EXPECT_EQ(put(kTenantA, variant([](NewReference& r) { r.layers.clear(); })),
            Code::kInvalidArgument);
  EXPECT_EQ(put(kTenantA, variant([](NewReference& r) { r.layers[1].key.shape[1] += 1; })),
            Code::kInvalidArgument);
  EXPECT_EQ(put(kTenantA, variant([](NewReference& r) { r.layers[2].value.data.pop_back(); })),
            Code::kInvalidArgument);
  EXPECT_EQ(put(kTenantA, variant([](NewReference& r) {
                  r.layers[0].value.shape = {4, 40, 4};
                })),
            Code::kInvalidArgument);
  EXPECT_EQ(put(kTenantA, variant([](NewReference& r) {
                  r.layers[1].key.shape = {2, 40, 8, 1};
                })),
            Code::kInvalidArgument);
  // Consistent on its own, but not with the model's earlier references.
  ReferenceShape fewer_layers = shape;
  fewer_layers.layers = 2;
  EXPECT_EQ(put(kTenantA, MakeReference("x", fewer_layers, 10)), Code::kFailedPrecondition);
  ReferenceShape wider = shape;
  wider.head_dim = 16;
  EXPECT_EQ(put(kTenantA, MakeReference("x", wider, 10)), Code::kFailedPrecondition);
  ReferenceShape half = shape;
  half.dtype = DType::kFloat16;
  EXPECT_EQ(put(kTenantA, MakeReference("x", half, 10)), Code::kFailedPrecondition);
  ReferenceShape other_sketch = shape;
  other_sketch.sketch_dim = 16;
  EXPECT_EQ(put(kTenantA, MakeReference("x", other_sketch, 10)), Code::kFailedPrecondition);
  // The same layout is fine for another model.
  EXPECT_EQ(put({"tenant-a", "model-2"}, MakeReference("x", fewer_layers, 10)), Code::kOk);
  EXPECT_EQ(put(kTenantA, MakeReference("good", shape, 11)), Code::kAlreadyExists);
  ReferenceShape huge = shape;
  huge.tokens = 8000;
  options_.capacity_bytes = 1 << 20;
  Open();
  EXPECT_EQ(put(kTenantA, MakeReference("huge", huge, 12)), Code::kResourceExhausted);

  // Find.
  TokenCodes narrow = good.codes;
  narrow.nbits = 128;
  narrow.words.resize(narrow.words.size() / 2);
  EXPECT_EQ(node_->FindSimilar(kTenantA, good.codes, good.sketch, 0).status().code(),
            Code::kInvalidArgument);
  EXPECT_EQ(node_->FindSimilar(kTenantA, TokenCodes{}, good.sketch, 1).status().code(),
            Code::kInvalidArgument);
  EXPECT_EQ(node_->FindSimilar(kTenantA, narrow, good.sketch, 1).status().code(),
            Code::kInvalidArgument);
  EXPECT_EQ(node_->FindSimilar(kTenantA, good.codes, {1.0f, 0.0f}, 1).status().code(),
            Code::kInvalidArgument);
  EXPECT_EQ(node_->FindSimilar({"", "m"}, good.codes, good.sketch, 1).status().code(),
            Code::kInvalidArgument);
  absl::StatusOr<FindResult> unknown_model =
      node_->FindSimilar({"tenant-a", "model-9"}, good.codes, good.sketch, 1);
  ASSERT_TRUE(unknown_model.ok());
  EXPECT_THAT(unknown_model->matches, IsEmpty());

  // Fetch and delete.
  std::vector<FetchedLayer> layers;
  EXPECT_EQ(Fetch(kTenantA, "nope", {0}, {}, &layers).code(), Code::kNotFound);
  EXPECT_EQ(Fetch(kTenantA, "good", {}, {}, &layers).code(), Code::kInvalidArgument);
  EXPECT_EQ(Fetch(kTenantA, "good", {0, 40}, {}, &layers).code(), Code::kInvalidArgument);
  EXPECT_EQ(Fetch(kTenantA, "good", {0, -1}, {}, &layers).code(), Code::kInvalidArgument);
  EXPECT_EQ(Fetch(kTenantA, "good", {0, 1}, {{0}, {1}}, &layers).code(), Code::kInvalidArgument);
  EXPECT_EQ(Fetch(kTenantA, "good", {0, 1}, {{0}, {1, 0}, {}}, &layers).code(),
            Code::kInvalidArgument);
  EXPECT_EQ(Fetch(kTenantA, "good", {0, 1}, {{0}, {2}, {}}, &layers).code(),
            Code::kInvalidArgument);
  EXPECT_THAT(layers, IsEmpty());
  EXPECT_EQ(node_
                ->FetchKV(kTenantA, "good", {0}, {},
                          [](FetchedLayer) { return absl::CancelledError("client gone"); })
                .code(),
            Code::kCancelled);
  EXPECT_EQ(node_->Delete(kTenantA, "nope").code(), Code::kNotFound);

  // Still serving.
  absl::StatusOr<FindResult> found = node_->FindSimilar(kTenantA, good.codes, good.sketch, 1);
  ASSERT_TRUE(found.ok());
  ASSERT_EQ(found->matches.size(), 1u);
  ExpectFetchMatches(kTenantA, good, found->best_mapping.source);
}

// Rewrites one stored value of a closed node through RocksDB itself.
void FlipStoredByte(const std::string& dir, const std::string& kv_key, size_t offset_from_end) {
  rocksdb::Options options;
  std::vector<rocksdb::ColumnFamilyDescriptor> families;
  for (const char* name : {"default", "meta", "codes", "kv"}) {
    families.emplace_back(name, rocksdb::ColumnFamilyOptions());
  }
  families[3].options.enable_blob_files = true;
  std::vector<rocksdb::ColumnFamilyHandle*> handles;
  rocksdb::DB* db = nullptr;
  ASSERT_TRUE(rocksdb::DB::Open(options, dir, families, &handles, &db).ok());
  std::string value;
  ASSERT_TRUE(db->Get(rocksdb::ReadOptions(), handles[3], kv_key, &value).ok());
  value[value.size() - offset_from_end] ^= 0x01;
  ASSERT_TRUE(db->Put(rocksdb::WriteOptions(), handles[3], kv_key, value).ok());
  for (auto* h : handles) ASSERT_TRUE(db->DestroyColumnFamilyHandle(h).ok());
  ASSERT_TRUE(db->Close().ok());
  delete db;
}

TEST_F(CacheNodeTest, CorruptValueInRocksDbBecomesDataLossAndTheReferenceGoes) {
  const NewReference ref = MakeReference("r", ReferenceShape(), 13);
  const NewReference keep = MakeReference("keep", ReferenceShape(), 14);
  ASSERT_TRUE(node_->Put(kTenantA, ref).ok());
  ASSERT_TRUE(node_->Put(kTenantA, keep).ok());
  node_.reset();
  FlipStoredByte(options_.data_dir, KvKey(ReferenceKey(kTenantA, "r"), 1, KvPart::kValue), 9);
  Open();

  std::vector<FetchedLayer> layers;
  EXPECT_EQ(Fetch(kTenantA, "r", {0, 1, 2}, {}, &layers).code(), absl::StatusCode::kDataLoss);
  ASSERT_LE(layers.size(), 1u);  // layer 0 was intact; layer 1 never reached the sink
  EXPECT_EQ(node_->Stats().corrupt_blobs_removed, 1);
  EXPECT_THAT(ListIds(kTenantA), ElementsAre("keep"));
  absl::StatusOr<FindResult> found = node_->FindSimilar(kTenantA, ref.codes, ref.sketch, 5);
  ASSERT_TRUE(found.ok());
  for (const Match& m : found->matches) EXPECT_NE(m.reference_id, "r");
  EXPECT_EQ(Fetch(kTenantA, "r", {0}, {}, &layers).code(), absl::StatusCode::kNotFound);
  Open();
  EXPECT_THAT(ListIds(kTenantA), ElementsAre("keep"));
}

TEST_F(CacheNodeTest, CorruptBlobFileBecomesDataLossNeverWrongData) {
  ReferenceShape shape;
  shape.tokens = 300;
  shape.head_dim = 64;  // 150 KB per tensor: in blob files
  const NewReference ref = MakeReference("big", shape, 15);
  ASSERT_TRUE(node_->Put(kTenantA, ref).ok());
  ASSERT_TRUE(node_->Flush().ok());
  node_.reset();
  int flipped = 0;
  for (const auto& entry : std::filesystem::directory_iterator(options_.data_dir)) {
    if (entry.path().extension() != ".blob") continue;
    // Past the file header and the first record's header and key: inside a KV payload.
    const long offset = 4096;
    std::FILE* file = std::fopen(entry.path().c_str(), "r+b");
    ASSERT_NE(file, nullptr);
    ASSERT_EQ(std::fseek(file, offset, SEEK_SET), 0);
    const int byte = std::fgetc(file);
    ASSERT_EQ(std::fseek(file, offset, SEEK_SET), 0);
    ASSERT_NE(std::fputc(byte ^ 0x40, file), EOF);
    ASSERT_EQ(std::fclose(file), 0);
    ++flipped;
  }
  ASSERT_EQ(flipped, 1);
  Open();
  std::vector<int32_t> identity(shape.tokens);
  for (int32_t i = 0; i < shape.tokens; ++i) identity[i] = i;
  std::vector<FetchedLayer> layers;
  EXPECT_EQ(Fetch(kTenantA, "big", identity, {}, &layers).code(), absl::StatusCode::kDataLoss);
  // Whatever reached the sink before the corrupt blob is the stored data.
  for (size_t l = 0; l < layers.size(); ++l) {
    EXPECT_TRUE(layers[l].kv.key.data == HandGather(ref.layers[l].key, identity));
    EXPECT_TRUE(layers[l].kv.value.data == HandGather(ref.layers[l].value, identity));
  }
  EXPECT_THAT(ListIds(kTenantA), IsEmpty());
  EXPECT_EQ(node_->Stats().corrupt_blobs_removed, 1);
}

TEST_F(CacheNodeTest, EvictionKeepsBytesUnderBudgetUnderSustainedPuts) {
  ReferenceShape shape;
  shape.tokens = 24;
  // Learn one reference's stored size, then budget for ~12 in total and ~5 per tenant.
  ASSERT_TRUE(node_->Put(kTenantA, MakeReference("probe", shape, 1)).ok());
  const int64_t one = node_->Stats().bytes;
  options_.capacity_bytes = 12 * one + one / 2;
  options_.tenant_capacity_bytes = 5 * one + one / 2;
  options_.data_dir = FreshDir("EvictionBudget");
  Open();
  const std::vector<std::string> tenants = {"t0", "t1", "t2"};
  for (int i = 0; i < 200; ++i) {
    const ReferenceScope scope{tenants[i % 3], "m"};
    if (i % 7 == 3) {
      // Keep t0's first reference in use: least-recently-used, not first-in, is evicted.
      std::vector<FetchedLayer> layers;
      ASSERT_TRUE(Fetch({"t0", "m"}, "r0", {0}, {}, &layers).ok()) << i;
    }
    const absl::Status put =
        node_->Put(scope, MakeReference("r" + std::to_string(i), shape, 100 + i));
    ASSERT_TRUE(put.ok()) << put;
    const NodeStats stats = node_->Stats();
    ASSERT_LE(stats.bytes, options_.capacity_bytes) << i;
    for (const auto& [tenant, t] : stats.tenants) {
      ASSERT_LE(t.bytes, options_.tenant_capacity_bytes) << tenant << " after put " << i;
      absl::StatusOr<std::vector<ReferenceInfo>> infos = node_->List({tenant, "m"});
      ASSERT_TRUE(infos.ok());
      int64_t listed = 0;
      for (const ReferenceInfo& info : *infos) listed += info.bytes;
      ASSERT_EQ(listed, t.bytes);
      ASSERT_EQ(static_cast<int64_t>(infos->size()), t.references);
    }
    EXPECT_THAT(ListIds(scope), ::testing::Contains("r" + std::to_string(i)));
  }
  const NodeStats stats = node_->Stats();
  EXPECT_GT(stats.evicted_references, 150);
  EXPECT_EQ(stats.references + stats.evicted_references, 200);
  EXPECT_THAT(ListIds({"t0", "m"}), ::testing::Contains("r0"));
  // Evicted references are gone from disk too: a reopen sees what Stats saw.
  Open();
  EXPECT_EQ(node_->Stats().references, stats.references);
  EXPECT_EQ(node_->Stats().bytes, stats.bytes);
}

// Forwards to the RocksDB store, except that Put fails while `fail_puts` is set: a disk with
// room for small writes (an eviction's deletes) but not for a reference's KV.
class FailingPutStore final : public ReferenceStore {
 public:
  FailingPutStore(std::unique_ptr<ReferenceStore> store, const std::atomic<bool>* fail_puts)
      : store_(std::move(store)), fail_puts_(fail_puts) {}

  absl::Status Put(const std::string& reference_key, const ReferenceMeta& meta,
                   const ReferenceCodes& codes, absl::Span<const int32_t> token_ids,
                   const std::vector<LayerKV>& layers,
                   absl::Span<const StoredReferenceKey> replaced) override {
    if (fail_puts_->load()) return absl::ResourceExhaustedError("injected: no space left");
    return store_->Put(reference_key, meta, codes, token_ids, layers, replaced);
  }
  absl::Status Delete(const std::string& reference_key, int32_t num_layers) override {
    return store_->Delete(reference_key, num_layers);
  }
  absl::Status UpdateMeta(
      const std::vector<std::pair<std::string, ReferenceMeta>>& updates) override {
    return store_->UpdateMeta(updates);
  }
  absl::StatusOr<TensorBlobView> ReadKv(const std::string& reference_key, int32_t layer,
                                        KvPart part, std::string* buffer) override {
    return store_->ReadKv(reference_key, layer, part, buffer);
  }
  absl::Status Scan(
      const std::function<void(StoredReference)>& on_reference,
      const std::function<void(const std::string&, const absl::Status&)>& on_corrupt) override {
    return store_->Scan(on_reference, on_corrupt);
  }
  absl::Status Flush() override { return store_->Flush(); }

 private:
  const std::unique_ptr<ReferenceStore> store_;
  const std::atomic<bool>* const fail_puts_;
};

TEST_F(CacheNodeTest, AFailedPutEvictsNothing) {
  ReferenceShape shape;
  shape.tokens = 24;
  ASSERT_TRUE(node_->Put(kTenantA, MakeReference("r0", shape, 1)).ok());
  const int64_t one = node_->Stats().bytes;
  // Room for two references: the third evicts the least recently used.
  node_.reset();
  options_.capacity_bytes = 2 * one + one / 2;
  options_.data_dir = FreshDir("FailedPutEvictsNothing");
  std::atomic<bool> fail_puts{false};
  RocksReferenceStoreOptions store_options;
  store_options.path = options_.data_dir;
  absl::StatusOr<std::unique_ptr<ReferenceStore>> rocks = OpenRocksReferenceStore(store_options);
  ASSERT_TRUE(rocks.ok()) << rocks.status();
  absl::StatusOr<std::unique_ptr<CacheNode>> node = OpenCacheNodeOnStore(
      options_, std::make_unique<FailingPutStore>(std::move(*rocks), &fail_puts));
  ASSERT_TRUE(node.ok()) << node.status();
  node_ = std::move(*node);

  const NewReference r1 = MakeReference("r1", shape, 11);
  ASSERT_TRUE(node_->Put(kTenantA, r1).ok());
  ASSERT_TRUE(node_->Put(kTenantA, MakeReference("r2", shape, 12)).ok());
  const NodeStats before = node_->Stats();
  ASSERT_EQ(before.references, 2);

  fail_puts = true;
  const absl::Status failed = node_->Put(kTenantA, MakeReference("r3", shape, 13));
  EXPECT_EQ(failed.code(), absl::StatusCode::kResourceExhausted) << failed;
  EXPECT_THAT(failed.message(), ::testing::HasSubstr("no space left"));
  // r1 would have been evicted for r3; it is still there, searchable and readable.
  EXPECT_THAT(ListIds(kTenantA), ElementsAre("r1", "r2"));
  const NodeStats after = node_->Stats();
  EXPECT_EQ(after.references, 2);
  EXPECT_EQ(after.bytes, before.bytes);
  EXPECT_EQ(after.evicted_references, 0);
  absl::StatusOr<FindResult> found = node_->FindSimilar(kTenantA, r1.codes, r1.sketch, 1);
  ASSERT_TRUE(found.ok()) << found.status();
  ASSERT_EQ(found->matches.size(), 1u);
  EXPECT_EQ(found->matches[0].reference_id, "r1");
  ExpectFetchMatches(kTenantA, r1, found->best_mapping.source);

  // Once the write goes through, the eviction happens with it; r1 was just read, so the
  // least recently used is now r2.
  fail_puts = false;
  ASSERT_TRUE(node_->Put(kTenantA, MakeReference("r3", shape, 13)).ok());
  EXPECT_THAT(ListIds(kTenantA), ElementsAre("r1", "r3"));
  EXPECT_EQ(node_->Stats().evicted_references, 1);
  EXPECT_LE(node_->Stats().bytes, options_.capacity_bytes);
  // And on disk: a reopen over the plain RocksDB store sees the same two.
  Open();
  EXPECT_THAT(ListIds(kTenantA), ElementsAre("r1", "r3"));
}

TEST_F(CacheNodeTest, ConcurrentFindsWhilePuttingAndDeleting) {
  const ReferenceShape shape;
  std::vector<NewReference> refs;
  for (int i = 0; i < 40; ++i)
    refs.push_back(MakeReference("r" + std::to_string(i), shape, 200 + i));
  for (int i = 0; i < 10; ++i) ASSERT_TRUE(node_->Put(kTenantA, refs[i]).ok());
  std::atomic<bool> writer_done{false};
  std::atomic<int> failures{0};
  std::vector<std::thread> finders;
  for (int f = 0; f < 3; ++f) {
    finders.emplace_back([&, f] {
      // At least 30 searches each, and on until the writer is done.
      for (int n = 0; n < 30 || !writer_done.load(); ++n) {
        const NewReference& probe = refs[(n * 3 + f) % 10];
        absl::StatusOr<FindResult> found =
            node_->FindSimilar(kTenantA, probe.codes, probe.sketch, 3);
        if (!found.ok() || found->matches.empty() ||
            found->best_mapping.source.size() != probe.codes.words.size() / 4) {
          ++failures;
          continue;
        }
        std::vector<int32_t> source(found->best_mapping.source.begin(),
                                    found->best_mapping.source.begin() + 5);
        const absl::Status fetched =
            node_->FetchKV(kTenantA, found->matches[0].reference_id, source, {},
                           [](FetchedLayer) { return absl::OkStatus(); });
        // A reference deleted between find and fetch is a miss, nothing else.
        if (!fetched.ok() && fetched.code() != absl::StatusCode::kNotFound) ++failures;
      }
    });
  }
  std::thread writer([&] {
    for (int i = 10; i < 40; ++i) {
      if (!node_->Put(kTenantA, refs[i]).ok()) ++failures;
      if (i % 2 == 0 && !node_->Delete(kTenantA, refs[i].reference_id).ok()) ++failures;
    }
    writer_done = true;
  });
  writer.join();
  for (std::thread& t : finders) t.join();
  EXPECT_EQ(failures.load(), 0);
  EXPECT_EQ(node_->Stats().references, 25);
}

}  // namespace
}  // namespace semshare::cache_node
