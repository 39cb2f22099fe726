#include "inference_worker/service/worker.h"

#include <ATen/ATen.h>
#include <c10/util/Exception.h>
#include <prometheus/registry.h>
#include <prometheus/text_serializer.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <map>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "inference_worker/service/byte_lru.h"
#include "inference_worker/service/reuse_decision.h"
#include "tests/inference_worker/service/worker_fixture.h"

namespace semshare::worker {
namespace {

TEST(ByteLruTest, EvictsLeastRecentlyUsedPastTheBudget) {
  ByteLru<std::string, std::string> lru(10);
  lru.Put("a", "A", 4);
  lru.Put("b", "B", 4);
  ASSERT_TRUE(lru.Get("a").has_value());  // a is now most recent
  lru.Put("c", "C", 4);                   // evicts b
  EXPECT_FALSE(lru.Get("b").has_value());
  EXPECT_EQ(lru.Keys(), (std::vector<std::string>{"c", "a"}));
  EXPECT_EQ(lru.bytes(), 8);
  lru.Put("huge", "H", 11);  // larger than the budget: not kept, nothing evicted
  EXPECT_EQ(lru.size(), 2u);
  lru.Put("a", "A2", 2);  // replaces
  EXPECT_EQ(lru.bytes(), 6);
  EXPECT_EQ(*lru.Get("a"), "A2");
}

// An in-memory shard: gathers like a cache node, counts calls.
class FakeSource : public ReferenceSource {
 public:
  absl::Status FetchKV(const std::string& shard, const cache_node::ReferenceScope& scope,
                       const std::string& reference_id, absl::Span<const int32_t> source,
                       const std::function<absl::Status(cache_node::FetchedLayer)>& sink) override {
    ++fetches;
    auto it = references.find(reference_id);
    if (it == references.end() || scope.model_fingerprint != it->second.first) {
      return absl::NotFoundError("no such reference");
    }
    const at::Tensor index =
        at::tensor(std::vector<int64_t>(source.begin(), source.end()), at::kLong);
    const KVCache& kv = it->second.second.kv;
    for (size_t l = 0; l < kv.layers.size(); ++l) {
      if (static_cast<int64_t>(l) == break_at_layer)
        return absl::UnavailableError("the shard went away");
      cache_node::FetchedLayer layer;
      layer.layer = static_cast<int32_t>(l);
      for (size_t i = 0; i < source.size(); ++i) {
        layer.target_tokens.push_back(static_cast<int32_t>(i));
        layer.source_positions.push_back(source[i]);
      }
      for (auto [tensor, blob] : {std::pair{kv.layers[l].k(), &layer.kv.key},
                                  std::pair{kv.layers[l].v(), &layer.kv.value}}) {
        const at::Tensor g = tensor.index_select(1, index).contiguous();
        blob->shape.assign(g.sizes().begin(), g.sizes().end());
        blob->data.assign(static_cast<const char*>(g.data_ptr()), g.nbytes());
      }
      if (absl::Status s = sink(std::move(layer)); !s.ok()) return s;
    }
    return absl::OkStatus();
  }
  absl::Status Put(const std::string& shard, const cache_node::ReferenceScope& scope,
                   cache_node::NewReference reference) override {
    puts.push_back({shard, scope.tenant, reference.reference_id});
    put_layers = reference.layers.size();
    return absl::OkStatus();
  }

  std::map<std::string, std::pair<std::string, Reference>>
      references;  // id -> (fingerprint, reference)
  std::atomic<int> fetches{0};
  int64_t break_at_layer = -1;  // >= 0: the stream breaks before this layer
  std::vector<std::vector<std::string>> puts;
  size_t put_layers = 0;
};

class WorkerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    engine_ = Engine::Create(&AustenModel()).value();
    std::tie(reference_ids_, target_) = FirstPair();
    source_.references["ref-1"] = {AustenModel().fingerprint(),
                                   engine_->BuildReference(reference_ids_).value()};
    const Reference& reference = source_.references["ref-1"].second;
    mapping_ = MapTokens(engine_->EncodeCodes(target_, WorkerReuse().ecache).value(),
                         reference.codes, WorkerReuse().mapping)
                   .value();
  }

