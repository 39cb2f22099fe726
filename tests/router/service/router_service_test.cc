#include "router/service/router_service.h"

#include <grpcpp/client_context.h>
#include <grpcpp/create_channel.h>
#include <prometheus/registry.h>
#include <prometheus/text_serializer.h>

#include <atomic>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "absl/random/random.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "cache_node/cache_node.h"
#include "cache_node/rpc/cache_node_server.h"
#include "common/error_code.h"
#include "common/json.h"
#include "common/rpc/grpc_status.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "inference_worker/engine/engine.h"
#include "inference_worker/service/cache_node_reference_source.h"
#include "inference_worker/service/worker.h"
#include "inference_worker/service/worker_service.h"
#include "router/api_keys.h"
#include "router/backoff.h"
#include "router/service/router.h"
#include "router/service/router_metrics.h"
#include "router/service/shard_search.h"
#include "router/service/target_encoder.h"
#include "router/service/worker_pool.h"
#include "semshare/v1/cache_node.grpc.pb.h"
#include "semshare/v1/worker.grpc.pb.h"
#include "tests/cache_node/rpc/node_fixture.h"
#include "tests/common/loopback_server.h"
#include "tests/inference_worker/service/worker_fixture.h"
#include "tests/router/fake_clock.h"
#include "tests/router/generate_call.h"

namespace semshare::router {
namespace {

using cache_node::TestToken;

constexpr char kKeyA[] = "key-tenant-a-0123456789";
constexpr char kKeyB[] = "key-tenant-b-0123456789";

struct Shard {
  std::unique_ptr<cache_node::CacheNode> node;
  std::unique_ptr<cache_node::CacheNodeServer> server;
};

Shard StartShard() {
  cache_node::CacheNodeOptions options;
  options.data_dir = cache_node::MakeTempDir();
  options.capacity_bytes = int64_t{1} << 30;
  Shard shard;
  shard.node = cache_node::OpenCacheNode(options).value();
  cache_node::CacheNodeServerOptions server_options;
  server_options.listen_address = "127.0.0.1:0";
  server_options.service.max_reference_bytes = options.capacity_bytes;
  shard.server =
      cache_node::CacheNodeServer::Start(shard.node.get(), TestToken(), server_options, nullptr)
          .value();
  return shard;
}

// A cache node that misbehaves: FindSimilar answers only after the caller gave up (slow), or
// claims a near-perfect match whose mapping does not fit the prompt (garbage). Every other call
// is UNIMPLEMENTED, so a reference placed on it is never stored.
class FaultyShard final : public v1::CacheNode::Service {
 public:
  enum class Fault { kSlow, kGarbage };
  explicit FaultyShard(Fault fault) : fault_(fault) { server_ = StartOnLoopback(this, &address_); }
  ~FaultyShard() override {
    release_.Notify();
    server_->Shutdown();
  }

  grpc::Status FindSimilar(grpc::ServerContext* context, const v1::FindSimilarRequest*,
                           v1::FindSimilarResponse* response) override {
    ++calls_;
    if (fault_ == Fault::kSlow) {
      // Held until the router's deadline cancels the call (or the test ends).
      while (!context->IsCancelled() &&
             !release_.WaitForNotificationWithTimeout(absl::Milliseconds(10))) {
      }
      return grpc::Status(grpc::StatusCode::DEADLINE_EXCEEDED, "too late");
    }
    v1::Match* match = response->add_matches();
    match->set_reference_id("ghost");
    match->set_similarity(0.999);
    match->set_num_tokens(3);
    response->mutable_best_mapping()->set_similarity(0.999);
    response->mutable_best_mapping()->add_source(0);  // one token: fits no real prompt
    return grpc::Status::OK;
  }

  const std::string& address() const { return address_; }
  int calls() const { return calls_.load(); }

 private:
  const Fault fault_;
  std::unique_ptr<grpc::Server> server_;
  std::string address_;
  absl::Notification release_;
  std::atomic<int> calls_{0};
};

// A worker that looks healthy, claims to hold `held` (so the router prefers it for a hit on
// that reference) and fails every Generate before any token.
class FailingWorker final : public v1::Worker::Service {
 public:
  FailingWorker() { server_ = StartOnLoopback(this, &address_); }
  ~FailingWorker() override { server_->Shutdown(); }

