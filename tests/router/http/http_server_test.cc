// The HTTP front over a fake backend, as a real civetweb server on loopback port 0, called
// through plain sockets so every byte of the HTTP exchange is visible.
#include "router/http/http_server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "common/json.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace semshare::router::http {
namespace {

using ::testing::HasSubstr;

constexpr char kKey[] = "sk-test-key-0123456789";
constexpr char kModel[] = "austen-5m";
constexpr int kEndlessLimit = 1000000;  // bounds the endless backend if a disconnect went unseen

class FakeBackend final : public CompletionBackend {
 public:
  absl::StatusOr<v1::GenerateStats> Generate(
      const std::string& tenant, const v1::GenerateRequest& request,
      const std::function<bool(const v1::TokenChunk&)>& on_tokens) override {
    {
      absl::MutexLock lock(&mutex_);
      tenants_.push_back(tenant);
      requests_.push_back(request);
    }
    if (!failure.ok()) return failure;
    v1::GenerateStats stats;
    stats.set_prompt_tokens(3);
    stats.set_cache_hit(true);
    stats.set_reference_id("r1");
    stats.set_similarity(0.9);
    stats.set_ttft_ms(1);
    stats.set_latency_ms(2);
    v1::TokenChunk chunk;
    if (endless) {
      chunk.set_text("x");
      for (int i = 0; i < kEndlessLimit; ++i) {
        if (!on_tokens(chunk)) {
          stopped_by_client.Notify();
          return absl::CancelledError("the client went away");
        }
      }
      return stats;
    }
    for (const std::string& text : chunks) {
      chunk.set_text(text);
      chunk.add_token_ids(7);
      if (!on_tokens(chunk)) return absl::CancelledError("the client went away");
      stats.set_completion_tokens(stats.completion_tokens() + 1);
      if (!failure_after_tokens.ok()) return failure_after_tokens;
    }
    return stats;
  }

  absl::Status Ready() override { return ready; }

  std::vector<std::string> tenants() {
    absl::MutexLock lock(&mutex_);
    return tenants_;
  }
  std::vector<v1::GenerateRequest> requests() {
    absl::MutexLock lock(&mutex_);
    return requests_;
  }

  // Set before requests are sent.
  std::vector<std::string> chunks = {"Hello", ", ", "world"};
  absl::Status failure;
  absl::Status failure_after_tokens;
  absl::Status ready;
  bool endless = false;
  absl::Notification stopped_by_client;

 private:
  absl::Mutex mutex_;
  std::vector<std::string> tenants_ ABSL_GUARDED_BY(mutex_);
  std::vector<v1::GenerateRequest> requests_ ABSL_GUARDED_BY(mutex_);
};

struct Reply {
  int status = 0;
  std::map<std::string, std::string> headers;  // names in lower case
  std::string body;                            // de-chunked
};

int Connect(int port) {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address = {};
  address.sin_family = AF_INET;
  address.sin_port = htons(static_cast<uint16_t>(port));
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  EXPECT_EQ(connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)), 0);
  return fd;
}

void SendAll(int fd, const std::string& data) {
  size_t sent = 0;
  while (sent < data.size()) {
    const ssize_t n = send(fd, data.data() + sent, data.size() - sent, MSG_NOSIGNAL);
    if (n <= 0) return;  // the server may answer (413) and close before reading everything
    sent += static_cast<size_t>(n);
  }
}

std::string Dechunk(const std::string& body) {
  std::string out;
  size_t at = 0;
  while (at < body.size()) {
    const size_t line_end = body.find("\r\n", at);
    if (line_end == std::string::npos) break;
    size_t length = 0;
    if (!absl::SimpleHexAtoi(body.substr(at, line_end - at), &length) || length == 0) break;
    out += body.substr(line_end + 2, length);
    at = line_end + 2 + length + 2;
  }
  return out;
}