  WorkerRequest HitRequest() const {
    WorkerRequest request;
    request.tenant = "tenant-a";
    request.model_fingerprint = AustenModel().fingerprint();
    request.prompt = target_;
    request.sampling.max_tokens = 8;
    request.reuse = ReuseSource{"shard-1", "ref-1", mapping_};
    return request;
  }

  std::vector<int32_t> Expected(const Reference* reference) const {
    SamplingOptions sampling;
    sampling.max_tokens = 8;
    for (int64_t eos : AustenModel().config().eos_token_ids)
      sampling.stop_tokens.push_back(static_cast<int32_t>(eos));
    return engine_->Generate(target_, reference, WorkerReuse(), sampling).value().tokens;
  }

  std::unique_ptr<Engine> engine_;
  FakeSource source_;
  std::vector<int32_t> reference_ids_;
  std::vector<int32_t> target_;
  TokenMapping mapping_;
};

TEST_F(WorkerTest, HitEqualsTheEnginesSemshareOutputAndRepeatsLocally) {
  auto worker =
      InferenceWorker::Create(engine_.get(), WorkerReuse(), &source_, WorkerOptions{}).value();
  const WorkerReply first = worker->Generate(HitRequest()).value();
  EXPECT_TRUE(first.cache_hit) << first.miss_reason;
  EXPECT_FALSE(first.local_hit);
  EXPECT_EQ(first.tokens, Expected(&source_.references["ref-1"].second));
  EXPECT_LT(first.recompute_share, 1.0);
  EXPECT_EQ(source_.fetches, 1);

  const WorkerReply second = worker->Generate(HitRequest()).value();
  EXPECT_TRUE(second.cache_hit);
  EXPECT_TRUE(second.local_hit);
  EXPECT_EQ(second.tokens, first.tokens);
  EXPECT_EQ(source_.fetches, 1);  // no transfer
  EXPECT_EQ(worker->Load().cached_reference_ids, std::vector<std::string>{"ref-1"});

  WorkerRequest other_tenant = HitRequest();
  other_tenant.tenant = "tenant-b";  // holds nothing for tenant-b: fetches (the shard decides)
  (void)worker->Generate(other_tenant).value();
  EXPECT_EQ(source_.fetches, 2);
}

TEST_F(WorkerTest, WithoutOverlapTheWholeTransferComesFirstAndTheHitIsTheSame) {
  WorkerOptions options;
  options.overlap_fetch = false;
  auto worker = InferenceWorker::Create(engine_.get(), WorkerReuse(), &source_, options).value();
  const WorkerReply reply = worker->Generate(HitRequest()).value();
  EXPECT_TRUE(reply.cache_hit) << reply.miss_reason;
  EXPECT_FALSE(reply.local_hit);
  EXPECT_EQ(reply.tokens, Expected(&source_.references["ref-1"].second));
  source_.break_at_layer = 3;
  WorkerRequest other = HitRequest();
  other.tenant = "tenant-b";  // not held locally for tenant-b: fetched, and the fetch breaks
  const WorkerReply broken = worker->Generate(other).value();
  EXPECT_FALSE(broken.cache_hit);
  EXPECT_NE(broken.miss_reason.find("fetch failed"), std::string::npos) << broken.miss_reason;
  EXPECT_EQ(broken.tokens, Expected(nullptr));
}

TEST_F(WorkerTest, ATransferBrokenMidwayIsAMissWithTheFullOutput) {
  auto worker =
      InferenceWorker::Create(engine_.get(), WorkerReuse(), &source_, WorkerOptions{}).value();
  source_.break_at_layer = 3;  // the recompute has started on the first layers when it breaks
  const WorkerReply broken = worker->Generate(HitRequest()).value();
  EXPECT_FALSE(broken.cache_hit);
  EXPECT_NE(broken.miss_reason.find("fetch failed"), std::string::npos) << broken.miss_reason;
  EXPECT_EQ(broken.tokens, Expected(nullptr));
  EXPECT_TRUE(worker->Load().cached_reference_ids.empty());  // nothing half-fetched is held

  source_.break_at_layer = -1;
  const WorkerReply whole = worker->Generate(HitRequest()).value();
  EXPECT_TRUE(whole.cache_hit) << whole.miss_reason;
  EXPECT_EQ(whole.tokens, Expected(&source_.references["ref-1"].second));
}