  grpc::Status Generate(grpc::ServerContext*, const v1::WorkerGenerateRequest*,
                        grpc::ServerWriter<v1::WorkerGenerateResponse>*) override {
    ++generates_;
    return grpc::Status(grpc::StatusCode::UNAVAILABLE, "the accelerator fell off the bus");
  }
  grpc::Status GetStatus(grpc::ServerContext*, const v1::GetWorkerStatusRequest*,
                         v1::WorkerStatus* status) override {
    status->set_model_fingerprint(AustenModel().fingerprint());
    status->set_max_concurrency(4);
    absl::MutexLock lock(&mutex_);
    if (!held_.empty()) status->add_cached_reference_ids(held_);
    return grpc::Status::OK;
  }

  void Hold(const std::string& reference_id) {
    absl::MutexLock lock(&mutex_);
    held_ = reference_id;
  }
  const std::string& address() const { return address_; }
  int generates() const { return generates_.load(); }

 private:
  std::unique_ptr<grpc::Server> server_;
  std::string address_;
  std::atomic<int> generates_{0};
  absl::Mutex mutex_;
  std::string held_ ABSL_GUARDED_BY(mutex_);
};

// The pool every test uses: status polled on every request, and a status deadline no loaded
// test machine misses (the health tracker runs on a fake clock, so one missed deadline would
// keep a live worker down for the rest of the test). A dead worker still fails at once: its
// connection is refused.
WorkerPoolOptions TestPoolOptions() {
  WorkerPoolOptions pool;
  pool.status_ttl = absl::ZeroDuration();
  pool.status_timeout = absl::Seconds(30);
  return pool;
}

using Result = GenerateCall;

// Two real cache nodes, one real worker over the Austen model and the router, all in-process
// on port 0.
class RouterServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    shards_.push_back(StartShard());
    shards_.push_back(StartShard());
    engine_ = Engine::Create(&AustenModel()).value();
    source_ = std::make_unique<worker::CacheNodeReferenceSource>(
        TestToken(), cache_node::CacheNodeClient::Options());
    worker_ = worker::InferenceWorker::Create(engine_.get(), worker::WorkerReuse(), source_.get(),
                                              {}, &worker_metrics_)
                  .value();
    worker::WorkerServerOptions worker_options;
    worker_options.listen_address = "127.0.0.1:0";
    worker_server_ =
        worker::WorkerServer::Start(worker_.get(), TestToken(), worker_options).value();

    keys_ = std::make_unique<ApiKeys>(
        ApiKeys::Parse(absl::StrCat(kKeyA, " tenant-a 0\n", kKeyB, " tenant-b 0\n"), "test")
            .value());
    health_ = EndpointHealth::Create(BackoffOptions(), &clock_, random_).value();
    ShardSearchOptions search;
    search.deadline = absl::Seconds(30);  // generous: a loaded test machine is not a slow shard
    shard_search_ =
        ShardSearch::Create({shards_[0].server->address(), shards_[1].server->address()},
                            TestToken(), search, health_.get())
            .value();
    pool_ = WorkerPool::Create({worker_server_->address()}, TestToken(), TestPoolOptions(),
                               health_.get(), &clock_)
                .value();
    encoder_ = LoadTargetEncoder(AustenDir(), "cpu").value();
    StartRouter(RouterOptions());

    std::ifstream in(std::string(SEMSHARE_TEST_DATA_DIR) + "/pairs-dev.jsonl");
    std::string line;
    std::getline(in, line);
    const Json pair = ParseJson(line).value();
    reference_ = pair["reference"].string_value();
    paraphrase_ = pair["target"].string_value();
  }

  // (Re)starts the router and its gRPC front with `options`.
  void StartRouter(const RouterOptions& options) {
    server_.reset();
    router_ =
        Router::Create(encoder_.get(), shard_search_.get(), pool_.get(), options, &router_metrics_)
            .value();
    RouterServerOptions server_options;
    server_options.listen_address = "127.0.0.1:0";
    server_ = RouterServer::Start(router_.get(), keys_.get(), server_options).value();
    stub_ = v1::Router::NewStub(
        grpc::CreateChannel(server_->address(), grpc::InsecureChannelCredentials()));
  }

  void TearDown() override {
    server_.reset();
    router_.reset();
    pool_.reset();
    shard_search_.reset();
    worker_server_.reset();
    worker_.reset();
    shards_.clear();
  }

