// semshare.v1.CacheNode served in-process on port 0 over a real cache node.
#include "cache_node/rpc/cache_node_service.h"

#include <gmock/gmock.h>
#include <grpcpp/create_channel.h>
#include <gtest/gtest.h>
#include <prometheus/text_serializer.h>

#include "absl/strings/str_cat.h"
#include "cache_node/rpc/kv_stream.h"
#include "common/rpc/cluster_metadata.h"
#include "common/rpc/grpc_status.h"
#include "common/rpc/health_check.h"
#include "tests/cache_node/rpc/node_fixture.h"

namespace semshare::cache_node {
namespace {

using ::testing::HasSubstr;
using ::testing::IsEmpty;

testing::SyntheticShape Shape(int64_t tokens = 96) {
  testing::SyntheticShape shape;
  shape.num_tokens = tokens;
  shape.num_layers = 3;
  shape.kv_heads = 2;
  shape.head_dim = 16;
  return shape;
}

std::vector<FetchedLayer> FetchAll(CacheNodeClient* client, const ReferenceScope& scope,
                                   const std::string& id, const std::vector<int32_t>& source,
                                   const std::vector<std::vector<int32_t>>& subsets,
                                   absl::Status* status) {
  std::vector<FetchedLayer> layers;
  *status = client->FetchKV(scope, id, source, subsets, [&](FetchedLayer layer) {
    layers.push_back(std::move(layer));
    return absl::OkStatus();
  });
  return layers;
}

class CacheNodeServiceTest : public NodeFixture {};

TEST_F(CacheNodeServiceTest, PutFindFetchRoundTripIsBitExact) {
  StartNode();
  const NewReference reference = testing::SyntheticReference("ref-a", Shape(), 11);
  ASSERT_TRUE(client_->Put(Scope("alice"), reference).ok());
  ASSERT_TRUE(client_->Put(Scope("alice"), testing::SyntheticReference("ref-b", Shape(), 12)).ok());

  const testing::SyntheticTarget target = testing::SyntheticEditedTarget(reference, 10, 13);
  absl::StatusOr<FindResult> found =
      client_->FindSimilar(Scope("alice"), target.codes, target.sketch, 2);
  ASSERT_TRUE(found.ok()) << found.status();
  ASSERT_FALSE(found->matches.empty());
  EXPECT_EQ(found->matches[0].reference_id, "ref-a");
  EXPECT_EQ(found->matches[0].num_tokens, 96);
  // The mapping is exactly what the engine computes for this pair.
  const TokenMapping expected = *MapTokens(target.codes, reference.codes, MappingOptions());
  EXPECT_EQ(found->best_mapping.source, expected.source);
  EXPECT_EQ(found->best_mapping.distance, expected.distance);
  EXPECT_EQ(found->best_mapping.unmatched, expected.unmatched);
  EXPECT_DOUBLE_EQ(found->best_mapping.similarity, expected.similarity);
  EXPECT_DOUBLE_EQ(found->matches[0].similarity, expected.similarity);

  absl::Status status;
  std::vector<FetchedLayer> layers =
      FetchAll(client_.get(), Scope("alice"), "ref-a", expected.source, {}, &status);
  ASSERT_TRUE(status.ok()) << status;
  std::vector<FetchedLayer> want;
  for (int32_t l = 0; l < 3; ++l)
    want.push_back(
        testing::ExpectedFetchedLayer(reference, l, expected.source, testing::AllTargetTokens(96)));
  ExpectLayersEqual(layers, want);

  // Per-layer token subsets: only what the worker will keep.
  const std::vector<std::vector<int32_t>> subsets = {{0, 1, 2, 95}, {}, {50}};
  layers = FetchAll(client_.get(), Scope("alice"), "ref-a", expected.source, subsets, &status);
  ASSERT_TRUE(status.ok()) << status;
  ASSERT_EQ(layers.size(), 3u);
  EXPECT_EQ(layers[0].target_tokens, subsets[0]);
  EXPECT_EQ(layers[2].target_tokens, subsets[2]);
  want.clear();
  for (int32_t l = 0; l < 3; ++l) {
    want.push_back(testing::ExpectedFetchedLayer(reference, l, expected.source, subsets[l]));
  }
  ExpectLayersEqual(layers, want);
  EXPECT_EQ(layers[1].kv.key.shape, (std::vector<int64_t>{2, 0, 16}));
}

TEST_F(CacheNodeServiceTest, MetricsCountKvSentAndStoredBytesByTenant) {
  StartNode();
  const NewReference reference = testing::SyntheticReference("ref-a", Shape(), 11);
  ASSERT_TRUE(client_->Put(Scope("alice"), reference).ok());
  std::vector<int32_t> identity(96);
  for (int32_t i = 0; i < 96; ++i) identity[i] = i;
  absl::Status status;
  const std::vector<FetchedLayer> layers =
      FetchAll(client_.get(), Scope("alice"), "ref-a", identity, {}, &status);
  ASSERT_TRUE(status.ok()) << status;
  int64_t sent = 0;
  for (const FetchedLayer& layer : layers)
    sent += static_cast<int64_t>(layer.kv.key.data.size() + layer.kv.value.data.size());
  std::vector<prometheus::MetricFamily> families;
  for (const auto& collectable : metrics_->collectables()) {
    for (prometheus::MetricFamily& family : collectable->Collect())
      families.push_back(std::move(family));
  }
  const std::string text = prometheus::TextSerializer().Serialize(families);
  EXPECT_THAT(text, ::testing::HasSubstr(absl::StrCat(
                        "semshare_cache_node_kv_sent_bytes_total{tenant=\"alice\"} ", sent, "\n")));
  EXPECT_THAT(
      text, ::testing::HasSubstr(absl::StrCat("semshare_cache_node_stored_bytes{tenant=\"alice\"} ",
                                              node_->Stats().bytes, "\n")));
  EXPECT_THAT(text, ::testing::HasSubstr("semshare_cache_node_references{tenant=\"alice\"} 1\n"));
  EXPECT_THAT(
      text, ::testing::HasSubstr("semshare_cache_node_evicted_bytes_total{tenant=\"alice\"} 0\n"));
  EXPECT_THAT(text, ::testing::HasSubstr(
                        "# TYPE semshare_cache_node_corrupt_blobs_removed_total counter\n"));
  EXPECT_THAT(text, ::testing::HasSubstr(
                        "semshare_cache_node_rpcs_total{code=\"OK\",method=\"FetchKV\"} 1\n"));
}

TEST_F(CacheNodeServiceTest, LayersLargerThanAChunkCrossInBoundedChunks) {
  StartNode();
  testing::SyntheticShape shape;
  shape.num_tokens = 4096;
  shape.num_layers = 2;
  shape.kv_heads = 4;
  shape.head_dim = 128;  // 8 MiB per key and value: three 4 MiB chunks each way
  const NewReference reference = testing::SyntheticReference("big", shape, 21);
  ASSERT_TRUE(client_->Put(Scope("alice"), reference).ok());
  std::vector<int32_t> source;
  for (int32_t t = 0; t < 4096; ++t) source.push_back(4095 - t);
  absl::Status status;
  const std::vector<FetchedLayer> layers =
      FetchAll(client_.get(), Scope("alice"), "big", source, {}, &status);
  ASSERT_TRUE(status.ok()) << status;
  ExpectLayersEqual(
      layers,
      {testing::ExpectedFetchedLayer(reference, 0, source, testing::AllTargetTokens(4096)),
       testing::ExpectedFetchedLayer(reference, 1, source, testing::AllTargetTokens(4096))});
}

TEST_F(CacheNodeServiceTest, TenantsCannotReachEachOther) {
  StartNode();
  const NewReference reference = testing::SyntheticReference("shared-id", Shape(), 31);
  ASSERT_TRUE(client_->Put(Scope("alice"), reference).ok());
  const testing::SyntheticTarget target = testing::SyntheticEditedTarget(reference, 0, 32);

  absl::StatusOr<FindResult> found =
      client_->FindSimilar(Scope("bob"), target.codes, target.sketch, 5);
  if (found.ok()) {
    EXPECT_THAT(found->matches, IsEmpty());
  } else {
    EXPECT_TRUE(absl::IsNotFound(found.status())) << found.status();
  }
  std::vector<int32_t> identity;
  for (int32_t t = 0; t < 96; ++t) identity.push_back(t);
  absl::Status status;
  EXPECT_THAT(FetchAll(client_.get(), Scope("bob"), "shared-id", identity, {}, &status), IsEmpty());
  EXPECT_TRUE(absl::IsNotFound(status)) << status;
  absl::StatusOr<std::vector<ReferenceInfo>> listed = client_->List(Scope("bob"));
  ASSERT_TRUE(listed.ok()) << listed.status();
  EXPECT_THAT(*listed, IsEmpty());
  EXPECT_TRUE(absl::IsNotFound(client_->Delete(Scope("bob"), "shared-id")));
  absl::StatusOr<v1::GetStatsResponse> bob_stats = client_->GetStats("bob");
  ASSERT_TRUE(bob_stats.ok());
  EXPECT_EQ(bob_stats->tenant().references(), 0);

  // Bob may use the same id for his own reference; Alice's stays hers.
  ASSERT_TRUE(
      client_->Put(Scope("bob"), testing::SyntheticReference("shared-id", Shape(), 33)).ok());
  std::vector<FetchedLayer> alice_layers =
      FetchAll(client_.get(), Scope("alice"), "shared-id", identity, {}, &status);
  ASSERT_TRUE(status.ok()) << status;
  ExpectLayersEqual({alice_layers[0]},
                    {testing::ExpectedFetchedLayer(reference, 0, identity, identity)});
  found = client_->FindSimilar(Scope("alice"), target.codes, target.sketch, 5);
  ASSERT_TRUE(found.ok());
  ASSERT_EQ(found->matches.size(), 1u);
  EXPECT_DOUBLE_EQ(found->matches[0].similarity, 1.0);
  ASSERT_TRUE(client_->Delete(Scope("bob"), "shared-id").ok());
  listed = client_->List(Scope("alice"));
  ASSERT_TRUE(listed.ok());
  ASSERT_EQ(listed->size(), 1u);
  EXPECT_EQ((*listed)[0].reference_id, "shared-id");
  absl::StatusOr<v1::GetStatsResponse> alice_stats = client_->GetStats("alice");
  ASSERT_TRUE(alice_stats.ok());
  EXPECT_EQ(alice_stats->tenant().references(), 1);
}

TEST_F(CacheNodeServiceTest, CallsWithoutClusterCredentialsAreRefused) {
  StartNode();
  ASSERT_TRUE(client_->Put(Scope("alice"), testing::SyntheticReference("r", Shape(), 41)).ok());
  auto stub = v1::CacheNode::NewStub(client_->channel());
  struct Case {
    const char* name;
    std::function<void(grpc::ClientContext*)> prepare;
  };
  const std::vector<Case> cases = {
      {"no metadata", [](grpc::ClientContext*) {}},
      {"wrong token",
       [](grpc::ClientContext* c) {
         AddClusterMetadata(*ClusterToken::FromString("another-token-0123456789"), "alice", c);
       }},
      {"token prefix",
       [](grpc::ClientContext* c) {
         c->AddMetadata(kClusterTokenMetadataKey, std::string(kTestToken).substr(0, 10));
         c->AddMetadata(kTenantMetadataKey, "alice");
       }},
      {"no tenant",
       [](grpc::ClientContext* c) { c->AddMetadata(kClusterTokenMetadataKey, kTestToken); }},
      {"bad tenant",
       [](grpc::ClientContext* c) {
         c->AddMetadata(kClusterTokenMetadataKey, kTestToken);
         c->AddMetadata(kTenantMetadataKey, "alice/../bob");
       }},
  };
  for (const Case& c : cases) {
    {
      grpc::ClientContext context;
      c.prepare(&context);
      v1::ListReferencesRequest request;
      request.set_model_fingerprint(kModel);
      v1::ListReferencesResponse response;
      const grpc::Status status = stub->ListReferences(&context, request, &response);
      EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAUTHENTICATED) << c.name;
      EXPECT_EQ(response.references_size(), 0) << c.name;
    }
    {
      grpc::ClientContext context;
      c.prepare(&context);
      v1::FetchKVRequest request;
      request.set_model_fingerprint(kModel);
      request.set_reference_id("r");
      request.add_source(0);
      auto reader = stub->FetchKV(&context, request);
      v1::FetchKVResponse response;
      EXPECT_FALSE(reader->Read(&response)) << c.name;
      EXPECT_EQ(reader->Finish().error_code(), grpc::StatusCode::UNAUTHENTICATED) << c.name;
    }
    {
      grpc::ClientContext context;
      c.prepare(&context);
      v1::DeleteReferenceRequest request;
      request.set_model_fingerprint(kModel);
      request.set_reference_id("r");
      v1::DeleteReferenceResponse response;
      EXPECT_EQ(stub->DeleteReference(&context, request, &response).error_code(),
                grpc::StatusCode::UNAUTHENTICATED)
          << c.name;
    }
  }
  absl::StatusOr<std::vector<ReferenceInfo>> listed = client_->List(Scope("alice"));
  ASSERT_TRUE(listed.ok());
  EXPECT_EQ(listed->size(), 1u);
  // The standard health service answers without credentials.
  EXPECT_TRUE(CheckHealth(client_->channel(), absl::Seconds(10)).ok());
}

// Sends a hand-made PutReference stream and returns its status.
grpc::Status RawPut(v1::CacheNode::Stub* stub, const std::vector<v1::PutReferenceRequest>& stream) {
  grpc::ClientContext context;
  AddClusterMetadata(TestToken(), "alice", &context);
  v1::PutReferenceResponse response;
  auto writer = stub->PutReference(&context, &response);
  for (const v1::PutReferenceRequest& request : stream) {
    if (!writer->Write(request)) break;
  }
  writer->WritesDone();
  return writer->Finish();
}

std::vector<v1::PutReferenceRequest> Stream(const NewReference& reference) {
  std::vector<v1::PutReferenceRequest> stream;
  EXPECT_TRUE(
      WritePutReferenceStream(kModel, reference, kMaxKVChunkBytes, [&](v1::PutReferenceRequest r) {
        stream.push_back(std::move(r));
        return absl::OkStatus();
      }).ok());
  return stream;
}

TEST_F(CacheNodeServiceTest, BadInputGetsAClearStatusAndTheNodeKeepsServing) {
  StartNode(int64_t{1} << 30, /*max_message_bytes=*/8 << 20);
  auto stub = v1::CacheNode::NewStub(grpc::CreateCustomChannel(
      server_->address(), grpc::InsecureChannelCredentials(), ClusterChannelArguments()));
  ASSERT_TRUE(client_->Put(Scope("alice"), testing::SyntheticReference("first", Shape(), 51)).ok());
  int fresh = 100;
  const auto good = [&] {
    const int seed = fresh++;
    return testing::SyntheticReference("ok-" + std::to_string(seed), Shape(), seed);
  };
  struct Case {
    const char* name;
    std::function<grpc::Status()> call;
    grpc::StatusCode code;
    const char* message;
  };
  const std::vector<Case> cases = {
      {"wrong shape",
       [&] {
         auto s = Stream(good());
         s[0].mutable_header()->set_layer_shape(1, 95);  // 96 tokens of codes and ids
         return RawPut(stub.get(), s);
       },
       grpc::StatusCode::INVALID_ARGUMENT, ""},
      {"header layer count above the chunks",
       [&] {
         auto s = Stream(good());
         s[0].mutable_header()->set_num_layers(4);
         s[0].mutable_header()->add_key_crc32c(0);
         s[0].mutable_header()->add_value_crc32c(0);
         return RawPut(stub.get(), s);
       },
       grpc::StatusCode::INVALID_ARGUMENT, "layer 3 key incomplete"},
      {"chunk of an undeclared layer",
       [&] {
         auto s = Stream(good());
         s.back().mutable_chunk()->set_layer(7);
         return RawPut(stub.get(), s);
       },
       grpc::StatusCode::INVALID_ARGUMENT, "chunk of layer 7"},
      {"layer count unlike the model's",
       [&] {
         testing::SyntheticShape shape = Shape();
         shape.num_layers = 2;
         return ToGrpcStatus(
             client_->Put(Scope("alice"), testing::SyntheticReference("two-layers", shape, 52)));
       },
       grpc::StatusCode::FAILED_PRECONDITION, ""},
      {"message over the server limit",
       [&] {
         auto s = Stream(good());
         for (int i = 0; i < 5 << 20; ++i) s[0].mutable_header()->add_token_ids(1000);
         return RawPut(stub.get(), s);
       },
       grpc::StatusCode::RESOURCE_EXHAUSTED, ""},
      {"chunk over 4 MiB",
       [&] {
         auto s = Stream(good());
         s[1].mutable_chunk()->mutable_data()->append(std::string(kMaxKVChunkBytes, 'x'));
         return RawPut(stub.get(), s);
       },
       grpc::StatusCode::INVALID_ARGUMENT, "over the limit"},
      {"chunk past the declared size",
       [&] {
         auto s = Stream(good());
         s[1].mutable_chunk()->mutable_data()->append("x");
         return RawPut(stub.get(), s);
       },
       grpc::StatusCode::INVALID_ARGUMENT, "past the declared"},
      {"corrupted checksum",
       [&] {
         auto s = Stream(good());
         (*s[3].mutable_chunk()->mutable_data())[5] ^= 0x10;
         return RawPut(stub.get(), s);
       },
       grpc::StatusCode::DATA_LOSS, "CRC32C mismatch"},
      {"no header",
       [&] {
         auto s = Stream(good());
         s.erase(s.begin());
         return RawPut(stub.get(), s);
       },
       grpc::StatusCode::INVALID_ARGUMENT, "header"},
      {"empty prompt",
       [&] {
         NewReference r = good();
         r.token_ids.clear();
         return ToGrpcStatus(client_->Put(Scope("alice"), r));
       },
       grpc::StatusCode::INVALID_ARGUMENT, ""},
      {"duplicate id",
       [&] {
         return ToGrpcStatus(
             client_->Put(Scope("alice"), testing::SyntheticReference("first", Shape(), 53)));
       },
       grpc::StatusCode::ALREADY_EXISTS, "first"},
      {"fetch from an unknown model",
       [&] {
         absl::Status status;
         FetchAll(client_.get(), ReferenceScope{"alice", "unknown-model"}, "first", {0, 1}, {},
                  &status);
         return ToGrpcStatus(status);
       },
       grpc::StatusCode::NOT_FOUND, ""},
      {"fetch with a source out of range",
       [&] {
         absl::Status status;
         FetchAll(client_.get(), Scope("alice"), "first", {0, 96}, {}, &status);
         return ToGrpcStatus(status);
       },
       grpc::StatusCode::INVALID_ARGUMENT, ""},
      {"no model fingerprint",
       [&] {
         return ToGrpcStatus(client_->List(ReferenceScope{"alice", ""}).status());
       },
       grpc::StatusCode::INVALID_ARGUMENT, "model_fingerprint"},
  };
  for (const Case& c : cases) {
    const grpc::Status status = c.call();
    EXPECT_EQ(status.error_code(), c.code) << c.name << ": " << status.error_message();
    EXPECT_THAT(status.error_message(), HasSubstr(c.message)) << c.name;
    // Still serving, and nothing of the failed call is visible.
    absl::StatusOr<std::vector<ReferenceInfo>> listed = client_->List(Scope("alice"));
    ASSERT_TRUE(listed.ok()) << c.name << ": " << listed.status();
    EXPECT_EQ(listed->size(), 1u) << c.name;
  }
  // An unknown model is a miss (or NotFound), never another model's references.
  const NewReference first = testing::SyntheticReference("first", Shape(), 51);
  absl::StatusOr<FindResult> found =
      client_->FindSimilar(ReferenceScope{"alice", "unknown-model"}, first.codes, first.sketch, 3);
  if (found.ok()) {
    EXPECT_THAT(found->matches, IsEmpty());
  } else {
    EXPECT_TRUE(absl::IsNotFound(found.status())) << found.status();
  }
  ASSERT_TRUE(client_->Put(Scope("alice"), good()).ok());
}

TEST_F(CacheNodeServiceTest, EvictionKeepsTheNodeUnderBudgetUnderSustainedPuts) {
  const testing::SyntheticShape shape = Shape();
  const int64_t reference_bytes = 2 * 3 * 2 * 96 * 16 * 4;  // KV only
  const int64_t capacity = 8 * reference_bytes + reference_bytes / 2;
  StartNode(capacity);
  for (int i = 0; i < 60; ++i) {
    ASSERT_TRUE(client_
                    ->Put(Scope("alice"),
                          testing::SyntheticReference("e" + std::to_string(i), shape, 1000 + i))
                    .ok());
    absl::StatusOr<v1::GetStatsResponse> stats = client_->GetStats("alice");
    ASSERT_TRUE(stats.ok());
    EXPECT_LE(stats->bytes(), stats->capacity_bytes()) << "after put " << i;
    EXPECT_EQ(stats->capacity_bytes(), capacity);
  }
  absl::StatusOr<v1::GetStatsResponse> stats = client_->GetStats("alice");
  EXPECT_GT(stats->tenant().evicted_references(), 0);
  absl::StatusOr<std::vector<ReferenceInfo>> listed = client_->List(Scope("alice"));
  ASSERT_TRUE(listed.ok());
  EXPECT_LT(listed->size(), 60u);
  // The most recent reference survives and is intact.
  const NewReference last = testing::SyntheticReference("e59", shape, 1059);
  std::vector<int32_t> identity;
  for (int32_t t = 0; t < 96; ++t) identity.push_back(t);
  absl::Status status;
  const std::vector<FetchedLayer> layers =
      FetchAll(client_.get(), Scope("alice"), "e59", identity, {}, &status);
  ASSERT_TRUE(status.ok()) << status;
  ExpectLayersEqual({layers[2]}, {testing::ExpectedFetchedLayer(last, 2, identity, identity)});
}

}  // namespace
}  // namespace semshare::cache_node
