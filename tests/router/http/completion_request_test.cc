#include "router/http/completion_request.h"

#include <random>
#include <string>

#include "common/utf8.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "router/http/api_error.h"
#include "tests/common/corrupt_bytes.h"

namespace semshare::router::http {
namespace {

using ::testing::HasSubstr;

constexpr char kModel[] = "austen-5m";

absl::StatusOr<CompletionRequest> Parse(const std::string& body) {
  return ParseCompletionRequest(body, kModel);
}

// The request field an error names ("param" of the OpenAI error).
std::string ParamOf(const std::string& body) {
  absl::StatusOr<CompletionRequest> request = Parse(body);
  EXPECT_FALSE(request.ok()) << body;
  return request.ok() ? "" : ApiErrorFromStatus(request.status()).param;
}

TEST(CompletionRequestTest, DefaultsFollowOpenAi) {
  absl::StatusOr<CompletionRequest> request = Parse(R"({"model": "austen-5m", "prompt": "Hello"})");
  ASSERT_TRUE(request.ok()) << request.status();
  EXPECT_EQ(request->model, kModel);
  EXPECT_FALSE(request->stream);
  EXPECT_EQ(request->generate.prompt(), "Hello");
  EXPECT_EQ(request->generate.max_tokens(), 16);
  EXPECT_EQ(request->generate.temperature(), 1.0);
  EXPECT_EQ(request->generate.top_p(), 1.0);
  EXPECT_EQ(request->generate.seed(), 0u);
  EXPECT_FALSE(request->generate.has_similarity_threshold());
}

TEST(CompletionRequestTest, ReadsEveryField) {
  absl::StatusOr<CompletionRequest> request = Parse(
      R"({"model": "austen-5m", "prompt": ["Hello"], "max_tokens": 7, "temperature": 0, "top_p": 0.5,
          "seed": 42, "stream": true, "semshare_similarity_threshold": 0.6, "user": "u1", "n": 1,
          "stop": null, "logprobs": null, "echo": false, "presence_penalty": 0, "logit_bias": {},
          "stream_options": {"include_usage": true}})");
  ASSERT_TRUE(request.ok()) << request.status();
  EXPECT_TRUE(request->stream);
  EXPECT_EQ(request->generate.prompt(), "Hello");
  EXPECT_EQ(request->generate.max_tokens(), 7);
  EXPECT_EQ(request->generate.temperature(), 0.0);
  EXPECT_EQ(request->generate.top_p(), 0.5);
  EXPECT_EQ(request->generate.seed(), 42u);
  ASSERT_TRUE(request->generate.has_similarity_threshold());
  EXPECT_EQ(request->generate.similarity_threshold(), 0.6);
}

TEST(CompletionRequestTest, ThresholdMayComeUnderSemshare) {
  absl::StatusOr<CompletionRequest> request =
      Parse(R"({"model": "austen-5m", "prompt": "x", "semshare": {"similarity_threshold": 0.9}})");
  ASSERT_TRUE(request.ok()) << request.status();
  EXPECT_EQ(request->generate.similarity_threshold(), 0.9);
  EXPECT_EQ(
      ParamOf(R"({"model": "austen-5m", "prompt": "x", "semshare": {"similarity_threshold": 2}})"),
      "semshare.similarity_threshold");
  EXPECT_EQ(ParamOf(R"({"model": "austen-5m", "prompt": "x", "semshare_similarity_threshold": 0.5,
                        "semshare": {"similarity_threshold": 0.5}})"),
            "semshare_similarity_threshold");
  EXPECT_EQ(ParamOf(R"({"model": "austen-5m", "prompt": "x", "semshare": 3})"), "semshare");
}

TEST(CompletionRequestTest, TokenIdsArePromptTokenIds) {
  absl::StatusOr<CompletionRequest> request =
      Parse(R"({"model": "austen-5m", "prompt": [1, 5, 9]})");
  ASSERT_TRUE(request.ok()) << request.status();
  EXPECT_TRUE(request->generate.prompt().empty());
  EXPECT_THAT(request->generate.prompt_token_ids(), ::testing::ElementsAre(1, 5, 9));
}

TEST(CompletionRequestTest, MalformedBodiesAreInvalidArgument) {
  for (const char* body : {"", "{", "[1]", "\"x\"", R"({"model": "austen-5m", "prompt": "x",})"}) {
    absl::StatusOr<CompletionRequest> request = Parse(body);
    ASSERT_FALSE(request.ok()) << body;
    EXPECT_EQ(request.status().code(), absl::StatusCode::kInvalidArgument) << body;
    EXPECT_EQ(ApiErrorFromStatus(request.status()).http_status, 400);
  }
  EXPECT_THAT(std::string(Parse("{").status().message()), HasSubstr("not valid JSON"));
}

