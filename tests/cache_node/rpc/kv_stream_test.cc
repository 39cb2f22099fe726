#include "cache_node/rpc/kv_stream.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "cache_node/testing/synthetic.h"
#include "common/tensor_blob.h"
#include "tests/cache_node/rpc/node_fixture.h"

namespace semshare::cache_node {
namespace {

using ::testing::HasSubstr;

testing::SyntheticShape SmallShape() {
  testing::SyntheticShape shape;
  shape.num_tokens = 40;
  shape.num_layers = 3;
  shape.kv_heads = 2;
  shape.head_dim = 4;
  return shape;
}

std::vector<v1::PutReferenceRequest> PutStream(const NewReference& reference, int64_t chunk_bytes) {
  std::vector<v1::PutReferenceRequest> stream;
  EXPECT_TRUE(WritePutReferenceStream("m", reference, chunk_bytes, [&](v1::PutReferenceRequest r) {
                stream.push_back(std::move(r));
                return absl::OkStatus();
              }).ok());
  return stream;
}

ReferenceAssembler::Limits Limits() {
  ReferenceAssembler::Limits limits;
  limits.max_reference_bytes = int64_t{1} << 30;
  limits.max_chunk_bytes = 100;
  return limits;
}

absl::StatusOr<NewReference> Assemble(std::vector<v1::PutReferenceRequest> stream,
                                      ReferenceAssembler::Limits limits = Limits()) {
  absl::StatusOr<std::unique_ptr<ReferenceAssembler>> assembler =
      ReferenceAssembler::Start(stream[0].header(), limits);
  if (!assembler.ok()) return assembler.status();
  for (size_t i = 1; i < stream.size(); ++i) {
    absl::Status added = (*assembler)->Add(stream[i].mutable_chunk());
    if (!added.ok()) return added;
  }
  return (*assembler)->Finish();
}

void ExpectSameReference(const NewReference& a, const NewReference& b) {
  EXPECT_EQ(a.reference_id, b.reference_id);
  EXPECT_EQ(a.token_ids, b.token_ids);
  EXPECT_EQ(a.codes.nbits, b.codes.nbits);
  EXPECT_EQ(a.codes.words, b.codes.words);
  EXPECT_EQ(a.sketch, b.sketch);
  ASSERT_EQ(a.layers.size(), b.layers.size());
  for (size_t l = 0; l < a.layers.size(); ++l) {
    EXPECT_EQ(a.layers[l].key.shape, b.layers[l].key.shape);
    EXPECT_EQ(a.layers[l].key.data, b.layers[l].key.data);
    EXPECT_EQ(a.layers[l].value.data, b.layers[l].value.data);
    EXPECT_EQ(a.layers[l].value.dtype, b.layers[l].value.dtype);
  }
}

TEST(KVStreamTest, PutStreamRoundTripsInBoundedChunks) {
  const NewReference reference = testing::SyntheticReference("r1", SmallShape(), 1);
  std::vector<v1::PutReferenceRequest> stream = PutStream(reference, 100);
  // 40 tokens * 2 heads * 4 dims * 4 bytes = 1280 bytes a part: 13 chunks each, 6 parts.
  EXPECT_EQ(stream.size(), 1u + 6 * 13);
  for (size_t i = 1; i < stream.size(); ++i) EXPECT_LE(stream[i].chunk().data().size(), 100u);
  absl::StatusOr<NewReference> assembled = Assemble(std::move(stream));
  ASSERT_TRUE(assembled.ok()) << assembled.status();
  ExpectSameReference(*assembled, reference);
}

TEST(KVStreamTest, WholePartInOneChunkIsTakenAsIs) {
  const NewReference reference = testing::SyntheticReference("r1", SmallShape(), 2);
  ReferenceAssembler::Limits limits = Limits();
  limits.max_chunk_bytes = kMaxKVChunkBytes;
  absl::StatusOr<NewReference> assembled = Assemble(PutStream(reference, kMaxKVChunkBytes), limits);
  ASSERT_TRUE(assembled.ok()) << assembled.status();
  ExpectSameReference(*assembled, reference);
}

TEST(KVStreamTest, RejectsBadHeaders) {
  const NewReference reference = testing::SyntheticReference("r1", SmallShape(), 3);
  const v1::ReferenceHeader good = PutStream(reference, 100)[0].header();
  struct Case {
    const char* name;
    std::function<void(v1::ReferenceHeader*)> mutate;
    absl::StatusCode code;
    const char* message;
  };
  const std::vector<Case> cases = {
      {"no id", [](v1::ReferenceHeader* h) { h->clear_reference_id(); },
       absl::StatusCode::kInvalidArgument, "reference_id"},
      {"no model", [](v1::ReferenceHeader* h) { h->clear_model_fingerprint(); },
       absl::StatusCode::kInvalidArgument, "model_fingerprint"},
      {"dtype", [](v1::ReferenceHeader* h) { h->set_dtype(v1::DTYPE_UNSPECIFIED); },
       absl::StatusCode::kInvalidArgument, "dtype"},
      {"rank", [](v1::ReferenceHeader* h) { h->mutable_layer_shape()->RemoveLast(); },
       absl::StatusCode::kInvalidArgument, "layer_shape"},
      {"zero dim", [](v1::ReferenceHeader* h) { h->set_layer_shape(0, 0); },
       absl::StatusCode::kInvalidArgument, "out of range"},
      {"no layers", [](v1::ReferenceHeader* h) { h->set_num_layers(0); },
       absl::StatusCode::kInvalidArgument, "num_layers"},
      {"crc count", [](v1::ReferenceHeader* h) { h->mutable_key_crc32c()->RemoveLast(); },
       absl::StatusCode::kInvalidArgument, "CRC32C"},
      {"huge",
       [](v1::ReferenceHeader* h) {
         h->set_layer_shape(1, 1 << 24);
         h->set_layer_shape(2, 1 << 20);
       },
       absl::StatusCode::kResourceExhausted, ""},
  };
  for (const Case& c : cases) {
    v1::ReferenceHeader header = good;
    c.mutate(&header);
    absl::StatusOr<std::unique_ptr<ReferenceAssembler>> started =
        ReferenceAssembler::Start(header, Limits());
    EXPECT_EQ(started.status().code(), c.code) << c.name << ": " << started.status();
    EXPECT_THAT(started.status().message(), HasSubstr(c.message)) << c.name;
  }
  ReferenceAssembler::Limits small = Limits();
  small.max_reference_bytes = 1000;
  EXPECT_TRUE(absl::IsResourceExhausted(ReferenceAssembler::Start(good, small).status()));
}

TEST(KVStreamTest, RejectsBadChunks) {
  const NewReference reference = testing::SyntheticReference("r1", SmallShape(), 4);
  const std::vector<v1::PutReferenceRequest> stream = PutStream(reference, 100);
  const auto start = [&] { return *ReferenceAssembler::Start(stream[0].header(), Limits()); };
  {
    auto assembler = start();
    v1::LayerChunk chunk = stream[1].chunk();
    chunk.set_data(std::string(101, 'x'));
    EXPECT_THAT(assembler->Add(&chunk).message(), HasSubstr("over the limit"));
  }
  {
    auto assembler = start();
    v1::LayerChunk chunk = stream[2].chunk();  // the second chunk first
    EXPECT_THAT(assembler->Add(&chunk).message(), HasSubstr("in order"));
  }
  {
    auto assembler = start();
    v1::LayerChunk chunk = stream[1].chunk();
    chunk.set_layer(3);
    EXPECT_THAT(assembler->Add(&chunk).message(), HasSubstr("declares 3 layers"));
    chunk.set_layer(0);
    chunk.set_part(v1::KV_PART_UNSPECIFIED);
    EXPECT_TRUE(absl::IsInvalidArgument(assembler->Add(&chunk)));
  }
  {
    auto assembler = start();
    for (size_t i = 1; i <= 13; ++i) {
      v1::LayerChunk chunk = stream[i].chunk();
      ASSERT_TRUE(assembler->Add(&chunk).ok());
    }
    v1::LayerChunk extra = stream[13].chunk();
    extra.set_offset(1280);
    EXPECT_THAT(assembler->Add(&extra).message(), HasSubstr("past the declared"));
    const absl::StatusOr<NewReference> finished = assembler->Finish();
    EXPECT_TRUE(absl::IsInvalidArgument(finished.status()));
    EXPECT_THAT(finished.status().message(), HasSubstr("layer 0 value incomplete"));
  }
}

TEST(KVStreamTest, CorruptedChunkFailsItsChecksum) {
  const NewReference reference = testing::SyntheticReference("r1", SmallShape(), 5);
  std::vector<v1::PutReferenceRequest> stream = PutStream(reference, 100);
  (*stream[20].mutable_chunk()->mutable_data())[7] ^= 1;
  const absl::StatusOr<NewReference> assembled = Assemble(std::move(stream));
  EXPECT_TRUE(absl::IsDataLoss(assembled.status())) << assembled.status();
  EXPECT_THAT(assembled.status().message(), HasSubstr("CRC32C mismatch"));
}

std::vector<v1::FetchKVResponse> FetchStream(const FetchedLayer& layer, int64_t chunk_bytes) {
  std::vector<v1::FetchKVResponse> stream;
  EXPECT_TRUE(WriteFetchedLayer(layer, chunk_bytes, [&](v1::FetchKVResponse r) {
                stream.push_back(std::move(r));
                return absl::OkStatus();
              }).ok());
  return stream;
}

TEST(KVStreamTest, FetchStreamRoundTrips) {
  const NewReference reference = testing::SyntheticReference("r1", SmallShape(), 6);
  std::vector<int32_t> source;
  for (int i = 0; i < 30; ++i) source.push_back((i * 7) % 40);
  FetchedLayerAssembler assembler(100);
  std::vector<FetchedLayer> received;
  const auto sink = [&](FetchedLayer layer) {
    received.push_back(std::move(layer));
    return absl::OkStatus();
  };
  std::vector<FetchedLayer> expected;
  for (int32_t l = 0; l < 3; ++l) {
    expected.push_back(testing::ExpectedFetchedLayer(
        reference, l, source,
        l == 1 ? std::vector<int32_t>{2, 5, 29} : testing::AllTargetTokens(30)));
    for (v1::FetchKVResponse& response : FetchStream(expected.back(), 100)) {
      ASSERT_TRUE(assembler.Add(&response, sink).ok());
    }
  }
  ASSERT_TRUE(assembler.Finish().ok());
  ExpectLayersEqual(received, expected);
}

TEST(KVStreamTest, FetchStreamDetectsCorruptionAndTruncation) {
  const NewReference reference = testing::SyntheticReference("r1", SmallShape(), 7);
  const FetchedLayer layer = testing::ExpectedFetchedLayer(reference, 0, {1, 2, 3}, {0, 1, 2});
  const auto sink = [](FetchedLayer) { return absl::OkStatus(); };
  {
    std::vector<v1::FetchKVResponse> stream = FetchStream(layer, 10);
    (*stream.back().mutable_chunk()->mutable_data())[0] ^= 4;
    FetchedLayerAssembler assembler(10);
    absl::Status status;
    for (v1::FetchKVResponse& r : stream) status.Update(assembler.Add(&r, sink));
    EXPECT_TRUE(absl::IsDataLoss(status)) << status;
  }
  {
    std::vector<v1::FetchKVResponse> stream = FetchStream(layer, 10);
    stream.pop_back();
    FetchedLayerAssembler assembler(10);
    for (v1::FetchKVResponse& r : stream) ASSERT_TRUE(assembler.Add(&r, sink).ok());
    EXPECT_THAT(assembler.Finish().message(), HasSubstr("ended inside layer 0"));
  }
  {
    std::vector<v1::FetchKVResponse> stream = FetchStream(layer, 10);
    FetchedLayerAssembler assembler(10);
    EXPECT_THAT(assembler.Add(&stream[1], sink).message(), HasSubstr("before a layer header"));
  }
}

}  // namespace
}  // namespace semshare::cache_node