// Recomputing every token of every layer cannot pay whatever the machine's speed (the
// prediction is a ratio of the same flops): the engine's bypass skips the reference.
TEST_F(WorkerTest, ReuseThatWouldNotPayIsBypassedWithoutTransfer) {
  ReuseOptions reuse = WorkerReuse();
  reuse.bypass = true;
  reuse.recompute.hd_share = 1.0;
  reuse.recompute.decay = 1.0;
  ASSERT_TRUE(engine_
                  ->BypassReason(static_cast<int64_t>(target_.size()),
                                 static_cast<int64_t>(reference_ids_.size()), reuse)
                  .has_value());
  prometheus::Registry registry;
  WorkerMetrics metrics(registry);
  auto worker =
      InferenceWorker::Create(engine_.get(), reuse, &source_, WorkerOptions{}, &metrics).value();
  const WorkerReply reply = worker->Generate(HitRequest()).value();
  EXPECT_FALSE(reply.cache_hit);
  EXPECT_TRUE(reply.bypassed);
  EXPECT_THAT(reply.bypass_reason, ::testing::HasSubstr("predicted reuse"));
  EXPECT_EQ(reply.similarity, mapping_.similarity);
  EXPECT_EQ(reply.tokens, Expected(nullptr));  // a full prefill
  EXPECT_EQ(source_.fetches, 0);
  EXPECT_TRUE(source_.puts.empty());  // a hit's request names no store target
  const std::string text = prometheus::TextSerializer().Serialize(registry.Collect());
  EXPECT_THAT(text,
              ::testing::HasSubstr(
                  "semshare_worker_requests_total{outcome=\"bypass\",tenant=\"tenant-a\"} 1\n"));
  EXPECT_THAT(text, ::testing::HasSubstr("semshare_worker_kv_fetch_seconds_count 0\n"));
}

TEST_F(WorkerTest, MetricsCountFetchesLocalHitsAndHeldReferences) {
  prometheus::Registry registry;
  WorkerMetrics metrics(registry);
  auto worker =
      InferenceWorker::Create(engine_.get(), WorkerReuse(), &source_, WorkerOptions{}, &metrics)
          .value();
  ASSERT_TRUE(worker->Generate(HitRequest()).value().cache_hit);
  ASSERT_TRUE(worker->Generate(HitRequest()).value().local_hit);
  const ModelConfig& c = AustenModel().config();
  // Keys and values of every layer for every target token, as the source sends them.
  const int64_t element =
      static_cast<int64_t>(source_.references["ref-1"].second.kv.layers[0].k().element_size());
  const int64_t fetched = 2 * c.num_hidden_layers * c.num_key_value_heads * c.head_dim *
                          static_cast<int64_t>(target_.size()) * element;
  const std::string text = prometheus::TextSerializer().Serialize(registry.Collect());
  using ::testing::HasSubstr;
  EXPECT_THAT(text,
              HasSubstr("semshare_worker_requests_total{outcome=\"hit\",tenant=\"tenant-a\"} 2\n"));
  EXPECT_THAT(text,
              HasSubstr(absl::StrCat("semshare_worker_kv_fetched_bytes_total{tenant=\"tenant-a\"} ",
                                     fetched, "\n")));
  EXPECT_THAT(text, HasSubstr("semshare_worker_kv_fetch_seconds_count 1\n"));
  EXPECT_THAT(text, HasSubstr("semshare_worker_local_cache_hits_total 1\n"));
  EXPECT_THAT(text, HasSubstr("semshare_worker_local_cache_references 1\n"));
  EXPECT_THAT(text, HasSubstr(absl::StrCat("semshare_worker_local_cache_bytes ",
                                           worker->Load().cached_bytes, "\n")));
  EXPECT_THAT(text, HasSubstr("semshare_worker_in_flight_requests 0\n"));
}