TEST(CompletionRequestTest, BadFieldsNameTheField) {
  EXPECT_EQ(ParamOf(R"({"prompt": "x"})"), "model");
  EXPECT_EQ(ParamOf(R"({"model": 3, "prompt": "x"})"), "model");
  EXPECT_EQ(ParamOf(R"({"model": "austen-5m"})"), "prompt");
  EXPECT_EQ(ParamOf(R"({"model": "austen-5m", "prompt": ""})"), "prompt");
  EXPECT_EQ(ParamOf(R"({"model": "austen-5m", "prompt": []})"), "prompt");
  EXPECT_EQ(ParamOf(R"({"model": "austen-5m", "prompt": ["a", "b"]})"), "prompt");
  EXPECT_EQ(ParamOf(R"({"model": "austen-5m", "prompt": [1, -2]})"), "prompt");
  EXPECT_EQ(ParamOf(R"({"model": "austen-5m", "prompt": {"text": "x"}})"), "prompt");
  EXPECT_EQ(ParamOf(R"({"model": "austen-5m", "prompt": "x", "max_tokens": 0})"), "max_tokens");
  EXPECT_EQ(ParamOf(R"({"model": "austen-5m", "prompt": "x", "max_tokens": 2.5})"), "max_tokens");
  EXPECT_EQ(ParamOf(R"({"model": "austen-5m", "prompt": "x", "max_tokens": "8"})"), "max_tokens");
  EXPECT_EQ(ParamOf(R"({"model": "austen-5m", "prompt": "x", "temperature": 2.5})"), "temperature");
  EXPECT_EQ(ParamOf(R"({"model": "austen-5m", "prompt": "x", "top_p": 0})"), "top_p");
  EXPECT_EQ(ParamOf(R"({"model": "austen-5m", "prompt": "x", "seed": -1})"), "seed");
  EXPECT_EQ(ParamOf(R"({"model": "austen-5m", "prompt": "x", "stream": "yes"})"), "stream");
}

TEST(CompletionRequestTest, FieldsThatWouldChangeTheAnswerAreRejected) {
  EXPECT_EQ(ParamOf(R"({"model": "austen-5m", "prompt": "x", "n": 2})"), "n");
  EXPECT_EQ(ParamOf(R"({"model": "austen-5m", "prompt": "x", "best_of": 3})"), "best_of");
  EXPECT_EQ(ParamOf(R"({"model": "austen-5m", "prompt": "x", "echo": true})"), "echo");
  EXPECT_EQ(ParamOf(R"({"model": "austen-5m", "prompt": "x", "logprobs": 2})"), "logprobs");
  EXPECT_EQ(ParamOf(R"({"model": "austen-5m", "prompt": "x", "suffix": "y"})"), "suffix");
  EXPECT_EQ(ParamOf(R"({"model": "austen-5m", "prompt": "x", "logit_bias": {"50256": -100}})"),
            "logit_bias");
  EXPECT_EQ(ParamOf(R"({"model": "austen-5m", "prompt": "x", "presence_penalty": 0.5})"),
            "presence_penalty");
  EXPECT_EQ(ParamOf(R"({"model": "austen-5m", "prompt": "x", "frequency_penalty": 1})"),
            "frequency_penalty");
}

TEST(CompletionRequestTest, StopIsAStringOrUpToFourAndStopTokenIdsAreIds) {
  CompletionRequest one = Parse(R"({"model": "austen-5m", "prompt": "x", "stop": "\n"})").value();
  EXPECT_THAT(one.generate.stop(), ::testing::ElementsAre("\n"));
  CompletionRequest four = Parse(R"({"model": "austen-5m", "prompt": "x",
                                     "stop": [".", "ab", "\u00e9", "x y"],
                                     "stop_token_ids": [0, 17]})")
                               .value();
  EXPECT_THAT(four.generate.stop(), ::testing::ElementsAre(".", "ab", "\xc3\xa9", "x y"));
  EXPECT_THAT(four.generate.stop_token_ids(), ::testing::ElementsAre(0, 17));
  EXPECT_TRUE(
      Parse(R"({"model": "austen-5m", "prompt": "x", "stop": []})")->generate.stop().empty());
  EXPECT_TRUE(
      Parse(R"({"model": "austen-5m", "prompt": "x", "stop": null})")->generate.stop().empty());

  EXPECT_EQ(ParamOf(R"({"model": "austen-5m", "prompt": "x", "stop": ["a", "b", "c", "d", "e"]})"),
            "stop");
  EXPECT_EQ(ParamOf(R"({"model": "austen-5m", "prompt": "x", "stop": ""})"), "stop");
  EXPECT_EQ(ParamOf(R"({"model": "austen-5m", "prompt": "x", "stop": ["a", ""]})"), "stop");
  EXPECT_EQ(ParamOf(R"({"model": "austen-5m", "prompt": "x", "stop": 3})"), "stop");
  EXPECT_EQ(ParamOf(R"({"model": "austen-5m", "prompt": "x", "stop": [1]})"), "stop");
  EXPECT_EQ(ParamOf(R"({"model": "austen-5m", "prompt": "x", "stop_token_ids": 3})"),
            "stop_token_ids");
  EXPECT_EQ(ParamOf(R"({"model": "austen-5m", "prompt": "x", "stop_token_ids": [-1]})"),
            "stop_token_ids");
  EXPECT_EQ(ParamOf(R"({"model": "austen-5m", "prompt": "x", "stop_token_ids": [1.5]})"),
            "stop_token_ids");
}