Reply Exchange(int port, const std::string& method, const std::string& path,
               const std::string& body,
               const std::string& authorization = absl::StrCat("Bearer ", kKey)) {
  const int fd = Connect(port);
  std::string request =
      absl::StrCat(method, " ", path, " HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n");
  if (!authorization.empty()) absl::StrAppend(&request, "Authorization: ", authorization, "\r\n");
  if (method == "POST") {
    absl::StrAppend(&request, "Content-Type: application/json\r\nContent-Length: ", body.size(),
                    "\r\n");
  }
  absl::StrAppend(&request, "\r\n", body);
  SendAll(fd, request);
  std::string raw;
  char buffer[65536];
  ssize_t n;
  while ((n = recv(fd, buffer, sizeof(buffer), 0)) > 0) raw.append(buffer, static_cast<size_t>(n));
  close(fd);

  Reply reply;
  const size_t head_end = raw.find("\r\n\r\n");
  if (head_end == std::string::npos) return reply;
  std::vector<std::string> lines = absl::StrSplit(raw.substr(0, head_end), "\r\n");
  std::vector<std::string> status_line = absl::StrSplit(lines[0], ' ');
  if (status_line.size() >= 2) (void)absl::SimpleAtoi(status_line[1], &reply.status);
  for (size_t i = 1; i < lines.size(); ++i) {
    const size_t colon = lines[i].find(':');
    if (colon == std::string::npos) continue;
    reply.headers[absl::AsciiStrToLower(lines[i].substr(0, colon))] =
        std::string(absl::StripAsciiWhitespace(lines[i].substr(colon + 1)));
  }
  reply.body = raw.substr(head_end + 4);
  if (reply.headers["transfer-encoding"] == "chunked") reply.body = Dechunk(reply.body);
  return reply;
}

Json BodyJson(const Reply& reply) {
  absl::StatusOr<Json> json = ParseJson(reply.body);
  EXPECT_TRUE(json.ok()) << reply.body;
  return json.value_or(Json());
}

// The data of each server-sent event.
std::vector<std::string> Events(const std::string& body) {
  std::vector<std::string> events;
  for (absl::string_view event : absl::StrSplit(body, "\n\n", absl::SkipEmpty())) {
    EXPECT_TRUE(absl::StartsWith(event, "data: ")) << event;
    events.emplace_back(event.substr(6));
  }
  return events;
}

class HttpServerTest : public ::testing::Test {
 protected:
  void SetUp() override { Start(HttpServerOptions{"127.0.0.1:0", kModel}); }

  void Start(HttpServerOptions options) {
    server_.reset();
    absl::StatusOr<ApiKeys> keys = ApiKeys::Parse(absl::StrCat(kKey, " tenant-a 0\n"), "test");
    ASSERT_TRUE(keys.ok()) << keys.status();
    keys_ = std::make_unique<ApiKeys>(*std::move(keys));
    absl::StatusOr<std::unique_ptr<HttpServer>> server =
        HttpServer::Start(&backend_, keys_.get(), options);
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = *std::move(server);
    ASSERT_GT(server_->port(), 0);
  }

  int port() const { return server_->port(); }

  FakeBackend backend_;
  std::unique_ptr<ApiKeys> keys_;
  std::unique_ptr<HttpServer> server_;
};

TEST_F(HttpServerTest, CompletionJoinsTheChunksAndCarriesTheTenantFromTheKey) {
  const Reply reply = Exchange(port(), "POST", "/v1/completions",
                               R"({"model": "austen-5m", "prompt": "Hi", "max_tokens": 3, "seed": 5,
                                   "semshare": {"similarity_threshold": 0.7}})");
  ASSERT_EQ(reply.status, 200) << reply.body;
  EXPECT_EQ(reply.headers.at("content-type"), "application/json");
  const Json body = BodyJson(reply);
  EXPECT_EQ(body["choices"].array_items()[0]["text"].string_value(), "Hello, world");
  EXPECT_EQ(body["choices"].array_items()[0]["finish_reason"].string_value(), "length");
  EXPECT_EQ(body["usage"]["total_tokens"].number_value(), 6);
  EXPECT_TRUE(body["semshare"]["cache_hit"].bool_value());
  EXPECT_EQ(backend_.tenants(), std::vector<std::string>{"tenant-a"});
  const v1::GenerateRequest request = backend_.requests().at(0);
  EXPECT_EQ(request.prompt(), "Hi");
  EXPECT_EQ(request.max_tokens(), 3);
  EXPECT_EQ(request.seed(), 5u);
  EXPECT_EQ(request.similarity_threshold(), 0.7);
}

TEST_F(HttpServerTest, StreamSendsChunksThenStatsThenDone) {
  const Reply reply = Exchange(port(), "POST", "/v1/completions",
                               R"({"model": "austen-5m", "prompt": "Hi", "stream": true})");
  ASSERT_EQ(reply.status, 200) << reply.body;
  EXPECT_EQ(reply.headers.at("content-type"), "text/event-stream");
  const std::vector<std::string> events = Events(reply.body);
  ASSERT_EQ(events.size(), 5u) << reply.body;
  std::string text;
  for (size_t i = 0; i < 3; ++i) {
    const Json chunk = ParseJson(events[i]).value();
    EXPECT_TRUE(chunk["choices"].array_items()[0]["finish_reason"].is_null());
    text += chunk["choices"].array_items()[0]["text"].string_value();
  }
  EXPECT_EQ(text, "Hello, world");
  const Json last = ParseJson(events[3]).value();
  EXPECT_EQ(last["choices"].array_items()[0]["finish_reason"].string_value(), "stop");  // 3 of 16
  EXPECT_EQ(last["usage"]["completion_tokens"].number_value(), 3);
  EXPECT_EQ(last["semshare"]["reference_id"].string_value(), "r1");
  EXPECT_EQ(events[4], "[DONE]");
}