TEST_F(WorkerTest, TokensGoOutAsTheyAreChosenAndAGoneClientCancels) {
  auto worker =
      InferenceWorker::Create(engine_.get(), WorkerReuse(), &source_, WorkerOptions{}).value();
  WorkerRequest request = HitRequest();
  std::vector<int32_t> tokens;
  std::string text;
  request.on_token = [&](int32_t token, const std::string& piece) {
    tokens.push_back(token);
    text += piece;
    return true;
  };
  const WorkerReply reply = worker->Generate(request).value();
  EXPECT_TRUE(reply.cache_hit) << reply.miss_reason;
  EXPECT_EQ(tokens, reply.tokens);
  EXPECT_EQ(tokens, Expected(&source_.references["ref-1"].second));
  EXPECT_TRUE(absl::StartsWith(reply.text, text)) << text << " | " << reply.text;
  EXPECT_FALSE(text.empty());

  // The client goes away after the second token: the request ends there, cancelled.
  int calls = 0;
  request.on_token = [&](int32_t, const std::string&) { return ++calls < 2; };
  EXPECT_EQ(worker->Generate(request).status().code(), absl::StatusCode::kCancelled);
  EXPECT_EQ(calls, 2);
  request.reuse.reset();  // a miss streams the same way
  calls = 0;
  EXPECT_EQ(worker->Generate(request).status().code(), absl::StatusCode::kCancelled);
  EXPECT_EQ(calls, 2);
}

TEST_F(WorkerTest, FingerprintMismatchIsAMissWithoutTransfer) {
  auto worker =
      InferenceWorker::Create(engine_.get(), WorkerReuse(), &source_, WorkerOptions{}).value();
  WorkerRequest request = HitRequest();
  request.model_fingerprint = "another-model";
  const WorkerReply reply = worker->Generate(request).value();
  EXPECT_FALSE(reply.cache_hit);
  EXPECT_FALSE(reply.miss_reason.empty());
  EXPECT_EQ(source_.fetches, 0);
  EXPECT_EQ(reply.tokens, Expected(nullptr));
}

TEST_F(WorkerTest, UnknownReferenceOrLowSimilarityIsAMiss) {
  auto worker =
      InferenceWorker::Create(engine_.get(), WorkerReuse(), &source_, WorkerOptions{}).value();
  WorkerRequest unknown = HitRequest();
  unknown.reuse->reference_id = "gone";
  const WorkerReply a = worker->Generate(unknown).value();
  EXPECT_FALSE(a.cache_hit);
  EXPECT_EQ(a.tokens, Expected(nullptr));
  WorkerRequest strict = HitRequest();
  strict.similarity_threshold = 0.9999;
  const WorkerReply b = worker->Generate(strict).value();
  EXPECT_FALSE(b.cache_hit);
  EXPECT_EQ(source_.fetches, 1);  // only the unknown one was tried
}

TEST_F(WorkerTest, MissStoresThePromptAfterReplying) {
  auto worker =
      InferenceWorker::Create(engine_.get(), WorkerReuse(), &source_, WorkerOptions{}).value();
  WorkerRequest request = HitRequest();
  request.reuse.reset();
  request.store = StorePlacement{"shard-2", "new-ref"};
  const WorkerReply reply = worker->Generate(request).value();
  EXPECT_FALSE(reply.cache_hit);
  EXPECT_EQ(reply.reference_id, "new-ref");
  worker->WaitForStores();
  ASSERT_EQ(source_.puts.size(), 1u);
  EXPECT_EQ(source_.puts[0], (std::vector<std::string>{"shard-2", "tenant-a", "new-ref"}));
  EXPECT_EQ(source_.put_layers, static_cast<size_t>(AustenModel().num_layers()));
  EXPECT_EQ(worker->Load().stores.done, 1);
  EXPECT_EQ(worker->Load().cached_reference_ids, std::vector<std::string>{"new-ref"});
}

