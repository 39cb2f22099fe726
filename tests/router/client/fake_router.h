#ifndef SEMSHARE_TESTS_ROUTER_CLIENT_FAKE_ROUTER_H_
#define SEMSHARE_TESTS_ROUTER_CLIENT_FAKE_ROUTER_H_

#include <grpcpp/server.h>

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "semshare/v1/router.grpc.pb.h"
#include "tests/common/loopback_server.h"

namespace semshare::client::testing {

inline constexpr char kTestApiKey[] = "sk-test-key";

// An in-process Router on 127.0.0.1:0 that serves canned answers: Generate checks
// `authorization: Bearer kTestApiKey`, streams `chunks` and then `stats`; GetStats returns
// `router_stats`. It can be told to fail every call with a status, or to hold Generate until
// Release() (for deadline tests).
class FakeRouter final : public v1::Router::Service {
 public:
  FakeRouter() {
    for (const auto& [ids, text] : std::vector<std::pair<std::vector<int32_t>, std::string>>{
             {{101, 102}, "The sky "},
             {{103}, "is blue "},
             {{104, 105, 106}, "because of Rayleigh."}}) {
      v1::TokenChunk chunk;
      chunk.mutable_token_ids()->Assign(ids.begin(), ids.end());
      chunk.set_text(text);
      chunks.push_back(chunk);
    }
    stats.set_cache_hit(true);
    stats.set_reference_id("ref-42");
    stats.set_similarity(0.93);
    stats.set_recompute_share(0.2);
    stats.set_kv_kept_share(0.6);
    stats.set_ttft_ms(12.5);
    stats.set_latency_ms(40.25);
    stats.set_prompt_tokens(17);
    stats.set_completion_tokens(6);
    stats.mutable_stages()->set_tokenize_ms(0.5);
    stats.mutable_stages()->set_search_ms(1.5);
    stats.mutable_stages()->set_fetch_ms(2.5);
    stats.mutable_stages()->set_recompute_ms(3.5);
    stats.mutable_stages()->set_decode_ms(4.5);
    stats.set_worker("127.0.0.1:9001");
    stats.set_shard("127.0.0.1:9101");
    stats.set_worker_local_hit(true);
    router_stats.set_requests(5);
    router_stats.set_hits(3);
    router_stats.set_misses(2);
    router_stats.set_failures(0);
    v1::ShardStatus* shard = router_stats.add_shards();
    shard->set_address("127.0.0.1:9101");
    shard->set_healthy(true);
    shard->set_references(3);
    shard->set_bytes(4096);
    v1::WorkerLoad* worker = router_stats.add_workers();
    worker->set_address("127.0.0.1:9001");
    worker->set_healthy(false);
    worker->set_active_requests(1);
    worker->set_queued_requests(2);
  }

  // Starts serving; address() is valid afterwards.
  void Start() { server_ = StartOnLoopback(this, &address_); }
  ~FakeRouter() override {
    Release();
    if (server_ != nullptr) server_->Shutdown();
  }

  void FailWith(grpc::Status status) {
    absl::MutexLock lock(&mu_);
    fail_with_ = std::move(status);
  }
  // Generate waits for Release() before answering.
  void HoldGenerate() {
    absl::MutexLock lock(&mu_);
    hold_ = true;
  }
  // Generate sends the first chunk, then waits for Release() (for streaming tests).
  void HoldAfterFirstChunk() {
    absl::MutexLock lock(&mu_);
    hold_after_first_chunk_ = true;
  }
  void Release() {
    if (!released_.HasBeenNotified()) released_.Notify();
  }

  const std::string& address() const { return address_; }
  std::vector<std::string> authorizations() const {
    absl::MutexLock lock(&mu_);
    return authorizations_;
  }
  std::optional<v1::GenerateRequest> last_request() const {
    absl::MutexLock lock(&mu_);
    return last_request_;
  }

  grpc::Status Generate(grpc::ServerContext* context, const v1::GenerateRequest* request,
                        grpc::ServerWriter<v1::GenerateResponse>* writer) override {
    bool hold = false;
    bool hold_after_first_chunk = false;
    {
      absl::MutexLock lock(&mu_);
      last_request_ = *request;
      hold = hold_;
      hold_after_first_chunk = hold_after_first_chunk_;
    }
    if (grpc::Status refused = Admit(*context); !refused.ok()) return refused;
    if (hold) released_.WaitForNotification();
    for (size_t i = 0; i < chunks.size(); ++i) {
      v1::GenerateResponse response;
      *response.mutable_tokens() = chunks[i];
      if (!writer->Write(response)) return grpc::Status(grpc::StatusCode::CANCELLED, "gone");
      if (i == 0 && hold_after_first_chunk) released_.WaitForNotification();
    }
    if (send_stats) {
      v1::GenerateResponse response;
      *response.mutable_stats() = stats;
      writer->Write(response);
    }
    return grpc::Status::OK;
  }

  grpc::Status GetStats(grpc::ServerContext* context, const v1::GetRouterStatsRequest*,
                        v1::RouterStats* response) override {
    if (grpc::Status refused = Admit(*context); !refused.ok()) return refused;
    *response = router_stats;
    return grpc::Status::OK;
  }

  // Canned answers; set before Start().
  std::vector<v1::TokenChunk> chunks;
  v1::GenerateStats stats;
  bool send_stats = true;
  v1::RouterStats router_stats;

 private:
  // Records the authorization header; refuses a wrong key, then fails if told to.
  grpc::Status Admit(const grpc::ServerContext& context) {
    std::string authorization;
    const auto& metadata = context.client_metadata();
    auto it = metadata.find("authorization");
    if (it != metadata.end()) authorization.assign(it->second.data(), it->second.size());
    absl::MutexLock lock(&mu_);
    authorizations_.push_back(authorization);
    if (authorization != absl::StrCat("Bearer ", kTestApiKey)) {
      return grpc::Status(grpc::StatusCode::UNAUTHENTICATED, "unknown API key");
    }
    if (fail_with_.has_value()) return *fail_with_;
    return grpc::Status::OK;
  }

  mutable absl::Mutex mu_;
  std::vector<std::string> authorizations_ ABSL_GUARDED_BY(mu_);
  std::optional<v1::GenerateRequest> last_request_ ABSL_GUARDED_BY(mu_);
  std::optional<grpc::Status> fail_with_ ABSL_GUARDED_BY(mu_);
  bool hold_ ABSL_GUARDED_BY(mu_) = false;
  bool hold_after_first_chunk_ ABSL_GUARDED_BY(mu_) = false;
  absl::Notification released_;
  std::unique_ptr<grpc::Server> server_;
  std::string address_;
};

}  // namespace semshare::client::testing

#endif  // SEMSHARE_TESTS_ROUTER_CLIENT_FAKE_ROUTER_H_