TEST_F(HttpServerTest, AStreamRefusedBeforeAnyTokenKeepsItsHttpStatus) {
  backend_.failure = absl::ResourceExhaustedError("the cluster is busy");
  const Reply reply = Exchange(port(), "POST", "/v1/completions",
                               R"({"model": "austen-5m", "prompt": "Hi", "stream": true})");
  EXPECT_EQ(reply.status, 429);
  EXPECT_EQ(BodyJson(reply)["error"]["type"].string_value(), "rate_limit_error");
}

TEST_F(HttpServerTest, AStreamFailingAfterTokensEndsWithAnErrorEvent) {
  backend_.failure_after_tokens = absl::InternalError("worker lost");
  const Reply reply = Exchange(port(), "POST", "/v1/completions",
                               R"({"model": "austen-5m", "prompt": "Hi", "stream": true})");
  ASSERT_EQ(reply.status, 200);
  const std::vector<std::string> events = Events(reply.body);
  ASSERT_EQ(events.size(), 2u) << reply.body;
  EXPECT_THAT(ParseJson(events[1]).value()["error"]["message"].string_value(),
              HasSubstr("worker lost"));
}

TEST_F(HttpServerTest, ClusterFailuresMapToHttpStatuses) {
  const std::vector<std::pair<absl::Status, int>> cases = {
      {absl::ResourceExhaustedError("busy"), 429},
      {absl::UnavailableError("no worker"), 503},
      {absl::InternalError("bug"), 500},
      {absl::InvalidArgumentError("prompt too long"), 400},
  };
  for (const auto& [status, http_status] : cases) {
    backend_.failure = status;
    const Reply reply =
        Exchange(port(), "POST", "/v1/completions", R"({"model": "austen-5m", "prompt": "Hi"})");
    EXPECT_EQ(reply.status, http_status) << status;
    EXPECT_EQ(BodyJson(reply)["error"]["message"].string_value(), status.message());
  }
}

TEST_F(HttpServerTest, ADisconnectedStreamStopsGeneration) {
  backend_.endless = true;
  const int fd = Connect(port());
  const std::string body = R"({"model": "austen-5m", "prompt": "Hi", "stream": true})";
  SendAll(fd, absl::StrCat("POST /v1/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ",
                           kKey, "\r\nContent-Length: ", body.size(), "\r\n\r\n", body));
  std::string seen;
  char buffer[4096];
  while (seen.find("data: ") == std::string::npos) {
    const ssize_t n = recv(fd, buffer, sizeof(buffer), 0);
    ASSERT_GT(n, 0);
    seen.append(buffer, static_cast<size_t>(n));
  }
  close(fd);
  EXPECT_TRUE(backend_.stopped_by_client.WaitForNotificationWithTimeout(absl::Minutes(2)));
}

TEST_F(HttpServerTest, KeysAreRequiredOnV1) {
  for (const std::string& authorization :
       {std::string(""), std::string("Bearer sk-not-a-known-key-000"), std::string("Basic abc")}) {
    for (const auto& [method, path] :
         {std::pair{"GET", "/v1/models"}, std::pair{"POST", "/v1/completions"}}) {
      const Reply reply = Exchange(port(), method, path,
                                   R"({"model": "austen-5m", "prompt": "Hi"})", authorization);
      EXPECT_EQ(reply.status, 401) << path << " " << authorization;
      EXPECT_EQ(reply.headers.count("www-authenticate"), 1u);
      EXPECT_EQ(BodyJson(reply)["error"]["code"].string_value(), "invalid_api_key");
      EXPECT_EQ(reply.body.find("sk-not"), std::string::npos);
    }
  }
  EXPECT_TRUE(backend_.tenants().empty());
}

TEST_F(HttpServerTest, RoutesAndMethods) {
  Reply reply = Exchange(port(), "GET", "/v1/models", "");
  ASSERT_EQ(reply.status, 200);
  EXPECT_EQ(BodyJson(reply)["data"].array_items()[0]["id"].string_value(), kModel);
  EXPECT_EQ(Exchange(port(), "GET", "/v1/completions", "").status, 405);
  EXPECT_EQ(Exchange(port(), "POST", "/v1/models", "{}").status, 405);
  EXPECT_EQ(Exchange(port(), "POST", "/healthz", "{}").status, 405);
  reply = Exchange(port(), "POST", "/v1/chat/completions", "{}");
  EXPECT_EQ(reply.status, 404);
  EXPECT_EQ(BodyJson(reply)["error"]["code"].string_value(), "unknown_url");
  EXPECT_EQ(Exchange(port(), "GET", "/", "").status, 404);
}