// With no room for a miss's KV in the store queue, the store recomputes it: the same reference.
TEST_F(WorkerTest, AMissStoreWithoutRoomForItsKvRecomputesIt) {
  WorkerOptions options;
  options.stores.max_pending_bytes = 0;
  auto worker = InferenceWorker::Create(engine_.get(), WorkerReuse(), &source_, options).value();
  WorkerRequest request = HitRequest();
  request.reuse.reset();
  request.store = StorePlacement{"shard-2", "new-ref"};
  ASSERT_TRUE(worker->Generate(request).ok());
  worker->WaitForStores();
  ASSERT_EQ(source_.puts.size(), 1u);
  EXPECT_EQ(source_.put_layers, static_cast<size_t>(AustenModel().num_layers()));
  EXPECT_EQ(worker->Load().stores.done, 1);
}

TEST_F(WorkerTest, PastTheQueueIsResourceExhausted) {
  GatedSource gated(&source_);
  WorkerOptions options;
  options.max_batch = 1;
  options.max_queue = 0;
  auto worker = InferenceWorker::Create(engine_.get(), WorkerReuse(), &gated, options).value();
  std::thread running([&] { EXPECT_TRUE(worker->Generate(HitRequest()).ok()); });
  gated.WaitUntilEntered();
  EXPECT_EQ(worker->Load().active_requests, 1);
  EXPECT_EQ(worker->Generate(HitRequest()).status().code(), absl::StatusCode::kResourceExhausted);
  gated.Release();
  running.join();
  EXPECT_TRUE(worker->Generate(HitRequest()).ok());
}