TEST(CompletionRequestTest, AnotherModelIsNotFound) {
  absl::StatusOr<CompletionRequest> request = Parse(R"({"model": "gpt-4", "prompt": "x"})");
  ASSERT_FALSE(request.ok());
  const ApiError error = ApiErrorFromStatus(request.status());
  EXPECT_EQ(error.http_status, 404);
  EXPECT_THAT(error.message, HasSubstr("gpt-4"));
  EXPECT_THAT(error.message, HasSubstr(kModel));
}

// Random bytes overwritten anywhere in a request body that uses every accepted field: each
// parse either refuses with a 400 or 404 that says why, or gives a request within the ranges
// the router relies on (the prompt valid UTF-8, as protobuf requires of a string field).
// A refusal's message is UTF-8 too.
TEST(CompletionRequestTest, CorruptedBodiesNeverCrash) {
  const std::string body =
      R"({"model": "austen-5m", "prompt": ["It is a truth, caf\u00e9 \u20ac"], "max_tokens": 12, )"
      R"("temperature": 0.7, "top_p": 0.9, "seed": 42, "stream": false, "n": 1, )"
      R"("semshare": {"similarity_threshold": 0.8}, "user": "u1", "stop": ["\n\n", "Mr. \u00e9"], )"
      R"("stop_token_ids": [2]})";
  ASSERT_TRUE(Parse(body).ok());
  std::mt19937 rng(11);
  int refused = 0;
  int accepted = 0;
  for (int trial = 0; trial < 2000; ++trial) {
    std::string corrupted = body;
    CorruptBytes(trial, corrupted.size(), &rng, &corrupted);
    absl::StatusOr<CompletionRequest> request = Parse(corrupted);
    if (!request.ok()) {
      ++refused;
      const ApiError error = ApiErrorFromStatus(request.status());
      EXPECT_TRUE(error.http_status == 400 || error.http_status == 404) << corrupted;
      EXPECT_FALSE(error.message.empty()) << corrupted;
      // The message goes out in a JSON error body, so it must be UTF-8 whatever came in.
      EXPECT_EQ(FindInvalidUtf8(error.message), absl::string_view::npos) << corrupted;
      continue;
    }
    ++accepted;
    const v1::GenerateRequest& generate = request->generate;
    EXPECT_EQ(request->model, kModel);
    EXPECT_NE(generate.prompt().empty(), generate.prompt_token_ids().empty()) << corrupted;
    EXPECT_EQ(FindInvalidUtf8(generate.prompt()), absl::string_view::npos) << corrupted;
    EXPECT_GE(generate.max_tokens(), 1);
    EXPECT_TRUE(generate.temperature() >= 0 && generate.temperature() <= 2) << corrupted;
    EXPECT_TRUE(generate.top_p() > 0 && generate.top_p() <= 1) << corrupted;
    EXPECT_LE(generate.stop_size(), 4) << corrupted;
    for (const std::string& stop : generate.stop()) {
      EXPECT_FALSE(stop.empty()) << corrupted;
      EXPECT_EQ(FindInvalidUtf8(stop), absl::string_view::npos) << corrupted;
    }
    for (int32_t id : generate.stop_token_ids()) EXPECT_GE(id, 0) << corrupted;
    if (generate.has_similarity_threshold()) {
      EXPECT_TRUE(generate.similarity_threshold() >= 0 && generate.similarity_threshold() <= 1)
          << corrupted;
    }
  }
  // Both outcomes are common: a byte in the prompt or the user usually keeps a valid request.
  EXPECT_GT(refused, 500);
  EXPECT_GT(accepted, 200);
}

}  // namespace
}  // namespace semshare::router::http
