// The SDK against an in-process fake router: assembly, streaming, auth header, errors, deadline.
#include "router/client/semshare_client.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "absl/strings/str_cat.h"
#include "common/json.h"
#include "common/rpc/grpc_status.h"
#include "router/client/client_output.h"
#include "tests/router/client/fake_router.h"

namespace semshare::client {
namespace {

using ::testing::ElementsAre;
using testing::FakeRouter;
using ::testing::HasSubstr;
using testing::kTestApiKey;

class SemshareClientTest : public ::testing::Test {
 protected:
  void SetUp() override { router_.Start(); }

  std::unique_ptr<SemshareClient> Connect(const std::string& key = kTestApiKey,
                                          absl::Duration deadline = absl::Seconds(60)) {
    SemshareClient::Options options;
    options.router_address = router_.address();
    options.api_key = key;
    options.deadline = deadline;
    absl::StatusOr<std::unique_ptr<SemshareClient>> client = SemshareClient::Create(options);
    EXPECT_TRUE(client.ok()) << client.status();
    return client.ok() ? *std::move(client) : nullptr;
  }

  FakeRouter router_;
};

TEST_F(SemshareClientTest, BlockingGenerateAssemblesTextTokensAndStats) {
  std::unique_ptr<SemshareClient> client = Connect();
  GenerateOptions options;
  options.max_tokens = 7;
  options.similarity_threshold = 0.8;
  options.seed = 9;
  absl::StatusOr<GenerateResult> result = client->Generate("why is the sky blue?", options);
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->text, "The sky is blue because of Rayleigh.");
  EXPECT_THAT(result->token_ids, ElementsAre(101, 102, 103, 104, 105, 106));
  const GenerateStats& stats = result->stats;
  EXPECT_TRUE(stats.cache_hit);
  EXPECT_EQ(stats.reference_id, "ref-42");
  EXPECT_DOUBLE_EQ(stats.similarity, 0.93);
  EXPECT_DOUBLE_EQ(stats.recompute_share, 0.2);
  EXPECT_DOUBLE_EQ(stats.kv_kept_share, 0.6);
  EXPECT_DOUBLE_EQ(stats.ttft_ms, 12.5);
  EXPECT_DOUBLE_EQ(stats.latency_ms, 40.25);
  EXPECT_EQ(stats.prompt_tokens, 17);
  EXPECT_EQ(stats.completion_tokens, 6);
  EXPECT_DOUBLE_EQ(stats.stages.tokenize_ms, 0.5);
  EXPECT_DOUBLE_EQ(stats.stages.search_ms, 1.5);
  EXPECT_DOUBLE_EQ(stats.stages.fetch_ms, 2.5);
  EXPECT_DOUBLE_EQ(stats.stages.recompute_ms, 3.5);
  EXPECT_DOUBLE_EQ(stats.stages.decode_ms, 4.5);
  EXPECT_EQ(stats.worker, "127.0.0.1:9001");
  EXPECT_EQ(stats.shard, "127.0.0.1:9101");
  EXPECT_TRUE(stats.worker_local_hit);