  Result Generate(const std::string& prompt, const std::string& key) {
    return CallGenerate(stub_.get(), key, prompt, 8);
  }

  std::vector<int32_t> Ids(const std::string& text) const {
    return encoder_->Encode(text).value().token_ids;
  }

  std::vector<int32_t> EngineTokens(const std::vector<int32_t>& prompt,
                                    const Reference* reference) const {
    SamplingOptions sampling;
    sampling.max_tokens = 8;
    for (int64_t eos : AustenModel().config().eos_token_ids)
      sampling.stop_tokens.push_back(static_cast<int32_t>(eos));
    return engine_->Generate(prompt, reference, worker::WorkerReuse(), sampling).value().tokens;
  }

  // The router's and the worker's metrics, in one registry (their names do not overlap).
  std::string Metrics() const {
    return prometheus::TextSerializer().Serialize(registry_.Collect());
  }

  prometheus::Registry registry_;
  RouterMetrics router_metrics_{registry_};
  worker::WorkerMetrics worker_metrics_{registry_};
  std::vector<Shard> shards_;
  std::unique_ptr<Engine> engine_;
  std::unique_ptr<worker::CacheNodeReferenceSource> source_;
  std::unique_ptr<worker::InferenceWorker> worker_;
  std::unique_ptr<worker::WorkerServer> worker_server_;
  std::unique_ptr<ApiKeys> keys_;
  FakeClock clock_;
  absl::BitGen random_;
  std::unique_ptr<EndpointHealth> health_;
  std::unique_ptr<ShardSearch> shard_search_;
  std::unique_ptr<WorkerPool> pool_;
  std::unique_ptr<TargetEncoder> encoder_;
  std::unique_ptr<Router> router_;
  std::unique_ptr<RouterServer> server_;
  std::unique_ptr<v1::Router::Stub> stub_;
  std::string reference_;
  std::string paraphrase_;
};

// Without reuse (the benchmarks' full-prefill baseline) nothing is searched or stored.
TEST_F(RouterServiceTest, WithoutReuseEveryRequestIsAFullPrefillAndNothingIsStored) {
  RouterOptions options;
  options.reuse = false;
  StartRouter(options);
  for (const std::string& prompt : {reference_, reference_, paraphrase_}) {
    const Result served = Generate(prompt, kKeyA);
    ASSERT_TRUE(served.status.ok()) << served.status.error_message();
    EXPECT_FALSE(served.stats.cache_hit());
    EXPECT_TRUE(served.stats.reference_id().empty());
    EXPECT_EQ(served.tokens, EngineTokens(Ids(prompt), nullptr));
  }
  worker_->WaitForStores();
  EXPECT_EQ(worker_->Load().stores.done, 0);
}

TEST_F(RouterServiceTest, ReferenceThenParaphraseIsAMissThenAHitWithTheEnginesTokens) {
  const Result miss = Generate(reference_, kKeyA);
  ASSERT_TRUE(miss.status.ok()) << miss.status.error_message();
  EXPECT_FALSE(miss.stats.cache_hit());
  EXPECT_FALSE(miss.stats.reference_id().empty());
  EXPECT_EQ(miss.tokens, EngineTokens(Ids(reference_), nullptr));
  EXPECT_EQ(miss.stats.prompt_tokens(), static_cast<int64_t>(Ids(reference_).size()));
  EXPECT_EQ(miss.stats.completion_tokens(), static_cast<int64_t>(miss.tokens.size()));
  worker_->WaitForStores();

  const Result hit = Generate(paraphrase_, kKeyA);
  ASSERT_TRUE(hit.status.ok()) << hit.status.error_message();
  EXPECT_TRUE(hit.stats.cache_hit());
  EXPECT_EQ(hit.stats.reference_id(), miss.stats.reference_id());
  EXPECT_EQ(hit.stats.shard(), miss.stats.shard());
  EXPECT_GE(hit.stats.similarity(), 0.8);
  EXPECT_EQ(hit.stats.worker(), worker_server_->address());
  const Reference reference =
      engine_->BuildReference(Ids(reference_), worker::WorkerReuse().ecache).value();
  EXPECT_EQ(hit.tokens, EngineTokens(Ids(paraphrase_), &reference));

  grpc::ClientContext context;
  context.AddMetadata("authorization", absl::StrCat("Bearer ", kKeyA));
  v1::RouterStats stats;
  ASSERT_TRUE(stub_->GetStats(&context, v1::GetRouterStatsRequest(), &stats).ok());
  EXPECT_EQ(stats.requests(), 2);
  EXPECT_EQ(stats.hits(), 1);
  EXPECT_EQ(stats.misses(), 1);
  // The tenant's one reference, on the shard that holds it, and nothing elsewhere.
  int64_t references = 0;
  for (const v1::ShardStatus& shard : stats.shards()) {
    EXPECT_TRUE(shard.healthy()) << shard.address();
    references += shard.references();
    if (shard.address() == miss.stats.shard()) {
      EXPECT_EQ(shard.references(), 1);
      EXPECT_GT(shard.bytes(), 0);
    } else {
      EXPECT_EQ(shard.bytes(), 0);
    }
  }
  EXPECT_EQ(references, 1);
}

