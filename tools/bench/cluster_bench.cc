#include "tools/bench/cluster_bench.h"

#include <grpcpp/client_context.h>
#include <grpcpp/create_channel.h>
#include <stdlib.h>
#include <sys/wait.h>

#include <algorithm>
#include <atomic>
#include <map>
#include <memory>
#include <thread>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "cache_node/rpc/cache_node_client.h"
#include "common/cluster_auth.h"
#include "common/file_util.h"
#include "common/rpc/cluster_metadata.h"
#include "common/status_macros.h"
#include "common/synthetic_pair.h"
#include "semshare/v1/router.grpc.pb.h"
#include "semshare/v1/worker.grpc.pb.h"
#include "tools/bench/local_cluster.h"

ABSL_FLAG(std::string, model, "",
          "model directory (default: bench-100m made with semshare-make-model --seed 1)");
ABSL_FLAG(std::string, cluster_dir, "", "cluster directory (default: a new one under /tmp)");
ABSL_FLAG(std::string, cluster_script, "deploy/local/cluster.sh", "the local cluster script");
ABSL_FLAG(std::string, device, "cpu", "the worker's device, cpu|cuda");
ABSL_FLAG(int64_t, tokens, 5120, "prompt length in tokens");
ABSL_FLAG(double, edit_share, 0.1, "share of the paraphrase's tokens replaced");
ABSL_FLAG(int32_t, max_tokens, 8, "tokens generated a request");
ABSL_FLAG(int32_t, clients, 16, "concurrent clients (0: skip the load phase)");
ABSL_FLAG(int32_t, duration_s, 300, "seconds of the load phase");
ABSL_FLAG(std::string, worker_args, "", "extra flags for the worker (e.g. --overlap-fetch=false)");
ABSL_FLAG(int32_t, pairs, 3, "reference/paraphrase pairs timed one at a time (medians reported)");
ABSL_FLAG(int32_t, warmup_pairs, 1,
          "pairs served first and not timed (a fresh worker's first hit builds its tables)");
ABSL_FLAG(int64_t, worker_local_cache_bytes, 0,
          "the worker's --local-cache-bytes; 0: every hit pulls its KV from the shard (the "
          "distributed path)");

