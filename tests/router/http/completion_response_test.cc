#include "router/http/completion_response.h"

#include "common/error_code.h"
#include "gtest/gtest.h"
#include "router/http/api_error.h"

namespace semshare::router::http {
namespace {

v1::GenerateStats Stats(int64_t completion_tokens) {
  v1::GenerateStats stats;
  stats.set_cache_hit(true);
  stats.set_reference_id("r1");
  stats.set_similarity(0.91);
  stats.set_recompute_share(0.1);
  stats.set_kv_kept_share(0.5);
  stats.set_ttft_ms(12.5);
  stats.set_latency_ms(40);
  stats.set_prompt_tokens(100);
  stats.set_cached_tokens(90);
  stats.set_completion_tokens(completion_tokens);
  stats.mutable_stages()->set_fetch_ms(3);
  stats.set_worker("10.0.0.1:7000");
  return stats;
}

const CompletionHeader kHeader{"cmpl-1", 1700000000, "austen-5m"};

TEST(CompletionResponseTest, BodyHasOpenAisShapeAndSemsharesFields) {
  const Json body = CompletionBody(kHeader, "Hello", 8, Stats(8));
  EXPECT_EQ(body["id"].string_value(), "cmpl-1");
  EXPECT_EQ(body["object"].string_value(), "text_completion");
  EXPECT_EQ(body["created"].number_value(), 1700000000);
  EXPECT_EQ(body["model"].string_value(), "austen-5m");
  ASSERT_EQ(body["choices"].array_items().size(), 1u);
  const Json& choice = body["choices"].array_items()[0];
  EXPECT_EQ(choice["text"].string_value(), "Hello");
  EXPECT_EQ(choice["index"].number_value(), 0);
  EXPECT_TRUE(choice.contains("logprobs") && choice["logprobs"].is_null());
  EXPECT_EQ(choice["finish_reason"].string_value(), "length");
  EXPECT_EQ(body["usage"]["prompt_tokens"].number_value(), 100);
  EXPECT_EQ(body["usage"]["completion_tokens"].number_value(), 8);
  EXPECT_EQ(body["usage"]["total_tokens"].number_value(), 108);
  EXPECT_EQ(body["usage"]["prompt_tokens_details"]["cached_tokens"].number_value(), 90);
  const Json& semshare = body["semshare"];
  EXPECT_TRUE(semshare["cache_hit"].bool_value());
  EXPECT_EQ(semshare["reference_id"].string_value(), "r1");
  EXPECT_EQ(semshare["similarity"].number_value(), 0.91);
  EXPECT_EQ(semshare["recompute_share"].number_value(), 0.1);
  EXPECT_EQ(semshare["kv_kept_share"].number_value(), 0.5);
  EXPECT_EQ(semshare["ttft_ms"].number_value(), 12.5);
  EXPECT_EQ(semshare["latency_ms"].number_value(), 40);
  EXPECT_EQ(semshare["stages"]["fetch_ms"].number_value(), 3);
  EXPECT_TRUE(semshare["stages"].contains("decode_ms"));
  // Cluster addresses stay inside the cluster.
  EXPECT_EQ(body.Dump().find("10.0.0.1"), std::string::npos);
}

TEST(CompletionResponseTest, FewerTokensThanAskedIsStop) {
  EXPECT_EQ(FinishReason(8, Stats(3)), "stop");
  EXPECT_EQ(FinishReason(8, Stats(8)), "length");
  // The worker's own reason wins: a stop string at the last token is "stop".
  v1::GenerateStats stopped = Stats(8);
  stopped.set_finish_reason("stop");
  EXPECT_EQ(FinishReason(8, stopped), "stop");
}

TEST(CompletionResponseTest, AMissHasNullReference) {
  v1::GenerateStats stats;
  EXPECT_TRUE(SemshareFields(stats)["reference_id"].is_null());
  EXPECT_FALSE(SemshareFields(stats)["cache_hit"].bool_value());
}

TEST(CompletionResponseTest, StreamChunks) {
  const Json text = StreamTextChunk(kHeader, "Hel");
  EXPECT_EQ(text["choices"].array_items()[0]["text"].string_value(), "Hel");
  EXPECT_TRUE(text["choices"].array_items()[0]["finish_reason"].is_null());
  EXPECT_FALSE(text.contains("usage"));
  EXPECT_FALSE(text.contains("semshare"));
  const Json last = StreamFinalChunk(kHeader, 8, Stats(2));
  EXPECT_EQ(last["choices"].array_items()[0]["text"].string_value(), "");
  EXPECT_EQ(last["choices"].array_items()[0]["finish_reason"].string_value(), "stop");
  EXPECT_EQ(last["usage"]["completion_tokens"].number_value(), 2);
  EXPECT_EQ(last["usage"]["prompt_tokens_details"]["cached_tokens"].number_value(), 90);
  EXPECT_TRUE(last["semshare"]["cache_hit"].bool_value());
  EXPECT_EQ(last["id"].string_value(), text["id"].string_value());
}

TEST(CompletionResponseTest, SseEvents) {
  Json data = Json::MakeObject();
  data["a"] = 1;
  EXPECT_EQ(SseEvent(data), "data: {\"a\":1}\n\n");
  EXPECT_STREQ(kSseDone, "data: [DONE]\n\n");
}

TEST(CompletionResponseTest, ModelList) {
  const Json list = ModelList("austen-5m", 5);
  EXPECT_EQ(list["object"].string_value(), "list");
  ASSERT_EQ(list["data"].array_items().size(), 1u);
  EXPECT_EQ(list["data"].array_items()[0]["id"].string_value(), "austen-5m");
  EXPECT_EQ(list["data"].array_items()[0]["object"].string_value(), "model");
  EXPECT_EQ(list["data"].array_items()[0]["created"].number_value(), 5);
}

TEST(ApiErrorTest, StatusesMapToHttpStatuses) {
  EXPECT_EQ(ApiErrorFromStatus(absl::InvalidArgumentError("x")).http_status, 400);
  EXPECT_EQ(ApiErrorFromStatus(absl::UnauthenticatedError("x")).http_status, 401);
  EXPECT_EQ(ApiErrorFromStatus(absl::PermissionDeniedError("x")).http_status, 403);
  EXPECT_EQ(ApiErrorFromStatus(absl::NotFoundError("x")).http_status, 404);
  EXPECT_EQ(ApiErrorFromStatus(absl::ResourceExhaustedError("x")).http_status, 429);
  EXPECT_EQ(ApiErrorFromStatus(absl::UnavailableError("x")).http_status, 503);
  EXPECT_EQ(ApiErrorFromStatus(absl::DeadlineExceededError("x")).http_status, 503);
  EXPECT_EQ(ApiErrorFromStatus(absl::InternalError("x")).http_status, 500);
  EXPECT_EQ(ApiErrorFromStatus(absl::DataLossError("x")).http_status, 500);
  EXPECT_EQ(MethodNotAllowed("GET", "/v1/completions").http_status, 405);
  EXPECT_EQ(RouteNotFound("/nope").http_status, 404);
  EXPECT_EQ(BodyTooLarge(1024).http_status, 413);
}

TEST(ApiErrorTest, TheRoutersErrorCodeBecomesOpenAisCode) {
  absl::Status status = absl::InvalidArgumentError("the prompt's 2040 tokens plus max_tokens 64");
  EXPECT_TRUE(ApiErrorFromStatus(status).code.empty());
  const ApiError error = ApiErrorFromStatus(WithErrorCode(status, kContextLengthExceeded));
  EXPECT_EQ(error.http_status, 400);
  EXPECT_EQ(error.type, "invalid_request_error");
  EXPECT_EQ(error.code, "context_length_exceeded");
  EXPECT_EQ(error.ToJson()["error"]["code"].string_value(), "context_length_exceeded");
}

TEST(ApiErrorTest, OpenAisShape) {
  const Json body = ApiErrorFromStatus(InvalidField("top_p", "'top_p' must be in (0, 1]")).ToJson();
  const Json& error = body["error"];
  EXPECT_EQ(error["message"].string_value(), "'top_p' must be in (0, 1]");
  EXPECT_EQ(error["type"].string_value(), "invalid_request_error");
  EXPECT_EQ(error["param"].string_value(), "top_p");
  EXPECT_TRUE(error.contains("code") && error["code"].is_null());
  const Json limited = ApiErrorFromStatus(absl::ResourceExhaustedError("busy")).ToJson();
  EXPECT_TRUE(limited["error"].contains("param") && limited["error"]["param"].is_null());
  EXPECT_EQ(limited["error"]["code"].string_value(), "rate_limit_exceeded");
}

}  // namespace
}  // namespace semshare::router::http