// An error inside the engine (what ATen throws) fails the request it hit with INTERNAL and
// its message; the KV budget comes back whole and the next request is served.
TEST_F(WorkerTest, AnEngineThatThrowsFailsThatRequestOnlyAndFreesItsKv) {
  std::atomic<bool> fail{true};
  engine_->SetDecodeFaultForTesting([&fail] {
    if (fail) TORCH_CHECK(false, "injected decode fault");
  });
  auto worker =
      InferenceWorker::Create(engine_.get(), WorkerReuse(), &source_, WorkerOptions{}).value();
  const absl::StatusOr<WorkerReply> failed = worker->Generate(HitRequest());
  EXPECT_EQ(failed.status().code(), absl::StatusCode::kInternal);
  EXPECT_THAT(failed.status().message(), ::testing::HasSubstr("injected decode fault"));
  EXPECT_EQ(worker->Load().kv_reserved_bytes, 0);
  EXPECT_EQ(worker->Load().active_requests, 0);

  engine_->SetDecodeFaultForTesting([] { throw std::bad_alloc(); });
  EXPECT_EQ(worker->Generate(HitRequest()).status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(worker->Load().kv_reserved_bytes, 0);

  engine_->SetDecodeFaultForTesting(nullptr);
  const WorkerReply served = worker->Generate(HitRequest()).value();
  EXPECT_EQ(served.tokens, Expected(&source_.references["ref-1"].second));
  EXPECT_EQ(worker->Load().kv_reserved_bytes, 0);
}

// Batching never changes results: eight different requests served at once (hits, misses, a
// bypass, other lengths and sampling settings) get exactly the tokens each gets alone.
TEST_F(WorkerTest, ABatchOfMixedRequestsGivesEachTheTokensItGetsAlone) {
  ReuseOptions reuse = WorkerReuse();
  reuse.bypass = true;  // lets the short request below be bypassed
  // A short prompt matched into a very long reference: scanning the reference's codes would
  // cost more than prefilling the prompt.
  const std::vector<int32_t> shorter(target_.begin(), target_.begin() + 6);
  TokenMapping short_mapping = mapping_;
  short_mapping.source.resize(shorter.size());
  short_mapping.unmatched.resize(shorter.size());
  short_mapping.source.back() = 1000000;
  ASSERT_FALSE(engine_
                   ->BypassReason(static_cast<int64_t>(target_.size()),
                                  static_cast<int64_t>(reference_ids_.size()), reuse)
                   .has_value());
  ASSERT_TRUE(engine_
                  ->BypassReason(static_cast<int64_t>(shorter.size()),
                                 ReferenceTokensSeen(short_mapping), reuse)
                  .has_value());

  std::vector<WorkerRequest> requests(8, HitRequest());
  requests[1].sampling = {12, 0.8, 0.9, 7, {}, {}};  // a sampled hit
  requests[2].reuse.reset();                         // a miss
  requests[2].sampling.max_tokens = 16;
  requests[3].reuse.reset();  // a sampled miss of another prompt
  requests[3].prompt = reference_ids_;
  requests[3].sampling = {10, 1.0, 1.0, 3, {}, {}};
  requests[4].prompt = shorter;  // bypassed
  requests[4].reuse->mapping = short_mapping;
  requests[5].similarity_threshold = 0.9999;  // a miss: below the threshold
  requests[5].sampling = {5, 0.7, 1.0, 11, {}, {}};
  requests[6].sampling.max_tokens = 1;
  requests[7].reuse.reset();
  requests[7].prompt.assign(target_.begin(), target_.begin() + 40);
  requests[7].sampling = {20, 1.2, 0.8, 99, {}, {}};

  auto worker = InferenceWorker::Create(engine_.get(), reuse, &source_, WorkerOptions{}).value();
  std::vector<WorkerReply> alone;
  alone.reserve(requests.size());
  for (const WorkerRequest& request : requests) alone.push_back(worker->Generate(request).value());
  EXPECT_TRUE(alone[0].cache_hit);
  EXPECT_TRUE(alone[1].cache_hit);
  EXPECT_FALSE(alone[2].cache_hit);
  EXPECT_TRUE(alone[4].bypassed);
  EXPECT_FALSE(alone[5].cache_hit);

  prometheus::Registry registry;
  WorkerMetrics metrics(registry);
  WorkerOptions options;
  options.max_batch = 8;
  auto batched = InferenceWorker::Create(engine_.get(), reuse, &source_, options, &metrics).value();
  std::vector<absl::StatusOr<WorkerReply>> together(requests.size(),
                                                    absl::UnknownError("not served"));
  std::vector<std::thread> clients;
  clients.reserve(requests.size());
  for (size_t i = 0; i < requests.size(); ++i)
    clients.emplace_back([&, i] { together[i] = batched->Generate(requests[i]); });
  for (std::thread& client : clients) client.join();
  for (size_t i = 0; i < requests.size(); ++i) {
    ASSERT_TRUE(together[i].ok()) << i << ": " << together[i].status();
    EXPECT_EQ(together[i]->tokens, alone[i].tokens) << "request " << i;
    EXPECT_EQ(together[i]->cache_hit, alone[i].cache_hit) << "request " << i;
    EXPECT_EQ(together[i]->bypassed, alone[i].bypassed) << "request " << i;
  }
  // They really ran together: some decode step held more than one request.
  const std::string text = prometheus::TextSerializer().Serialize(registry.Collect());
  const auto value = [&](const std::string& name) {
    const size_t at = text.find(name + " ");
    return at == std::string::npos ? -1.0 : std::stod(text.substr(at + name.size() + 1));
  };
  EXPECT_GT(value("semshare_worker_decode_batch_size_sum"),
            value("semshare_worker_decode_batch_size_count"));
  EXPECT_EQ(batched->Load().kv_reserved_bytes, 0);
}

TEST_F(WorkerTest, AStopStringEndsGenerationAndTheTextBeforeIt) {
  auto worker =
      InferenceWorker::Create(engine_.get(), WorkerReuse(), &source_, WorkerOptions{}).value();
  WorkerRequest request = HitRequest();
  request.reuse.reset();
  request.sampling.max_tokens = 24;
  const WorkerReply full = worker->Generate(request).value();
  ASSERT_EQ(full.tokens.size(), 24U);
  EXPECT_EQ(full.finish_reason, "length");
  EXPECT_EQ(full.cached_tokens, 0);  // a miss reused nothing
  const Tokenizer& tokenizer = *AustenModel().tokenizer();

  // A stop string spanning a token boundary: two characters on either side of token 8's start.
  const size_t boundary = tokenizer.Decode(absl::MakeConstSpan(full.tokens).subspan(0, 8)).size();
  ASSERT_GE(boundary, 2U);
  ASSERT_GE(full.text.size(), boundary + 2);
  const std::string stop = full.text.substr(boundary - 2, 4);
  const size_t at = full.text.find(stop);
  request.sampling.stop_strings = {"never in this text \x01", stop};
  std::string streamed;
  std::vector<int32_t> streamed_tokens;
  request.on_token = [&](int32_t token, const std::string& text) {
    streamed_tokens.push_back(token);
    streamed += text;
    return true;
  };
  const WorkerReply stopped = worker->Generate(request).value();
  EXPECT_EQ(stopped.finish_reason, "stop");
  EXPECT_EQ(stopped.text, full.text.substr(0, at));
  // Nothing past the text before the stop string was ever sent.
  EXPECT_EQ(streamed, stopped.text);
  // It stopped at the token that completed the stop string, not before or after.
  ASSERT_FALSE(stopped.tokens.empty());
  EXPECT_TRUE(absl::StrContains(tokenizer.Decode(stopped.tokens), stop));
  EXPECT_FALSE(absl::StrContains(
      tokenizer.Decode(absl::MakeConstSpan(stopped.tokens).first(stopped.tokens.size() - 1)),
      stop));
  EXPECT_LT(stopped.tokens.size(), full.tokens.size());
  EXPECT_EQ(streamed_tokens, stopped.tokens);
  EXPECT_EQ(stopped.tokens, std::vector<int32_t>(
                                full.tokens.begin(),
                                full.tokens.begin() + static_cast<int64_t>(stopped.tokens.size())));

  // A stop string that never appears changes nothing.
  request.sampling.stop_strings = {"never in this text \x01"};
  streamed.clear();
  streamed_tokens.clear();
  const WorkerReply unstopped = worker->Generate(request).value();
  EXPECT_EQ(unstopped.tokens, full.tokens);
  EXPECT_EQ(unstopped.text, full.text);
  EXPECT_EQ(unstopped.finish_reason, "length");
  EXPECT_TRUE(absl::StartsWith(full.text, streamed));

  // A stop token ends generation after it, kept in the output.
  request.sampling.stop_strings.clear();
  const int32_t stop_token = full.tokens[5];
  const auto first = std::find(full.tokens.begin(), full.tokens.end(), stop_token);
  request.sampling.stop_token_ids = {stop_token};
  const WorkerReply at_token = worker->Generate(request).value();
  EXPECT_EQ(at_token.tokens, std::vector<int32_t>(full.tokens.begin(), first + 1));
  EXPECT_EQ(at_token.finish_reason, "stop");

  // More than four stop strings, an empty one, or a token outside the vocabulary: refused.
  request.sampling.stop_token_ids = {static_cast<int32_t>(AustenModel().config().vocab_size)};
  EXPECT_EQ(worker->Generate(request).status().code(), absl::StatusCode::kInvalidArgument);
  request.sampling.stop_token_ids.clear();
  request.sampling.stop_strings = {"a", "b", "c", "d", "e"};
  EXPECT_EQ(worker->Generate(request).status().code(), absl::StatusCode::kInvalidArgument);
  request.sampling.stop_strings = {""};
  EXPECT_EQ(worker->Generate(request).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(WorkerTest, AHitReportsThePromptTokensItDidNotRecompute) {
  auto worker =
      InferenceWorker::Create(engine_.get(), WorkerReuse(), &source_, WorkerOptions{}).value();
  const WorkerReply hit = worker->Generate(HitRequest()).value();
  ASSERT_TRUE(hit.cache_hit) << hit.miss_reason;
  ASSERT_LT(hit.recompute_share, 1.0);
  EXPECT_GT(hit.cached_tokens, 0);
  EXPECT_LT(hit.cached_tokens, hit.prompt_tokens);
  EXPECT_EQ(hit.cached_tokens,
            hit.prompt_tokens -
                std::llround(hit.recompute_share * static_cast<double>(hit.prompt_tokens)));
}

TEST(WorkerOptionsTest, BadOptionsAreRefused) {
  WorkerOptions options;
  options.max_batch = 0;
  EXPECT_FALSE(options.Validate().ok());
  options = WorkerOptions{};
  options.max_queue = -1;
  EXPECT_FALSE(options.Validate().ok());
}

}  // namespace
}  // namespace semshare::worker