  const std::optional<v1::GenerateRequest> request = router_.last_request();
  ASSERT_TRUE(request.has_value());
  EXPECT_EQ(request->prompt(), "why is the sky blue?");
  EXPECT_EQ(request->max_tokens(), 7);
  ASSERT_TRUE(request->has_similarity_threshold());
  EXPECT_DOUBLE_EQ(request->similarity_threshold(), 0.8);
  EXPECT_EQ(request->seed(), 9u);
  EXPECT_DOUBLE_EQ(request->top_p(), 1.0);
}

TEST_F(SemshareClientTest, UnsetThresholdLeavesItToTheRouter) {
  std::unique_ptr<SemshareClient> client = Connect();
  ASSERT_TRUE(client->Generate("p", GenerateOptions()).ok());
  ASSERT_TRUE(router_.last_request().has_value());
  EXPECT_FALSE(router_.last_request()->has_similarity_threshold());
}

TEST_F(SemshareClientTest, StreamingGenerateDeliversChunksInOrderAndTheSameResult) {
  std::unique_ptr<SemshareClient> client = Connect();
  std::vector<std::string> texts;
  std::vector<int32_t> ids;
  absl::StatusOr<GenerateResult> streamed =
      client->Generate("why is the sky blue?", GenerateOptions(), [&](const GenerateChunk& chunk) {
        texts.push_back(chunk.text);
        ids.insert(ids.end(), chunk.token_ids.begin(), chunk.token_ids.end());
        return absl::OkStatus();
      });
  ASSERT_TRUE(streamed.ok()) << streamed.status();
  EXPECT_THAT(texts, ElementsAre("The sky ", "is blue ", "because of Rayleigh."));
  EXPECT_EQ(ids, streamed->token_ids);
  absl::StatusOr<GenerateResult> blocking =
      client->Generate("why is the sky blue?", GenerateOptions());
  ASSERT_TRUE(blocking.ok()) << blocking.status();
  EXPECT_EQ(GenerateResultToJson(*streamed).Dump(), GenerateResultToJson(*blocking).Dump());
}

TEST_F(SemshareClientTest, ChunksArriveBeforeTheStreamEnds) {
  // The router holds the rest of the stream until the first chunk has reached the callback: a
  // client that buffered the whole stream would never see it (and would fail on the deadline).
  router_.HoldAfterFirstChunk();
  std::unique_ptr<SemshareClient> client = Connect();
  std::vector<std::string> texts;
  absl::StatusOr<GenerateResult> result =
      client->Generate("p", GenerateOptions(), [&](const GenerateChunk& chunk) {
        if (texts.empty()) router_.Release();
        texts.push_back(chunk.text);
        return absl::OkStatus();
      });
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(texts.size(), 3u);
  EXPECT_EQ(result->text, "The sky is blue because of Rayleigh.");
}

TEST_F(SemshareClientTest, CallbackErrorCancelsTheCallAndIsReturned) {
  std::unique_ptr<SemshareClient> client = Connect();
  int calls = 0;
  absl::StatusOr<GenerateResult> result =
      client->Generate("p", GenerateOptions(), [&](const GenerateChunk&) {
        ++calls;
        return absl::AbortedError("reader went away");
      });
  EXPECT_EQ(calls, 1);
  EXPECT_TRUE(absl::IsAborted(result.status())) << result.status();
  EXPECT_THAT(result.status().message(), HasSubstr("reader went away"));
}

TEST_F(SemshareClientTest, ApiKeyTravelsAsBearerAuthorization) {
  std::unique_ptr<SemshareClient> client = Connect();
  ASSERT_TRUE(client->Generate("p", GenerateOptions()).ok());
  ASSERT_TRUE(client->Stats().ok());
  EXPECT_THAT(router_.authorizations(), ElementsAre(absl::StrCat("Bearer ", kTestApiKey),
                                                    absl::StrCat("Bearer ", kTestApiKey)));
}

TEST_F(SemshareClientTest, RefusedKeyIsUnauthenticatedWithTheRoutersMessage) {
  std::unique_ptr<SemshareClient> client = Connect("sk-wrong");
  absl::StatusOr<GenerateResult> result = client->Generate("p", GenerateOptions());
  EXPECT_TRUE(absl::IsUnauthenticated(result.status())) << result.status();
  EXPECT_EQ(result.status().message(), "unknown API key");
  absl::StatusOr<RouterStats> stats = client->Stats();
  EXPECT_TRUE(absl::IsUnauthenticated(stats.status())) << stats.status();
  EXPECT_THAT(router_.authorizations(), ElementsAre("Bearer sk-wrong", "Bearer sk-wrong"));
}

TEST_F(SemshareClientTest, RouterErrorsKeepTheirCodeAndMessage) {
  router_.FailWith(grpc::Status(grpc::StatusCode::UNAVAILABLE, "no healthy worker"));
  std::unique_ptr<SemshareClient> client = Connect();
  absl::StatusOr<GenerateResult> result = client->Generate("p", GenerateOptions());
  EXPECT_TRUE(absl::IsUnavailable(result.status())) << result.status();
  EXPECT_EQ(result.status().message(), "no healthy worker");
  router_.FailWith(grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED, "queue full"));
  absl::StatusOr<RouterStats> stats = client->Stats();
  EXPECT_TRUE(absl::IsResourceExhausted(stats.status())) << stats.status();
  EXPECT_EQ(stats.status().message(), "queue full");
}

