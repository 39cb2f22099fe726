#include "inference_worker/service/worker_service.h"

#include <grpcpp/client_context.h>
#include <grpcpp/create_channel.h>

#include <thread>

#include "cache_node/cache_node.h"
#include "cache_node/rpc/cache_node_client.h"
#include "cache_node/rpc/cache_node_server.h"
#include "gtest/gtest.h"
#include "inference_worker/service/cache_node_reference_source.h"
#include "tests/cache_node/rpc/node_fixture.h"
#include "tests/inference_worker/service/worker_fixture.h"

namespace semshare::worker {
namespace {

using cache_node::kTestToken;
using cache_node::TestToken;

// A real cache node and the real worker service, both in-process on port 0.
class WorkerServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    cache_node::CacheNodeOptions options;
    options.data_dir = cache_node::MakeTempDir();
    options.capacity_bytes = int64_t{1} << 30;
    node_ = cache_node::OpenCacheNode(options).value();
    cache_node::CacheNodeServerOptions node_options;
    node_options.listen_address = "127.0.0.1:0";
    node_options.service.max_reference_bytes = options.capacity_bytes;
    node_server_ =
        cache_node::CacheNodeServer::Start(node_.get(), TestToken(), node_options, nullptr).value();
    shard_ = node_server_->address();
    node_client_ = cache_node::CacheNodeClient::Create(shard_, TestToken()).value();
    engine_ = Engine::Create(&AustenModel()).value();
    real_source_ = std::make_unique<CacheNodeReferenceSource>(
        TestToken(), cache_node::CacheNodeClient::Options());
    std::tie(reference_ids_, target_) = FirstPair();
  }

  void StartWorker(ReferenceSource* source, WorkerOptions options = {}) {
    worker_ = InferenceWorker::Create(engine_.get(), WorkerReuse(), source, options).value();
    WorkerServerOptions server_options;
    server_options.listen_address = "127.0.0.1:0";
    server_ = WorkerServer::Start(worker_.get(), TestToken(), server_options).value();
    stub_ = v1::Worker::NewStub(
        grpc::CreateChannel(server_->address(), grpc::InsecureChannelCredentials()));
  }

  void TearDown() override {
    server_.reset();
    worker_.reset();
    node_client_.reset();
    node_server_.reset();
    node_.reset();
  }

  v1::WorkerGenerateRequest Request(const std::vector<int32_t>& prompt) const {
    v1::WorkerGenerateRequest request;
    request.set_model_fingerprint(AustenModel().fingerprint());
    request.mutable_prompt_token_ids()->Add(prompt.begin(), prompt.end());
    request.mutable_sampling()->set_max_tokens(8);
    return request;
  }

  // What the router does for a target: FindSimilar on the shard, the best match's mapping.
  cache_node::FindResult Find(const std::vector<int32_t>& prompt, const std::string& fingerprint) {
    at::Tensor sketch;
    const TokenCodes codes = engine_->EncodeCodes(prompt, WorkerReuse().ecache, &sketch).value();
    const at::Tensor s = sketch.contiguous();
    return node_client_
        ->FindSimilar({"tenant-a", fingerprint}, codes,
                      absl::MakeConstSpan(s.data_ptr<float>(), static_cast<size_t>(s.numel())), 1)
        .value();
  }

  static void SetReuse(const std::string& shard, const std::string& id, const TokenMapping& mapping,
                       v1::WorkerGenerateRequest* request) {
    v1::ReuseSource* reuse = request->mutable_reuse();
    reuse->set_shard(shard);
    reuse->set_reference_id(id);
    reuse->mutable_mapping()->set_similarity(mapping.similarity);
    reuse->mutable_mapping()->mutable_source()->Add(mapping.source.begin(), mapping.source.end());
    reuse->mutable_mapping()->mutable_distance()->Add(mapping.distance.begin(),
                                                      mapping.distance.end());
    for (size_t i = 0; i < mapping.unmatched.size(); ++i) {
      if (mapping.unmatched[i]) reuse->mutable_mapping()->add_unmatched(static_cast<int32_t>(i));
    }
  }