// A slow shard, a shard answering garbage and a worker that is down, beside the real ones:
// every request succeeds with the engine's tokens, the garbage is never reused, and the
// router reports the slow shard and the dead worker down.
TEST_F(RouterServiceTest, SlowAndGarbageShardsAndADeadWorkerCostMissesNeverFailures) {
  FaultyShard slow(FaultyShard::Fault::kSlow);
  FaultyShard garbage(FaultyShard::Fault::kGarbage);
  const DeadEndpoint dead_worker;
  server_.reset();
  router_.reset();
  ShardSearchOptions search;
  // The slow shard is cut off here; the real ones answer in milliseconds, and a loaded test
  // machine has seconds to spare.
  search.deadline = absl::Seconds(5);
  shard_search_ = ShardSearch::Create({shards_[0].server->address(), slow.address(),
                                       garbage.address(), shards_[1].server->address()},
                                      TestToken(), search, health_.get())
                      .value();
  pool_ = WorkerPool::Create({dead_worker.address(), worker_server_->address()}, TestToken(),
                             TestPoolOptions(), health_.get(), &clock_)
              .value();
  StartRouter(RouterOptions());

  const Result miss = Generate(reference_, kKeyA);
  ASSERT_TRUE(miss.status.ok()) << miss.status.error_message();
  EXPECT_FALSE(miss.stats.cache_hit());
  EXPECT_EQ(miss.stats.worker(), worker_server_->address());
  EXPECT_EQ(miss.tokens, EngineTokens(Ids(reference_), nullptr));
  worker_->WaitForStores();
  const bool stored = worker_->Load().stores.done == 1;  // not when placed on a faulty shard

  const Result paraphrase = Generate(paraphrase_, kKeyA);
  ASSERT_TRUE(paraphrase.status.ok()) << paraphrase.status.error_message();
  EXPECT_NE(paraphrase.stats.reference_id(), "ghost");
  EXPECT_EQ(paraphrase.stats.cache_hit(), stored);
  if (stored) {
    const Reference reference =
        engine_->BuildReference(Ids(reference_), worker::WorkerReuse().ecache).value();
    EXPECT_EQ(paraphrase.tokens, EngineTokens(Ids(paraphrase_), &reference));
  } else {
    EXPECT_EQ(paraphrase.tokens, EngineTokens(Ids(paraphrase_), nullptr));
  }
  EXPECT_GE(slow.calls() + garbage.calls(), 2);

  grpc::ClientContext context;
  context.AddMetadata("authorization", absl::StrCat("Bearer ", kKeyA));
  v1::RouterStats stats;
  ASSERT_TRUE(stub_->GetStats(&context, v1::GetRouterStatsRequest(), &stats).ok());
  EXPECT_EQ(stats.failures(), 0);
  for (const v1::ShardStatus& shard : stats.shards()) {
    if (shard.address() == slow.address()) {
      EXPECT_FALSE(shard.healthy());
    }
  }
  for (const v1::WorkerLoad& load : stats.workers()) {
    EXPECT_EQ(load.healthy(), load.address() == worker_server_->address()) << load.address();
  }
}

