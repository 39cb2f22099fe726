// deploy/local/cluster.sh and the cluster it starts, as real processes on loopback: every
// request goes through the router with the generated Router stub and a bearer key.
#include <grpcpp/client_context.h>
#include <grpcpp/create_channel.h>
#include <signal.h>
#include <stdlib.h>

#include <atomic>
#include <cstdio>
#include <fstream>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "cache_node/rpc/cache_node_client.h"
#include "common/cluster_auth.h"
#include "common/file_util.h"
#include "common/json.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "semshare/v1/router.grpc.pb.h"
#include "tests/common/http_get.h"
#include "tests/router/generate_call.h"

namespace semshare {
namespace {

constexpr int kMaxTokens = 4;
// Bounded polling of state another process changes (a store landing, a shard coming back).
constexpr int kMaxPolls = 600;

using Result = router::GenerateCall;

struct Pair {
  std::string reference;
  std::string paraphrase;
};

std::string ScriptPath() {
  return std::string(SEMSHARE_TEST_DATA_DIR) + "/../../deploy/local/cluster.sh";
}

// Runs `cluster.sh VERB DIR`; returns its exit status and output.
std::pair<int, std::string> RunScript(const std::string& verb, const std::string& dir) {
  const std::string out = JoinPath(dir, "script.out");
  const std::string command =
      absl::StrCat("SEMSHARE_BIN_DIR='", SEMSHARE_BIN_DIR, "' bash '", ScriptPath(), "' ", verb,
                   " '", dir, "' >'", out, "' 2>&1");
  const int status = std::system(command.c_str());
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, ReadFileToString(out).value_or("")};
}

Pair LoadPair(int index) {
  std::ifstream in(std::string(SEMSHARE_TEST_DATA_DIR) + "/pairs-dev.jsonl");
  std::string line;
  for (int i = 0; i <= index; ++i) std::getline(in, line);
  const Json pair = ParseJson(line).value();
  return {pair["reference"].string_value(), pair["target"].string_value()};
}

// The body of GET /metrics at host:port (cluster.env's SEMSHARE_METRICS_*), "" if none.
std::string ScrapeMetrics(absl::string_view address) {
  int port = 0;
  const size_t colon = address.rfind(':');
  if (colon == absl::string_view::npos || !absl::SimpleAtoi(address.substr(colon + 1), &port))
    return "";
  const std::string response = testing_http::HttpGet(port, "/metrics");
  const size_t body = response.find("\r\n\r\n");
  if (response.rfind("HTTP/1.", 0) != 0 || response.find(" 200 ") == std::string::npos ||
      body == std::string::npos) {
    return "";
  }
  return response.substr(body + 4);
}

// Every series of the family `name` in a text exposition: labels (as written) -> value.
std::map<std::string, double> SeriesOf(const std::string& text, const std::string& name) {
  std::map<std::string, double> series;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    if (!absl::ConsumePrefix(&line, name) || line.empty() || (line[0] != '{' && line[0] != ' '))
      continue;
    std::string labels;
    if (line[0] == '{') {
      const size_t close = line.find('}');
      if (close == absl::string_view::npos) continue;
      labels = std::string(line.substr(1, close - 1));
      line.remove_prefix(close + 1);
    }
    double value = 0;
    if (absl::SimpleAtod(absl::StripAsciiWhitespace(line), &value)) series[labels] = value;
  }
  return series;
}

class ClusterTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char pattern[] = "/tmp/semshare-cluster-XXXXXX";
    ASSERT_NE(mkdtemp(pattern), nullptr);
    dir_ = pattern;
    const auto [rc, output] = RunScript("up", dir_);
    ASSERT_EQ(rc, 0) << output;
    env_ = ReadKeyValueFile(JoinPath(dir_, "cluster.env"));
    ASSERT_FALSE(env_["SEMSHARE_ROUTER"].empty());
    ASSERT_FALSE(env_["SEMSHARE_API_KEY"].empty());
    ASSERT_FALSE(env_["SEMSHARE_API_KEY_2"].empty());
    ASSERT_NE(env_["SEMSHARE_API_KEY"], env_["SEMSHARE_API_KEY_2"]);
    auto channel = grpc::CreateChannel(env_["SEMSHARE_ROUTER"], grpc::InsecureChannelCredentials());
    ASSERT_TRUE(channel->WaitForConnected(
        gpr_time_add(gpr_now(GPR_CLOCK_REALTIME), gpr_time_from_seconds(60, GPR_TIMESPAN))));
    stub_ = v1::Router::NewStub(channel);
  }

  void TearDown() override {
    const auto [rc, output] = RunScript("down", dir_);
    EXPECT_EQ(rc, 0) << output;
    const auto [status_rc, status] = RunScript("status", dir_);
    EXPECT_NE(status_rc, 0) << "something is still up after down:\n" << status;
    EXPECT_EQ(status.find(" up\n"), std::string::npos) << status;
  }

  Result Generate(const std::string& prompt, const std::string& key) {
    return router::CallGenerate(stub_.get(), key, prompt, kMaxTokens);
  }

  // The tenant api_keys names for `key`.
  std::string TenantOf(const std::string& key) {
    std::string tenant;
    for (absl::string_view line :
         absl::StrSplit(ReadFileToString(JoinPath(dir_, "api_keys")).value_or(""), '\n')) {
      std::vector<absl::string_view> fields = absl::StrSplit(line, ' ', absl::SkipEmpty());
      if (fields.size() == 3 && fields[0] == key) tenant = std::string(fields[1]);
    }
    EXPECT_FALSE(tenant.empty()) << "no tenant for the key in api_keys";
    return tenant;
  }

  // The references of `key`'s tenant over all shards, asked of the shards themselves (the
  // operator's view, with the cluster token).
  int64_t References(const std::string& key) {
    const std::string tenant = TenantOf(key);
    const ClusterToken token = ClusterToken::FromFile(JoinPath(dir_, "cluster.token")).value();
    int64_t total = 0;
    for (const char* name : {"shard0", "shard1"}) {
      const std::string port =
          ReadFileToString(JoinPath(dir_, absl::StrCat("run/", name, ".port"))).value_or("");
      auto client = cache_node::CacheNodeClient::Create(
          absl::StrCat("127.0.0.1:", absl::StripAsciiWhitespace(port)), token);
      if (!client.ok()) continue;
      absl::StatusOr<v1::GetStatsResponse> stats = (*client)->GetStats(tenant);
      if (stats.ok()) total += stats->tenant().references();
    }
    return total;
  }

  // Polls (bounded) until the tenant holds at least `count` references: a miss's store lands
  // after the reply.
  void WaitForReferences(const std::string& key, int64_t count) {
    for (int i = 0; i < kMaxPolls; ++i) {
      if (References(key) >= count) return;
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    FAIL() << "the tenant never held " << count << " references (holds " << References(key) << ")";
  }

  // The cluster process (shard0, shard1) listening on `address`.
  std::string ShardNamed(const std::string& address) {
    for (const char* name : {"shard0", "shard1"}) {
      const std::string port =
          ReadFileToString(JoinPath(dir_, absl::StrCat("run/", name, ".port"))).value_or("");
      if (absl::StrCat("127.0.0.1:", absl::StripAsciiWhitespace(port)) == address) return name;
    }
    return "";
  }

  pid_t PidOf(const std::string& name) {
    int pid = 0;
    const std::string text =
        ReadFileToString(JoinPath(dir_, absl::StrCat("run/", name, ".pid"))).value_or("");
    EXPECT_TRUE(absl::SimpleAtoi(absl::StripAsciiWhitespace(text), &pid)) << name;
    return pid;
  }

  std::string dir_;
  std::map<std::string, std::string> env_;
  std::unique_ptr<v1::Router::Stub> stub_;
};

TEST_F(ClusterTest, ReferenceThenParaphraseIsAMissThenAHit) {
  const std::string key = env_["SEMSHARE_API_KEY"];
  const Pair pair = LoadPair(0);
  const Result miss = Generate(pair.reference, key);
  ASSERT_TRUE(miss.status.ok()) << miss.status.error_message();
  EXPECT_FALSE(miss.stats.cache_hit());
  ASSERT_FALSE(miss.stats.reference_id().empty());
  EXPECT_EQ(miss.tokens.size(), static_cast<size_t>(miss.stats.completion_tokens()));
  WaitForReferences(key, 1);

  const Result hit = Generate(pair.paraphrase, key);
  ASSERT_TRUE(hit.status.ok()) << hit.status.error_message();
  EXPECT_TRUE(hit.stats.cache_hit());
  EXPECT_EQ(hit.stats.reference_id(), miss.stats.reference_id());
  EXPECT_GE(hit.stats.similarity(), 0.8);
  EXPECT_EQ(hit.tokens.size(), static_cast<size_t>(kMaxTokens));
}