  // Tokens and stats of one Generate call as tenant-a (no metadata when `authenticate` is off).
  grpc::Status Call(const v1::WorkerGenerateRequest& request, std::vector<int32_t>* tokens,
                    v1::GenerateStats* stats, bool authenticate = true) {
    grpc::ClientContext context;
    if (authenticate) AddClusterMetadata(TestToken(), "tenant-a", &context);
    auto reader = stub_->Generate(&context, request);
    v1::WorkerGenerateResponse response;
    while (reader->Read(&response)) {
      if (response.has_tokens())
        tokens->insert(tokens->end(), response.tokens().token_ids().begin(),
                       response.tokens().token_ids().end());
      if (response.has_stats()) *stats = response.stats();
    }
    return reader->Finish();
  }

  std::vector<int32_t> EngineTokens(const std::vector<int32_t>& prompt,
                                    const Reference* reference) const {
    SamplingOptions sampling;
    sampling.max_tokens = 8;
    for (int64_t eos : AustenModel().config().eos_token_ids)
      sampling.stop_tokens.push_back(static_cast<int32_t>(eos));
    return engine_->Generate(prompt, reference, WorkerReuse(), sampling).value().tokens;
  }

  std::unique_ptr<cache_node::CacheNode> node_;
  std::unique_ptr<cache_node::CacheNodeServer> node_server_;
  std::unique_ptr<cache_node::CacheNodeClient> node_client_;
  std::string shard_;
  std::unique_ptr<Engine> engine_;
  std::unique_ptr<CacheNodeReferenceSource> real_source_;
  std::unique_ptr<InferenceWorker> worker_;
  std::unique_ptr<WorkerServer> server_;
  std::unique_ptr<v1::Worker::Stub> stub_;
  std::vector<int32_t> reference_ids_;
  std::vector<int32_t> target_;
};

TEST_F(WorkerServiceTest, MissStoresThenParaphraseHitsWithTheEnginesTokens) {
  StartWorker(real_source_.get());
  v1::WorkerGenerateRequest first = Request(reference_ids_);
  first.mutable_store()->set_shard(shard_);
  first.mutable_store()->set_reference_id("ref-1");
  std::vector<int32_t> tokens;
  v1::GenerateStats stats;
  ASSERT_TRUE(Call(first, &tokens, &stats).ok());
  EXPECT_FALSE(stats.cache_hit());
  EXPECT_EQ(tokens, EngineTokens(reference_ids_, nullptr));
  worker_->WaitForStores();
  ASSERT_EQ(worker_->Load().stores.done, 1);

  const cache_node::FindResult found = Find(target_, AustenModel().fingerprint());
  ASSERT_FALSE(found.matches.empty());
  EXPECT_EQ(found.matches[0].reference_id, "ref-1");
  v1::WorkerGenerateRequest second = Request(target_);
  SetReuse(shard_, "ref-1", found.best_mapping, &second);
  std::vector<int32_t> hit_tokens;
  v1::GenerateStats hit_stats;
  ASSERT_TRUE(Call(second, &hit_tokens, &hit_stats).ok());
  EXPECT_TRUE(hit_stats.cache_hit());
  EXPECT_EQ(hit_stats.reference_id(), "ref-1");
  EXPECT_EQ(hit_stats.worker(), server_->address());
  EXPECT_EQ(hit_stats.completion_tokens(), static_cast<int64_t>(hit_tokens.size()));
  const Reference reference = engine_->BuildReference(reference_ids_, WorkerReuse().ecache).value();
  EXPECT_EQ(hit_tokens, EngineTokens(target_, &reference));

  // The worker that stored ref-1 holds it: GetStatus reports it.
  grpc::ClientContext context;
  AddClusterMetadata(TestToken(), "tenant-a", &context);
  v1::WorkerStatus status;
  ASSERT_TRUE(stub_->GetStatus(&context, v1::GetWorkerStatusRequest(), &status).ok());
  EXPECT_EQ(status.model_fingerprint(), AustenModel().fingerprint());
  ASSERT_EQ(status.cached_reference_ids_size(), 1);
  EXPECT_EQ(status.cached_reference_ids(0), "ref-1");
}