// A worker that fails before any token is replaced by another for that request: the hit is
// served, once, by the healthy worker, and the retry is counted.
TEST_F(RouterServiceTest, AWorkerThatFailsIsRetriedOnAnother) {
  FailingWorker failing;
  server_.reset();
  router_.reset();
  // The real worker keeps nothing locally, so for the hit only the failing one claims to hold
  // the reference: whichever request reaches the failing worker first, exactly one is retried.
  worker_server_.reset();
  worker::WorkerOptions options;
  options.local_cache_bytes = 0;
  worker_ =
      worker::InferenceWorker::Create(engine_.get(), worker::WorkerReuse(), source_.get(), options)
          .value();
  worker::WorkerServerOptions worker_options;
  worker_options.listen_address = "127.0.0.1:0";
  worker_server_ = worker::WorkerServer::Start(worker_.get(), TestToken(), worker_options).value();
  pool_ = WorkerPool::Create({failing.address(), worker_server_->address()}, TestToken(),
                             TestPoolOptions(), health_.get(), &clock_)
              .value();
  StartRouter(RouterOptions());

  const Result miss = Generate(reference_, kKeyA);
  ASSERT_TRUE(miss.status.ok()) << miss.status.error_message();
  worker_->WaitForStores();
  EXPECT_EQ(miss.stats.worker(), worker_server_->address());
  failing.Hold(miss.stats.reference_id());  // the router now prefers it for the paraphrase
  const Result hit = Generate(paraphrase_, kKeyA);
  ASSERT_TRUE(hit.status.ok()) << hit.status.error_message();
  EXPECT_TRUE(hit.stats.cache_hit());
  EXPECT_EQ(hit.stats.worker(), worker_server_->address());
  // Tried once (for the miss, or else for the hit), then down with backoff.
  EXPECT_EQ(failing.generates(), 1);
  const Reference reference =
      engine_->BuildReference(Ids(reference_), worker::WorkerReuse().ecache).value();
  EXPECT_EQ(hit.tokens, EngineTokens(Ids(paraphrase_), &reference));
  EXPECT_THAT(Metrics(), ::testing::HasSubstr(absl::StrCat("semshare_router_worker_retries_total ",
                                                           failing.generates(), "\n")));
}

// Workers found by discovery join and leave the pool while it serves: a listed worker that
// left is never chosen again, one that joined serves at once.
TEST_F(RouterServiceTest, DiscoveredWorkersJoinAndLeaveThePool) {
  server_.reset();
  router_.reset();
  WorkerPoolOptions pool = TestPoolOptions();
  pool.allow_empty = true;
  pool_ = WorkerPool::Create({}, TestToken(), pool, health_.get(), &clock_).value();
  StartRouter(RouterOptions());
  EXPECT_EQ(Generate(reference_, kKeyA).status.error_code(),
            grpc::StatusCode::UNAVAILABLE);  // none yet

  const DeadEndpoint dead;
  const std::string& gone = dead.address();
  pool_->SetWorkers({gone, worker_server_->address()});
  EXPECT_EQ(pool_->Members(), (std::vector<std::string>{gone, worker_server_->address()}));
  const Result served = Generate(reference_, kKeyA);
  ASSERT_TRUE(served.status.ok()) << served.status.error_message();
  EXPECT_EQ(served.stats.worker(), worker_server_->address());

  pool_->SetWorkers({worker_server_->address()});  // the dead one left
  EXPECT_EQ(pool_->Members(), std::vector<std::string>{worker_server_->address()});
  pool_->SetWorkers({});
  EXPECT_EQ(Generate(reference_, kKeyA).status.error_code(), grpc::StatusCode::UNAVAILABLE);
  pool_->SetWorkers({worker_server_->address()});  // and back
  EXPECT_TRUE(Generate(paraphrase_, kKeyA).status.ok());
  grpc::ClientContext context;
  context.AddMetadata("authorization", absl::StrCat("Bearer ", kKeyA));
  v1::RouterStats stats;
  ASSERT_TRUE(stub_->GetStats(&context, v1::GetRouterStatsRequest(), &stats).ok());
  ASSERT_EQ(stats.workers_size(), 1);
  EXPECT_EQ(stats.workers(0).address(), worker_server_->address());
}

TEST_F(RouterServiceTest, MaxTokensPastTheLimitIsRefusedBeforeAnyWork) {
  grpc::ClientContext context;
  context.AddMetadata("authorization", absl::StrCat("Bearer ", kKeyA));
  v1::GenerateRequest request;
  request.set_prompt(reference_);
  request.set_max_tokens(RouterOptions().max_tokens_limit + 1);
  auto reader = stub_->Generate(&context, request);
  v1::GenerateResponse response;
  EXPECT_FALSE(reader->Read(&response));
  const grpc::Status status = reader->Finish();
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(status.error_message().find("limit"), std::string::npos) << status.error_message();
}