TEST_F(HttpServerTest, BadRequestsAre400) {
  Reply reply = Exchange(port(), "POST", "/v1/completions", R"({"model": "austen-5m", "prompt": )");
  EXPECT_EQ(reply.status, 400);
  EXPECT_THAT(BodyJson(reply)["error"]["message"].string_value(), HasSubstr("JSON"));
  reply = Exchange(port(), "POST", "/v1/completions",
                   R"({"model": "austen-5m", "prompt": "x", "top_p": 7})");
  EXPECT_EQ(reply.status, 400);
  EXPECT_EQ(BodyJson(reply)["error"]["param"].string_value(), "top_p");
  // JSON is UTF-8: a Latin-1 prompt is refused, never passed on to the tokenizer.
  reply = Exchange(port(), "POST", "/v1/completions",
                   "{\"model\": \"austen-5m\", \"prompt\": \"caf\xe9\"}");
  EXPECT_EQ(reply.status, 400);
  EXPECT_THAT(BodyJson(reply)["error"]["message"].string_value(), HasSubstr("invalid UTF-8"));
  EXPECT_EQ(
      Exchange(port(), "POST", "/v1/completions", R"({"model": "other", "prompt": "x"})").status,
      404);
  EXPECT_TRUE(backend_.tenants().empty());
}

TEST_F(HttpServerTest, LargeBodiesAre413) {
  HttpServerOptions options{"127.0.0.1:0", kModel};
  options.max_body_bytes = 4096;
  Start(options);
  const std::string prompt(5000, 'a');
  const Reply reply =
      Exchange(port(), "POST", "/v1/completions",
               absl::StrCat(R"({"model": "austen-5m", "prompt": ")", prompt, R"("})"));
  EXPECT_EQ(reply.status, 413);
  EXPECT_EQ(BodyJson(reply)["error"]["code"].string_value(), "request_too_large");
  EXPECT_TRUE(backend_.tenants().empty());
}

TEST_F(HttpServerTest, HealthFollowsTheBackendWithoutAKey) {
  Reply reply = Exchange(port(), "GET", "/healthz", "", "");
  EXPECT_EQ(reply.status, 200);
  EXPECT_EQ(BodyJson(reply)["status"].string_value(), "ok");
  backend_.ready = absl::UnavailableError("no worker answered GetStatus");
  reply = Exchange(port(), "GET", "/healthz", "", "");
  EXPECT_EQ(reply.status, 503);
  EXPECT_THAT(BodyJson(reply)["error"]["message"].string_value(), HasSubstr("no worker"));
}

TEST(HttpServerOptionsTest, Validation) {
  EXPECT_FALSE((HttpServerOptions{"", kModel}).Validate().ok());
  EXPECT_FALSE((HttpServerOptions{"8080", kModel}).Validate().ok());
  EXPECT_FALSE((HttpServerOptions{":8080", kModel}).Validate().ok());
  EXPECT_FALSE((HttpServerOptions{"127.0.0.1:", kModel}).Validate().ok());
  EXPECT_FALSE((HttpServerOptions{"127.0.0.1:0", ""}).Validate().ok());
  HttpServerOptions small{"127.0.0.1:0", kModel};
  small.max_body_bytes = 10;
  EXPECT_FALSE(small.Validate().ok());
  EXPECT_TRUE((HttpServerOptions{"127.0.0.1:0", kModel}).Validate().ok());
}

TEST(HttpServerStartTest, ABusyPortIsUnavailable) {
  FakeBackend backend;
  const ApiKeys keys = ApiKeys::Parse(absl::StrCat(kKey, " t 0\n"), "test").value();
  absl::StatusOr<std::unique_ptr<HttpServer>> first =
      HttpServer::Start(&backend, &keys, HttpServerOptions{"127.0.0.1:0", kModel});
  ASSERT_TRUE(first.ok()) << first.status();
  absl::StatusOr<std::unique_ptr<HttpServer>> second =
      HttpServer::Start(&backend, &keys, HttpServerOptions{(*first)->address(), kModel});
  EXPECT_EQ(second.status().code(), absl::StatusCode::kUnavailable) << second.status();
}

TEST(ModelIdTest, LastPathComponent) {
  EXPECT_EQ(ModelIdOfDirectory("/models/austen-5m"), "austen-5m");
  EXPECT_EQ(ModelIdOfDirectory("/models/austen-5m/"), "austen-5m");
  EXPECT_EQ(ModelIdOfDirectory("qwen"), "qwen");
}

}  // namespace
}  // namespace semshare::router::http