TEST_F(WorkerServiceTest, FingerprintMismatchIsServedAsAMiss) {
  StartWorker(real_source_.get());
  // A reference stored under another model's fingerprint (same KV bytes, wrong model).
  const Reference reference = engine_->BuildReference(reference_ids_, WorkerReuse().ecache).value();
  cache_node::NewReference other;
  other.reference_id = "other-model-ref";
  other.token_ids = reference.ids;
  other.codes = reference.codes;
  const at::Tensor sketch = reference.sketch.contiguous();
  other.sketch.assign(sketch.data_ptr<float>(), sketch.data_ptr<float>() + sketch.numel());
  for (const LayerKV& layer : reference.kv.layers) {
    cache_node::LayerKV blobs;
    for (auto [t, blob] : {std::pair{layer.k().contiguous(), &blobs.key},
                           std::pair{layer.v().contiguous(), &blobs.value}}) {
      blob->shape.assign(t.sizes().begin(), t.sizes().end());
      blob->data.assign(static_cast<const char*>(t.data_ptr()), t.nbytes());
    }
    other.layers.push_back(std::move(blobs));
  }
  ASSERT_TRUE(node_client_->Put({"tenant-a", "other-model"}, std::move(other)).ok());
  const cache_node::FindResult found = Find(target_, "other-model");
  ASSERT_FALSE(found.matches.empty());
  v1::WorkerGenerateRequest request = Request(target_);
  request.set_model_fingerprint("other-model");
  SetReuse(shard_, "other-model-ref", found.best_mapping, &request);
  std::vector<int32_t> tokens;
  v1::GenerateStats stats;
  ASSERT_TRUE(Call(request, &tokens, &stats).ok());
  EXPECT_FALSE(stats.cache_hit());
  EXPECT_EQ(tokens, EngineTokens(target_, nullptr));
}

TEST_F(WorkerServiceTest, MissingAuthIsUnauthenticated) {
  StartWorker(real_source_.get());
  std::vector<int32_t> tokens;
  v1::GenerateStats stats;
  EXPECT_EQ(Call(Request(target_), &tokens, &stats, /*authenticate=*/false).error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
  grpc::ClientContext context;
  v1::WorkerStatus status;
  EXPECT_EQ(stub_->GetStatus(&context, v1::GetWorkerStatusRequest(), &status).error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
}

TEST_F(WorkerServiceTest, PastTheQueueIsResourceExhausted) {
  GatedSource gated(real_source_.get());
  WorkerOptions options;
  options.max_batch = 1;
  options.max_queue = 0;
  StartWorker(&gated, options);
  v1::WorkerGenerateRequest held = Request(target_);
  TokenMapping identity;
  identity.similarity = 1.0;
  identity.source.assign(target_.size(), 0);
  identity.unmatched.assign(target_.size(), 0);
  SetReuse(shard_, "not-there", identity, &held);  // held in the gate, then a miss
  std::thread running([&] {
    std::vector<int32_t> tokens;
    v1::GenerateStats stats;
    const grpc::Status served = Call(held, &tokens, &stats);
    EXPECT_TRUE(served.ok()) << served.error_message();
  });
  gated.WaitUntilEntered();
  std::vector<int32_t> tokens;
  v1::GenerateStats stats;
  EXPECT_EQ(Call(Request(target_), &tokens, &stats).error_code(),
            grpc::StatusCode::RESOURCE_EXHAUSTED);
  gated.Release();
  running.join();
}

}  // namespace
}  // namespace semshare::worker