TEST_F(RouterServiceTest, APromptPastTheModelsContextIsRefusedBeforeAnyWork) {
  // The only worker counts its calls (and would fail them): there must be none.
  FailingWorker failing;
  server_.reset();
  router_.reset();
  pool_ = WorkerPool::Create({failing.address()}, TestToken(), WorkerPoolOptions(), health_.get(),
                             &clock_)
              .value();
  StartRouter(RouterOptions());
  grpc::ClientContext context;
  context.AddMetadata("authorization", absl::StrCat("Bearer ", kKeyA));
  v1::GenerateRequest request;
  // The Austen model's context is 2,048 tokens; the router's default max_tokens counts too.
  for (int i = 0; i < 2040; ++i) request.add_prompt_token_ids(i == 0 ? 1 : 5);
  auto reader = stub_->Generate(&context, request);
  v1::GenerateResponse response;
  EXPECT_FALSE(reader->Read(&response));
  const grpc::Status status = reader->Finish();
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(),
              ::testing::HasSubstr("the prompt's 2040 tokens plus max_tokens " +
                                   std::to_string(RouterOptions().default_max_tokens) +
                                   " exceed the model's context of 2048"));
  // Machine-readable, for a client that must not parse the message.
  EXPECT_EQ(ErrorCode(FromGrpcStatus(status)), kContextLengthExceeded);
  EXPECT_EQ(failing.generates(), 0);
}

// A tenant's byte budget (its API key's) travels with each new reference to the shard, which
// applies it: with room for none, the miss is served and nothing is stored.
TEST_F(RouterServiceTest, TheTenantsByteBudgetGoesWithItsNewReferences) {
  RouterOptions options;
  options.tenant_byte_budgets["tenant-a"] = 1;
  StartRouter(options);
  const Result miss = Generate(reference_, kKeyA);
  ASSERT_TRUE(miss.status.ok()) << miss.status.error_message();
  EXPECT_FALSE(miss.stats.cache_hit());
  worker_->WaitForStores();
  EXPECT_EQ(worker_->Load().stores.failed, 1);  // the shard refused it: over the tenant's budget
  EXPECT_FALSE(Generate(paraphrase_, kKeyA).stats.cache_hit());

  // tenant-b has no budget of its own: only the shards' apply.
  ASSERT_TRUE(Generate(reference_, kKeyB).status.ok());
  worker_->WaitForStores();
  EXPECT_EQ(worker_->Load().stores.done, 1);
  EXPECT_TRUE(Generate(paraphrase_, kKeyB).stats.cache_hit());
}