namespace semshare::bench {
namespace {

constexpr const char* kProcesses[] = {"shard0", "shard1", "worker", "router"};

// Resident set of a process in bytes (0 when it is gone).
int64_t RssBytes(const std::string& pid) {
  for (absl::string_view line : absl::StrSplit(
           ReadFileToString(absl::StrCat("/proc/", pid, "/status")).value_or(""), '\n')) {
    if (absl::ConsumePrefix(&line, "VmRSS:")) {
      int64_t kib = 0;
      if (absl::SimpleAtoi(absl::StripSuffix(absl::StripAsciiWhitespace(line), " kB"), &kib))
        return kib * 1024;
    }
  }
  return 0;
}

Json RssOfAll(const std::string& dir) {
  Json out;
  for (const char* name : kProcesses) {
    out[name] = RssBytes(ReadTrimmed(JoinPath(dir, absl::StrCat("run/", name, ".pid"))));
  }
  return out;
}

struct Result {
  grpc::Status status;
  v1::GenerateStats stats;
};

Result Generate(v1::Router::Stub* stub, const std::string& key, const std::vector<int32_t>& ids) {
  grpc::ClientContext context;
  context.AddMetadata("authorization", absl::StrCat("Bearer ", key));
  v1::GenerateRequest request;
  request.mutable_prompt_token_ids()->Add(ids.begin(), ids.end());
  request.set_max_tokens(absl::GetFlag(FLAGS_max_tokens));
  Result result;
  auto reader = stub->Generate(&context, request);
  v1::GenerateResponse response;
  while (reader->Read(&response)) {
    if (response.has_stats()) result.stats = response.stats();
  }
  result.status = reader->Finish();
  return result;
}

// The tenant's references over the shards, from the shards (the store follows the reply).
int64_t References(const std::string& dir, const std::string& tenant) {
  absl::StatusOr<ClusterToken> token = ClusterToken::FromFile(JoinPath(dir, "cluster.token"));
  if (!token.ok()) return -1;
  int64_t total = 0;
  for (const char* name : {"shard0", "shard1"}) {
    auto client = cache_node::CacheNodeClient::Create(
        absl::StrCat("127.0.0.1:", ReadTrimmed(JoinPath(dir, absl::StrCat("run/", name, ".port")))),
        *token);
    if (!client.ok()) continue;
    absl::StatusOr<v1::GetStatsResponse> stats = (*client)->GetStats(tenant);
    if (stats.ok()) total += stats->tenant().references();
  }
  return total;
}

absl::StatusOr<Json> MeasureCluster(const std::string& dir, const std::string& model,
                                    std::string* table) {
  const std::map<std::string, std::string> env = ReadKeyValueFile(JoinPath(dir, "cluster.env"));
  const std::string key = env.at("SEMSHARE_API_KEY");
  const std::string tenant = TenantOfKey(dir, key);
  auto channel = grpc::CreateChannel(env.at("SEMSHARE_ROUTER"), grpc::InsecureChannelCredentials());
  std::unique_ptr<v1::Router::Stub> stub = v1::Router::NewStub(channel);
  SEMSHARE_ASSIGN_OR_RETURN(const int32_t vocab, ConfigInt(model, "vocab_size"));
  const int32_t bos = ConfigInt(model, "bos_token_id").value_or(-1);
  const int64_t tokens = absl::GetFlag(FLAGS_tokens);
  const SyntheticPair pair =
      MakeSyntheticPair(tokens, absl::GetFlag(FLAGS_edit_share), vocab, 1, bos);

  Json out;
  out["bench"] = "cluster";
  out["model"] = model;
  out["device"] = absl::GetFlag(FLAGS_device);
  out["prompt_tokens"] = tokens;
  out["worker_local_cache_bytes"] = absl::GetFlag(FLAGS_worker_local_cache_bytes);
  // One pair at a time: the reference (a miss), then, once it is stored and the worker has
  // nothing left to store, its paraphrase (a hit).
  const int32_t pairs = std::max(1, absl::GetFlag(FLAGS_pairs));
  const int32_t warmup = std::max(0, absl::GetFlag(FLAGS_warmup_pairs));
  out["warmup_pairs"] = warmup;
  Json runs = Json::MakeArray();
  std::vector<double> miss_ttft, hit_ttft, speedup, encode, search, fetch, recompute,
      overhead_share;
  for (int32_t p = -warmup; p < pairs; ++p) {
    const SyntheticPair timed =
        p == 0 ? pair
               : MakeSyntheticPair(tokens, absl::GetFlag(FLAGS_edit_share), vocab,
                                   1000 + static_cast<uint64_t>(p), bos);
    const Result miss = Generate(stub.get(), key, timed.reference);
    if (!miss.status.ok())
      return absl::InternalError(absl::StrCat("the miss failed: ", miss.status.error_message()));
    // Bounded waits for the miss's reference to be stored and the worker to be idle.
    for (int i = 0; i < 3000 && References(dir, tenant) < p + warmup + 1; ++i)
      absl::SleepFor(absl::Milliseconds(100));
    for (int i = 0; i < 3000 && WorkerPendingStores(dir) != 0; ++i)
      absl::SleepFor(absl::Milliseconds(100));
    const Result hit = Generate(stub.get(), key, timed.target);
    if (!hit.status.ok())
      return absl::InternalError(absl::StrCat("the hit failed: ", hit.status.error_message()));
    if (p < 0) continue;  // warm-up
    const v1::StageTimes& stages = hit.stats.stages();
    const double overhead_ms = stages.tokenize_ms() + stages.search_ms() + stages.fetch_ms();
    Json run;
    run["miss_ttft_ms"] = miss.stats.ttft_ms();
    run["hit_ttft_ms"] = hit.stats.ttft_ms();
    run["hit_was_hit"] = hit.stats.cache_hit();
    run["hit_worker_local"] = hit.stats.worker_local_hit();
    run["hit_similarity"] = hit.stats.similarity();
    run["hit_recompute_share"] = hit.stats.recompute_share();
    run["speedup"] = hit.stats.ttft_ms() > 0 ? miss.stats.ttft_ms() / hit.stats.ttft_ms() : 0.0;
    run["hit_router_ms"] = stages.tokenize_ms();
    run["hit_search_ms"] = stages.search_ms();
    run["hit_fetch_ms"] = stages.fetch_ms();
    run["hit_recompute_ms"] = stages.recompute_ms();
    run["router_search_transfer_share_of_ttft"] =
        hit.stats.ttft_ms() > 0 ? overhead_ms / hit.stats.ttft_ms() : 0.0;
    miss_ttft.push_back(miss.stats.ttft_ms());
    hit_ttft.push_back(hit.stats.ttft_ms());
    speedup.push_back(run["speedup"].number_value());
    encode.push_back(stages.tokenize_ms());
    search.push_back(stages.search_ms());
    fetch.push_back(stages.fetch_ms());
    recompute.push_back(stages.recompute_ms());
    overhead_share.push_back(run["router_search_transfer_share_of_ttft"].number_value());
    absl::StrAppendFormat(
        table,
        "pair %d: miss TTFT %.1f ms | hit TTFT %.1f ms (hit=%d%s, similarity %.3f) | speedup %.2fx "
        "| "
        "encode %.1f + search %.1f + fetch %.1f ms = %.1f%% of TTFT; recompute %.1f ms\n",
        p + 1, miss.stats.ttft_ms(), hit.stats.ttft_ms(), hit.stats.cache_hit(),
        hit.stats.worker_local_hit() ? ", local" : "", hit.stats.similarity(),
        run["speedup"].number_value(), stages.tokenize_ms(), stages.search_ms(), stages.fetch_ms(),
        100 * run["router_search_transfer_share_of_ttft"].number_value(), stages.recompute_ms());
    runs.push_back(std::move(run));
  }
  Json single;
  single["pairs"] = pairs;
  single["runs"] = std::move(runs);
  single["miss_ttft_ms"] = Percentile(miss_ttft, 0.5);
  single["hit_ttft_ms"] = Percentile(hit_ttft, 0.5);
  single["speedup"] = Percentile(speedup, 0.5);
  single["speedup_min"] = *std::min_element(speedup.begin(), speedup.end());
  single["hit_router_ms"] = Percentile(encode, 0.5);
  single["hit_search_ms"] = Percentile(search, 0.5);
  single["hit_fetch_ms"] = Percentile(fetch, 0.5);
  single["hit_recompute_ms"] = Percentile(recompute, 0.5);
  single["router_search_transfer_share_of_ttft"] = Percentile(overhead_share, 0.5);
  single["router_search_transfer_share_max"] =
      *std::max_element(overhead_share.begin(), overhead_share.end());
  out["miss_then_hit"] = single;
  absl::StrAppendFormat(
      table,
      "cluster, %d-token prompt, %s, median of %d pairs\n  miss TTFT %.1f ms | hit TTFT %.1f ms | "
      "speedup %.2fx (lowest %.2fx; target >= 5x)\n  hit: encode %.1f + search %.1f + fetch %.1f "
      "ms = "
      "%.1f%% of TTFT (highest %.1f%%; target <= 10%%); recompute %.1f ms\n",
      tokens, absl::GetFlag(FLAGS_device), pairs, single["miss_ttft_ms"].number_value(),
      single["hit_ttft_ms"].number_value(), single["speedup"].number_value(),
      single["speedup_min"].number_value(), single["hit_router_ms"].number_value(),
      single["hit_search_ms"].number_value(), single["hit_fetch_ms"].number_value(),
      100 * single["router_search_transfer_share_of_ttft"].number_value(),
      100 * single["router_search_transfer_share_max"].number_value(),
      single["hit_recompute_ms"].number_value());

  const int32_t clients = absl::GetFlag(FLAGS_clients);
  if (clients <= 0) return out;
  Json load;
  load["clients"] = clients;
  load["duration_s"] = absl::GetFlag(FLAGS_duration_s);
  load["rss_start_bytes"] = RssOfAll(dir);
  // RSS of every process every few seconds: "flat" is judged after a warm-up (the first fifth of
  // the run, where allocator pools and caches fill), from the sample at its end to the last one.
  const absl::Duration sample_every = absl::Seconds(5);
  std::vector<Json> rss_samples;
  absl::Notification load_done;
  std::thread sampler([&] {
    do {
      rss_samples.push_back(RssOfAll(dir));
    } while (!load_done.WaitForNotificationWithTimeout(sample_every));
    rss_samples.push_back(RssOfAll(dir));
  });
  absl::Mutex mutex;
  std::vector<double> ttfts;
  int64_t failures = 0, hits = 0;
  std::string first_failure;
  const absl::Time deadline = absl::Now() + absl::Seconds(absl::GetFlag(FLAGS_duration_s));
  std::vector<std::thread> threads;
  threads.reserve(static_cast<size_t>(clients));
  for (int32_t c = 0; c < clients; ++c) {
    threads.emplace_back([&, c] {
      for (int64_t k = 0; absl::Now() < deadline; ++k) {
        // The paraphrase with one more token changed a request: every request a near-duplicate hit.
        std::vector<int32_t> ids = pair.target;
        ids[1 + static_cast<size_t>((int64_t{c} * 7919 + k * 104729) %
                                    static_cast<int64_t>(ids.size() - 1))] =
            16 + static_cast<int32_t>((c + k) % 64);
        const Result r = Generate(stub.get(), key, ids);
        absl::MutexLock lock(&mutex);
        if (!r.status.ok()) {
          ++failures;
          if (first_failure.empty()) first_failure = r.status.error_message();
          continue;
        }
        ttfts.push_back(r.stats.ttft_ms());
        if (r.stats.cache_hit()) ++hits;
      }
    });
  }
  for (std::thread& t : threads) t.join();
  load_done.Notify();
  sampler.join();
  load["requests"] = static_cast<int64_t>(ttfts.size()) + failures;
  load["failures"] = failures;
  load["hits"] = hits;
  load["first_failure"] = first_failure;
  load["ttft_p50_ms"] = Percentile(ttfts, 0.5);
  load["ttft_p99_ms"] = Percentile(ttfts, 0.99);
  load["rss_end_bytes"] = RssOfAll(dir);
  absl::StrAppendFormat(table,
                        "load: %d clients for %d s: %d requests, %d failures, %d hits, TTFT p50 "
                        "%.1f ms p99 %.1f ms\n",
                        clients, absl::GetFlag(FLAGS_duration_s),
                        static_cast<int64_t>(ttfts.size()) + failures, failures, hits,
                        Percentile(ttfts, 0.5), Percentile(ttfts, 0.99));
  const Json& warm = rss_samples[rss_samples.size() / 5];
  Json rss_warm, rss_peak, rss_growth;
  for (const char* name : kProcesses) {
    double peak = 0;
    Json series = Json::MakeArray();
    for (const Json& sample : rss_samples) {
      peak = std::max(peak, sample[name].number_value());
      series.push_back(sample[name]);
    }
    const double warm_bytes = warm[name].number_value();
    const double end_bytes = load["rss_end_bytes"][name].number_value();
    rss_warm[name] = warm_bytes;
    rss_peak[name] = peak;
    rss_growth[name] = warm_bytes > 0 ? end_bytes / warm_bytes - 1 : 0.0;
    load["rss_series_bytes"][name] = series;
    absl::StrAppendFormat(table,
                          "  RSS %-6s start %8.1f  after warm-up %8.1f  peak %8.1f  end %8.1f MiB "
                          "(%+.1f%% after warm-up)\n",
                          name, load["rss_start_bytes"][name].number_value() / (1 << 20),
                          warm_bytes / (1 << 20), peak / (1 << 20), end_bytes / (1 << 20),
                          100 * rss_growth[name].number_value());
  }
  load["rss_sample_every_s"] = absl::ToDoubleSeconds(sample_every);
  load["rss_after_warmup_bytes"] = rss_warm;
  load["rss_peak_bytes"] = rss_peak;
  load["rss_growth_after_warmup"] = rss_growth;
  out["load"] = load;
  return out;
}

}  // namespace

absl::StatusOr<Json> RunClusterBench(std::string* table) {
  SEMSHARE_ASSIGN_OR_RETURN(const std::string dir,
                            ClusterDir(absl::GetFlag(FLAGS_cluster_dir), "semshare_cluster_bench"));
  const std::string bin = BinDir();
  SEMSHARE_ASSIGN_OR_RETURN(const std::string model, BenchModel(absl::GetFlag(FLAGS_model), dir));
  const std::string script = absl::GetFlag(FLAGS_cluster_script);
  const std::string env = absl::StrCat(
      "SEMSHARE_BIN_DIR='", bin, "' SEMSHARE_MODEL='", model, "' SEMSHARE_DEVICE='",
      absl::GetFlag(FLAGS_device), "' SEMSHARE_WORKER_ARGS='--max-queue ",
      std::max(16, absl::GetFlag(FLAGS_clients)), " --local-cache-bytes ",
      absl::GetFlag(FLAGS_worker_local_cache_bytes), " ", absl::GetFlag(FLAGS_worker_args), "' ");
  SEMSHARE_RETURN_IF_ERROR(RunCommand(absl::StrCat(env, "bash '", script, "' up '", dir, "' >&2")));
  absl::StatusOr<Json> result = MeasureCluster(dir, model, table);
  const absl::Status down = RunCommand(absl::StrCat("bash '", script, "' down '", dir, "' >&2"));
  if (!result.ok()) return result.status();
  if (!down.ok()) return down;
  return result;
}

}  // namespace semshare::bench