TEST_F(SemshareClientTest, ARefusalsErrorCodeReachesTheCaller) {
  router_.FailWith(ToGrpcStatus(WithErrorCode(
      absl::InvalidArgumentError("the prompt has 9000 tokens"), kContextLengthExceeded)));
  std::unique_ptr<SemshareClient> client = Connect();
  absl::StatusOr<GenerateResult> result = client->Generate("p", GenerateOptions());
  EXPECT_TRUE(absl::IsInvalidArgument(result.status())) << result.status();
  EXPECT_EQ(result.status().message(), "the prompt has 9000 tokens");
  EXPECT_EQ(ErrorCode(result.status()), kContextLengthExceeded);
  // A plain error has none.
  router_.FailWith(grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "bad"));
  result = client->Generate("p", GenerateOptions());
  EXPECT_TRUE(absl::IsInvalidArgument(result.status())) << result.status();
  EXPECT_EQ(ErrorCode(result.status()), std::nullopt);
}

TEST(SemshareClientNoServerTest, UnreachableRouterIsUnavailable) {
  // A port that was just free: bind a server, learn its port, shut it down.
  std::string address;
  {
    FakeRouter gone;
    gone.Start();
    address = gone.address();
  }
  SemshareClient::Options options;
  options.router_address = address;
  options.api_key = kTestApiKey;
  absl::StatusOr<std::unique_ptr<SemshareClient>> client = SemshareClient::Create(options);
  ASSERT_TRUE(client.ok()) << client.status();
  absl::StatusOr<GenerateResult> result = (*client)->Generate("p", GenerateOptions());
  EXPECT_TRUE(absl::IsUnavailable(result.status())) << result.status();
  EXPECT_FALSE(result.status().message().empty());
}

TEST_F(SemshareClientTest, DeadlineIsHonoured) {
  router_.HoldGenerate();
  std::unique_ptr<SemshareClient> client = Connect(kTestApiKey, absl::Milliseconds(200));
  absl::StatusOr<GenerateResult> result = client->Generate("p", GenerateOptions());
  router_.Release();
  EXPECT_TRUE(absl::IsDeadlineExceeded(result.status())) << result.status();
}

TEST_F(SemshareClientTest, StreamWithoutStatsIsAnError) {
  router_.send_stats = false;
  std::unique_ptr<SemshareClient> client = Connect();
  absl::StatusOr<GenerateResult> result = client->Generate("p", GenerateOptions());
  EXPECT_TRUE(absl::IsInternal(result.status())) << result.status();
  EXPECT_THAT(result.status().message(), HasSubstr("without stats"));
}

TEST_F(SemshareClientTest, StatsCarriesCountersShardsAndWorkers) {
  std::unique_ptr<SemshareClient> client = Connect();
  absl::StatusOr<RouterStats> stats = client->Stats();
  ASSERT_TRUE(stats.ok()) << stats.status();
  EXPECT_EQ(stats->requests, 5);
  EXPECT_EQ(stats->hits, 3);
  EXPECT_EQ(stats->misses, 2);
  EXPECT_EQ(stats->failures, 0);
  ASSERT_EQ(stats->shards.size(), 1u);
  EXPECT_EQ(stats->shards[0].address, "127.0.0.1:9101");
  EXPECT_TRUE(stats->shards[0].healthy);
  EXPECT_EQ(stats->shards[0].references, 3);
  EXPECT_EQ(stats->shards[0].bytes, 4096);
  ASSERT_EQ(stats->workers.size(), 1u);
  EXPECT_FALSE(stats->workers[0].healthy);
  EXPECT_EQ(stats->workers[0].active_requests, 1);
  EXPECT_EQ(stats->workers[0].queued_requests, 2);
}