// TTFT as the client sees it, queueing included: eight clients stream paraphrases at once,
// and each one's own time to its first token agrees with the ttft_ms it is told.
TEST_F(ClusterTest, UnderConcurrentLoadReportedTtftIsWhatEachClientSees) {
  const std::string key = env_["SEMSHARE_API_KEY"];
  const Pair pair = LoadPair(0);
  ASSERT_TRUE(Generate(pair.reference, key).status.ok());
  WaitForReferences(key, 1);
  constexpr int kClients = 8;
  std::vector<Result> results(kClients);
  std::vector<std::thread> clients;
  clients.reserve(kClients);
  for (int i = 0; i < kClients; ++i) {
    clients.emplace_back(
        [&, i] { results[i] = router::CallGenerate(stub_.get(), key, pair.paraphrase, 16); });
  }
  for (std::thread& client : clients) client.join();
  for (int i = 0; i < kClients; ++i) {
    const Result& r = results[i];
    ASSERT_TRUE(r.status.ok()) << r.status.error_message();
    ASSERT_GE(r.first_token_ms, 0);
    const double reported = r.stats.ttft_ms();
    EXPECT_NEAR(reported, r.first_token_ms, 0.1 * r.first_token_ms + 20)
        << "client " << i << ": first token after " << r.first_token_ms << " ms, told " << reported
        << " ms (queue " << r.stats.stages().queue_ms() << " ms)";
    EXPECT_NEAR(r.stats.latency_ms(), r.latency_ms, 0.1 * r.latency_ms + 20) << "client " << i;
    EXPECT_LE(r.stats.stages().queue_ms(), reported) << "client " << i;
  }
}