// Each request through the gRPC front is counted once, by tenant and outcome, on the router
// and on the worker; the router's counts agree with the stats it returned.
TEST_F(RouterServiceTest, MetricsCountEachRequestOnceByTenantAndOutcome) {
  const Result miss = Generate(reference_, kKeyA);
  ASSERT_TRUE(miss.status.ok()) << miss.status.error_message();
  worker_->WaitForStores();
  const Result hit = Generate(paraphrase_, kKeyA);
  ASSERT_TRUE(hit.status.ok()) << hit.status.error_message();
  ASSERT_TRUE(hit.stats.cache_hit());
  const Result other = Generate(reference_, kKeyB);
  ASSERT_TRUE(other.status.ok()) << other.status.error_message();
  EXPECT_FALSE(other.stats.cache_hit());
  EXPECT_EQ(Generate(reference_, "").status.error_code(), grpc::StatusCode::UNAUTHENTICATED);
  worker_->WaitForStores();

  using ::testing::HasSubstr;
  const std::string metrics = Metrics();
  EXPECT_THAT(
      metrics,
      HasSubstr("semshare_router_requests_total{outcome=\"miss\",tenant=\"tenant-a\"} 1\n"));
  EXPECT_THAT(metrics,
              HasSubstr("semshare_router_requests_total{outcome=\"hit\",tenant=\"tenant-a\"} 1\n"));
  EXPECT_THAT(
      metrics,
      HasSubstr("semshare_router_requests_total{outcome=\"miss\",tenant=\"tenant-b\"} 1\n"));
  EXPECT_THAT(metrics, ::testing::Not(HasSubstr("outcome=\"error\"")));
  EXPECT_THAT(metrics,
              HasSubstr("semshare_router_rpcs_total{code=\"OK\",method=\"Generate\"} 3\n"));
  EXPECT_THAT(
      metrics,
      HasSubstr("semshare_router_rpcs_total{code=\"UNAUTHENTICATED\",method=\"Generate\"} 1\n"));
  EXPECT_THAT(metrics, HasSubstr("semshare_router_ttft_seconds_count{outcome=\"hit\"} 1\n"));
  EXPECT_THAT(metrics, HasSubstr("semshare_router_recompute_share_count 1\n"));
  EXPECT_THAT(metrics, HasSubstr("semshare_router_in_flight_requests 0\n"));
  EXPECT_THAT(metrics, HasSubstr(absl::StrCat("semshare_router_shard_up{shard=\"",
                                              shards_[0].server->address(), "\"} 1\n")));
  EXPECT_THAT(metrics, HasSubstr(absl::StrCat("semshare_router_worker_up{worker=\"",
                                              worker_server_->address(), "\"} 1\n")));
  EXPECT_THAT(metrics,
              HasSubstr("semshare_worker_requests_total{outcome=\"hit\",tenant=\"tenant-a\"} 1\n"));
  EXPECT_THAT(
      metrics,
      HasSubstr("semshare_worker_requests_total{outcome=\"miss\",tenant=\"tenant-b\"} 1\n"));
  EXPECT_THAT(metrics, HasSubstr("semshare_worker_stores_total{result=\"stored\"} 2\n"));
  EXPECT_THAT(metrics,
              HasSubstr("semshare_worker_rpcs_total{code=\"OK\",method=\"Generate\"} 3\n"));
  // The hit was served from the local cache (this worker stored the reference) or fetched.
  EXPECT_THAT(metrics, HasSubstr(hit.stats.worker_local_hit()
                                     ? "semshare_worker_local_cache_hits_total 1\n"
                                     : "semshare_worker_kv_fetch_seconds_count 1\n"));
}

TEST_F(RouterServiceTest, WrongOrMissingKeyIsUnauthenticated) {
  EXPECT_EQ(Generate(reference_, "").status.error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(Generate(reference_, "not-a-key-0123456789").status.error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
  grpc::ClientContext context;
  v1::RouterStats stats;
  EXPECT_EQ(stub_->GetStats(&context, v1::GetRouterStatsRequest(), &stats).error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
}

TEST_F(RouterServiceTest, TenantsNeverHitEachOthersReferences) {
  const Result a = Generate(reference_, kKeyA);
  ASSERT_TRUE(a.status.ok()) << a.status.error_message();
  worker_->WaitForStores();
  const Result b = Generate(reference_, kKeyB);
  ASSERT_TRUE(b.status.ok()) << b.status.error_message();
  EXPECT_FALSE(b.stats.cache_hit());
  EXPECT_NE(b.stats.reference_id(), a.stats.reference_id());
  worker_->WaitForStores();
  // Each tenant now hits its own reference.
  const Result again = Generate(reference_, kKeyB);
  ASSERT_TRUE(again.status.ok());
  EXPECT_TRUE(again.stats.cache_hit());
  EXPECT_EQ(again.stats.reference_id(), b.stats.reference_id());
}

TEST_F(RouterServiceTest, AStoppedShardCostsAMissNotAFailure) {
  shards_[0].server->Shutdown(absl::ZeroDuration());
  for (const std::string& prompt : {reference_, paraphrase_, reference_}) {
    const Result result = Generate(prompt, kKeyA);
    ASSERT_TRUE(result.status.ok()) << result.status.error_message();
    EXPECT_EQ(result.tokens.size(), static_cast<size_t>(result.stats.completion_tokens()));
    worker_->WaitForStores();
  }
  // The references went to the shard that is up, so the paraphrase still finds them.
  const Result hit = Generate(paraphrase_, kKeyA);
  ASSERT_TRUE(hit.status.ok());
  EXPECT_TRUE(hit.stats.cache_hit());
  EXPECT_EQ(hit.stats.shard(), shards_[1].server->address());
}

}  // namespace
}  // namespace semshare::router