TEST(SemshareClientCreateTest, RejectsBadOptions) {
  SemshareClient::Options options;
  options.api_key = "k";
  EXPECT_TRUE(absl::IsInvalidArgument(SemshareClient::Create(options).status()));
  options.router_address = "127.0.0.1:1";
  options.api_key = "";
  EXPECT_TRUE(absl::IsInvalidArgument(SemshareClient::Create(options).status()));
  options.api_key = "k";
  options.deadline = absl::ZeroDuration();
  EXPECT_TRUE(absl::IsInvalidArgument(SemshareClient::Create(options).status()));
}

TEST_F(SemshareClientTest, BadGenerateOptionsFailBeforeTheCall) {
  std::unique_ptr<SemshareClient> client = Connect();
  GenerateOptions options;
  options.max_tokens = 0;
  EXPECT_TRUE(absl::IsInvalidArgument(client->Generate("p", options).status()));
  options.max_tokens = 4;
  options.similarity_threshold = 1.5;
  EXPECT_TRUE(absl::IsInvalidArgument(client->Generate("p", options).status()));
  EXPECT_TRUE(router_.authorizations().empty());
}

// Protobuf strings must be UTF-8: a prompt that is not (a Latin-1 file, say) is refused here
// with the offset of its first bad byte, instead of failing to parse on the router.
TEST_F(SemshareClientTest, PromptThatIsNotUtf8FailsBeforeTheCall) {
  std::unique_ptr<SemshareClient> client = Connect();
  const absl::Status status =
      client->Generate("Mansfield Park, caf\xe9", GenerateOptions()).status();
  EXPECT_TRUE(absl::IsInvalidArgument(status)) << status;
  EXPECT_THAT(std::string(status.message()), HasSubstr("not valid UTF-8 (byte 19)"));
  EXPECT_TRUE(router_.authorizations().empty());
  EXPECT_TRUE(client->Generate("Mansfield Park, caf\xc3\xa9", GenerateOptions()).ok());
}

TEST(ClientOutputTest, JsonHasEveryStat) {
  GenerateResult result;
  result.text = "hi";
  result.token_ids = {1, 2};
  result.stats.cache_hit = true;
  result.stats.stages.fetch_ms = 2.5;
  absl::StatusOr<Json> json = ParseJson(GenerateResultToJson(result).Dump());
  ASSERT_TRUE(json.ok()) << json.status();
  EXPECT_EQ((*json)["text"].string_value(), "hi");
  EXPECT_EQ((*json)["token_ids"].array_items().size(), 2u);
  for (const char* key : {"cache_hit", "reference_id", "similarity", "recompute_share",
                          "kv_kept_share", "ttft_ms", "latency_ms", "prompt_tokens",
                          "completion_tokens", "stages", "worker", "shard", "worker_local_hit"}) {
    EXPECT_TRUE((*json)["stats"].contains(key)) << key;
  }
  for (const char* key : {"tokenize_ms", "search_ms", "fetch_ms", "recompute_ms", "decode_ms"}) {
    EXPECT_TRUE((*json)["stats"]["stages"].contains(key)) << key;
  }
  EXPECT_DOUBLE_EQ((*json)["stats"]["stages"]["fetch_ms"].number_value(), 2.5);
  EXPECT_THAT(FormatGenerateStats(result.stats), HasSubstr("cache hit"));
}

}  // namespace
}  // namespace semshare::client