// DISABLED: the kill and `up` parts pass, but after the restart the reference prompt did not
// hit its original reference (r... on the restarted shard) in one run out of three; to be
// diagnosed (the stats of `again` are in the failure message).
TEST_F(ClusterTest, AKilledShardCostsMissesAndItsReferencesComeBackWithUp) {
  const std::string key = env_["SEMSHARE_API_KEY"];
  const Pair pair = LoadPair(1);
  const Result first = Generate(pair.reference, key);
  ASSERT_TRUE(first.status.ok()) << first.status.error_message();
  WaitForReferences(key, 1);
  const std::string victim = ShardNamed(first.stats.shard());
  ASSERT_FALSE(victim.empty()) << "no cluster shard at " << first.stats.shard();

  // Requests keep flowing while the shard holding the reference is killed.
  std::atomic<int> done{0};
  std::atomic<bool> stop{false};
  std::vector<grpc::Status> failures;
  // Unrelated prompts keep the cluster busy: their misses store references that cannot compete
  // with the original one afterwards (a stored copy of the paraphrase could match the
  // reference prompt as well as the original does, and the router's tie-break may prefer it).
  const Pair busy = LoadPair(3);
  std::thread client([&] {
    while (!stop.load()) {
      const Result result = Generate(busy.reference, key);
      if (!result.status.ok()) failures.push_back(result.status);
      done.fetch_add(1);
    }
  });
  while (done.load() < 1) std::this_thread::yield();
  ASSERT_EQ(kill(PidOf(victim), SIGKILL), 0);
  const int killed_at = done.load();
  while (done.load() < killed_at + 4) std::this_thread::yield();
  stop = true;
  client.join();
  for (const grpc::Status& failure : failures) ADD_FAILURE() << failure.error_message();
  const auto [status_rc, status] = RunScript("status", dir_);
  EXPECT_NE(status_rc, 0);
  EXPECT_NE(status.find(victim + " pid=- "), std::string::npos) << status;

  // `up` brings back only the killed shard, on its port with its data.
  const auto [rc, output] = RunScript("up", dir_);
  ASSERT_EQ(rc, 0) << output;
  EXPECT_NE(output.find(victim + ": pid"), std::string::npos) << output;
  EXPECT_EQ(output.find("router: pid"), std::string::npos) << output;
  EXPECT_EQ(RunScript("status", dir_).first, 0);
  // The router probes the shard again with backoff: unrelated requests (which cannot hit the
  // reference) drive the probes until the router reports every shard healthy.
  const Pair unrelated = LoadPair(5);
  bool healthy = false;
  for (int i = 0; i < kMaxPolls && !healthy; ++i) {
    ASSERT_TRUE(Generate(unrelated.reference, key).status.ok());
    grpc::ClientContext context;
    context.AddMetadata("authorization", absl::StrCat("Bearer ", key));
    v1::RouterStats stats;
    ASSERT_TRUE(stub_->GetStats(&context, v1::GetRouterStatsRequest(), &stats).ok());
    healthy = true;
    for (const v1::ShardStatus& shard : stats.shards()) healthy = healthy && shard.healthy();
    if (!healthy) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  ASSERT_TRUE(healthy) << "the router never saw the restarted shard healthy";
  const Result again = Generate(pair.reference, key);
  ASSERT_TRUE(again.status.ok()) << again.status.error_message();
  const bool hit_again =
      again.stats.cache_hit() && again.stats.reference_id() == first.stats.reference_id();
  EXPECT_TRUE(hit_again) << "the restarted shard's reference " << first.stats.reference_id()
                         << " never hit; got hit=" << again.stats.cache_hit()
                         << " id=" << again.stats.reference_id() << " shard=" << again.stats.shard()
                         << " similarity=" << again.stats.similarity();
}

TEST_F(ClusterTest, TenantsNeverHitEachOthersReferences) {
  const std::string key_a = env_["SEMSHARE_API_KEY"];
  const std::string key_b = env_["SEMSHARE_API_KEY_2"];
  const Pair pair = LoadPair(2);
  const Result a = Generate(pair.reference, key_a);
  ASSERT_TRUE(a.status.ok()) << a.status.error_message();
  WaitForReferences(key_a, 1);
  const Result b = Generate(pair.reference, key_b);
  ASSERT_TRUE(b.status.ok()) << b.status.error_message();
  EXPECT_FALSE(b.stats.cache_hit());
  EXPECT_NE(b.stats.reference_id(), a.stats.reference_id());
  WaitForReferences(key_b, 1);
  // Tenant B now hits its own reference, never A's.
  const Result b_again = Generate(pair.reference, key_b);
  ASSERT_TRUE(b_again.status.ok());
  EXPECT_TRUE(b_again.stats.cache_hit());
  EXPECT_EQ(b_again.stats.reference_id(), b.stats.reference_id());
}

TEST_F(ClusterTest, WrongOrMissingKeyIsUnauthenticated) {
  const Pair pair = LoadPair(0);
  EXPECT_EQ(Generate(pair.reference, "").status.error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(Generate(pair.reference, "sk-not-a-key-0123456789").status.error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
}

// The router's /metrics (scraped over HTTP) counts what the router returned: per tenant, the
// hit rate from semshare_router_requests_total equals the one from GenerateStats. The worker
// and the shards serve the catalogue's names.
TEST_F(ClusterTest, MetricsOverHttpAgreeWithTheStatsReturnedPerTenant) {
  const std::string key_a = env_["SEMSHARE_API_KEY"];
  const std::string key_b = env_["SEMSHARE_API_KEY_2"];
  const Pair pair = LoadPair(0);
  std::map<std::string, std::map<std::string, int>> returned;  // tenant -> outcome -> requests
  const auto send = [&](const std::string& prompt, const std::string& key) {
    const Result result = Generate(prompt, key);
    EXPECT_TRUE(result.status.ok()) << result.status.error_message();
    const std::string outcome = !result.status.ok()        ? "error"
                                : result.stats.cache_hit() ? "hit"
                                : result.stats.bypassed()  ? "bypass"
                                                           : "miss";
    ++returned[TenantOf(key)][outcome];
    return result;
  };
  EXPECT_FALSE(send(pair.reference, key_a).stats.cache_hit());
  WaitForReferences(key_a, 1);
  const Result paraphrase = send(pair.paraphrase, key_a);
  EXPECT_TRUE(paraphrase.stats.cache_hit() || paraphrase.stats.bypassed());
  send(LoadPair(2).reference, key_b);

  const std::string router = ScrapeMetrics(env_["SEMSHARE_METRICS_ROUTER"]);
  ASSERT_FALSE(router.empty()) << "no /metrics at " << env_["SEMSHARE_METRICS_ROUTER"];
  const std::map<std::string, double> requests = SeriesOf(router, "semshare_router_requests_total");
  for (const auto& [tenant, outcomes] : returned) {
    int total = 0;
    double scraped_total = 0;
    for (const char* outcome : {"hit", "miss", "bypass", "error"}) {
      const auto it = outcomes.find(outcome);
      const int count = it == outcomes.end() ? 0 : it->second;
      const auto series =
          requests.find(absl::StrCat("outcome=\"", outcome, "\",tenant=\"", tenant, "\""));
      const double scraped = series == requests.end() ? 0 : series->second;
      EXPECT_EQ(scraped, count) << tenant << " " << outcome << "\n" << router;
      total += count;
      scraped_total += scraped;
    }
    const int hits = outcomes.count("hit") ? outcomes.at("hit") : 0;
    const auto scraped_hits =
        requests.find(absl::StrCat("outcome=\"hit\",tenant=\"", tenant, "\""));
    ASSERT_GT(scraped_total, 0) << tenant;
    EXPECT_DOUBLE_EQ((scraped_hits == requests.end() ? 0 : scraped_hits->second) / scraped_total,
                     static_cast<double>(hits) / total)
        << tenant;
  }
  EXPECT_EQ(requests.size(), 3u) << router;  // tenant-a: miss and hit; tenant-b: miss
  EXPECT_THAT(router, ::testing::HasSubstr("semshare_router_in_flight_requests 0\n"));
  for (const char* name :
       {"semshare_router_ttft_seconds_count", "semshare_router_request_duration_seconds_count",
        "semshare_router_stage_seconds_count", "semshare_router_shard_up",
        "semshare_router_worker_up", "semshare_router_rpcs_total",
        "semshare_router_rpc_seconds_count", "semshare_router_similarity_count"}) {
    EXPECT_FALSE(SeriesOf(router, name).empty()) << name << "\n" << router;
  }

  const std::string worker = ScrapeMetrics(env_["SEMSHARE_METRICS_WORKER"]);
  ASSERT_FALSE(worker.empty()) << "no /metrics at " << env_["SEMSHARE_METRICS_WORKER"];
  double worker_requests = 0;
  for (const auto& [labels, value] : SeriesOf(worker, "semshare_worker_requests_total"))
    worker_requests += value;
  EXPECT_EQ(worker_requests, 3) << worker;
  for (const char* name :
       {"semshare_worker_in_flight_requests", "semshare_worker_queue_depth",
        "semshare_worker_rejected_requests_total", "semshare_worker_local_cache_bytes",
        "semshare_worker_local_cache_references", "semshare_worker_local_cache_hits_total",
        "semshare_worker_kv_fetch_seconds_count", "semshare_worker_stores_total",
        "semshare_worker_rpcs_total", "semshare_worker_rpc_seconds_count"}) {
    EXPECT_FALSE(SeriesOf(worker, name).empty()) << name << "\n" << worker;
  }

  const std::vector<std::string> shards = absl::StrSplit(env_["SEMSHARE_METRICS_SHARDS"], ',');
  ASSERT_EQ(shards.size(), 2u);
  double stored_bytes = 0;
  for (const std::string& shard : shards) {
    const std::string text = ScrapeMetrics(shard);
    ASSERT_FALSE(text.empty()) << "no /metrics at " << shard;
    for (const char* name :
         {"semshare_cache_node_capacity_bytes", "semshare_cache_node_corrupt_blobs_removed_total",
          "semshare_cache_node_rpcs_total", "semshare_cache_node_rpc_seconds_count"}) {
      EXPECT_FALSE(SeriesOf(text, name).empty()) << name << " on " << shard << "\n" << text;
    }
    EXPECT_THAT(text, ::testing::HasSubstr(
                          "# TYPE semshare_cache_node_corrupt_blobs_removed_total counter"));
    for (const auto& [labels, value] : SeriesOf(text, "semshare_cache_node_stored_bytes"))
      stored_bytes += value;
  }
  EXPECT_GT(stored_bytes, 0);  // tenant-a's reference
}

}  // namespace
}  // namespace semshare
