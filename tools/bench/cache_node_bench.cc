#include "tools/bench/cache_node_bench.h"

#include <stdlib.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <random>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "cache_node/cache_node.h"
#include "cache_node/rpc/cache_node_client.h"
#include "cache_node/rpc/cache_node_server.h"
#include "cache_node/testing/synthetic.h"
#include "common/rpc/health_check.h"
#include "common/status_macros.h"
#include "tools/bench/loopback_tcp.h"

ABSL_FLAG(std::string, sizes, "1000,10000",
          "reference counts for FindSimilar (add 100000 for the large case: ~7 GB of RAM, minutes "
          "to load)");
ABSL_FLAG(int32_t, queries, 500, "FindSimilar calls timed per size");
ABSL_FLAG(int32_t, prompt_tokens, 2000, "tokens of each FindSimilar reference");
ABSL_FLAG(int32_t, fetch_tokens, 5120, "tokens of the FetchKV reference");
ABSL_FLAG(int32_t, fetch_repeats, 5, "FetchKV transfers timed");
ABSL_FLAG(std::string, scratch_dir, "",
          "where the data dirs go (default: a fresh directory in /tmp, removed after)");

namespace semshare::bench {
namespace {

using cache_node::CacheNode;
using cache_node::CacheNodeClient;
using cache_node::CacheNodeOptions;
using cache_node::CacheNodeServer;
using cache_node::CacheNodeServerOptions;
using cache_node::FetchedLayer;
using cache_node::FindResult;
using cache_node::NewReference;
using cache_node::ReferenceScope;
using cache_node::testing::SyntheticShape;

constexpr char kToken[] = "bench-cluster-token-0123456789";
constexpr char kTenant[] = "bench";
constexpr char kModel[] = "bench-100m";
constexpr int32_t kSketchWidth = 576;  // bench-100m hidden size

double Seconds(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

double Percentile(std::vector<double> values, double q) {
  std::sort(values.begin(), values.end());
  const size_t index =
      std::min(values.size() - 1, static_cast<size_t>(q * static_cast<double>(values.size())));
  return values[index];
}

double Median(std::vector<double> values) { return Percentile(std::move(values), 0.5); }

SyntheticShape Shape(int64_t tokens, int32_t layers, int64_t kv_heads, int64_t head_dim,
                     DType dtype) {
  SyntheticShape shape;
  shape.num_tokens = tokens;
  shape.num_layers = layers;
  shape.kv_heads = kv_heads;
  shape.head_dim = head_dim;
  shape.dtype = dtype;
  shape.sketch_width = kSketchWidth;
  return shape;
}

// The references FindSimilar searches: 2,000 tokens of 256-bit codes and a 576-wide sketch; KV
// is tiny (1 layer of [1, n, 1] fp16) since only the search is timed.
SyntheticShape SearchShape() {
  return Shape(absl::GetFlag(FLAGS_prompt_tokens), 1, 1, 1, DType::kFloat16);
}

// The FetchKV reference: bench-100m's KV (24 layers, 3 kv heads, head_dim 64, fp32).
SyntheticShape FetchShape() {
  return Shape(absl::GetFlag(FLAGS_fetch_tokens), 24, 3, 64, DType::kFloat32);
}

CacheNodeOptions NodeOptions(const std::string& dir) {
  CacheNodeOptions options;
  options.data_dir = dir;
  options.capacity_bytes = int64_t{64} << 30;
  return options;
}

// A node served on 127.0.0.1:0 and a client of it.
struct Served {
  std::unique_ptr<CacheNode> node;
  std::unique_ptr<CacheNodeServer> server;
  std::unique_ptr<CacheNodeClient> client;
};

absl::StatusOr<Served> Serve(std::unique_ptr<CacheNode> node) {
  Served served;
  served.node = std::move(node);
  CacheNodeServerOptions options;
  options.listen_address = "127.0.0.1:0";
  options.service.max_reference_bytes = int64_t{64} << 30;
  SEMSHARE_ASSIGN_OR_RETURN(ClusterToken token, ClusterToken::FromString(kToken));
  SEMSHARE_ASSIGN_OR_RETURN(served.server,
                            CacheNodeServer::Start(served.node.get(), token, options, nullptr));
  SEMSHARE_ASSIGN_OR_RETURN(served.client,
                            CacheNodeClient::Create(served.server->address(), token));
  SEMSHARE_RETURN_IF_ERROR(CheckHealth(served.client->channel(), absl::Seconds(30), "", true));
  return served;
}

absl::Status Shutdown(Served* served) {
  served->client.reset();
  served->server.reset();
  absl::Status flushed = served->node->Flush();
  served->node.reset();
  return flushed;
}

// FindSimilar over gRPC: targets are stored references with 10% of their token codes replaced.
absl::StatusOr<Json> TimeFindSimilar(CacheNodeClient* client, int64_t count, uint64_t seed_base) {
  const int32_t queries = absl::GetFlag(FLAGS_queries);
  const SyntheticShape shape = SearchShape();
  std::mt19937_64 rng(seed_base + 7);
  std::vector<double> latencies_ms;
  int64_t found_own = 0;
  for (int32_t q = -20; q < queries; ++q) {  // the first 20 warm up
    const int64_t i = static_cast<int64_t>(rng() % static_cast<uint64_t>(count));
    const NewReference ref =
        cache_node::testing::SyntheticReference(absl::StrCat("r", i), shape, seed_base + i);
    const cache_node::testing::SyntheticTarget target =
        cache_node::testing::SyntheticEditedTarget(ref, shape.num_tokens / 10, rng());
    const auto start = std::chrono::steady_clock::now();
    SEMSHARE_ASSIGN_OR_RETURN(
        const FindResult result,
        client->FindSimilar(ReferenceScope{kTenant, kModel}, target.codes, target.sketch, 4));
    const double ms = Seconds(start) * 1e3;
    if (q < 0) continue;
    latencies_ms.push_back(ms);
    if (!result.matches.empty() && result.matches[0].reference_id == ref.reference_id) ++found_own;
  }
  Json out;
  out["references"] = count;
  out["queries"] = queries;
  out["p50_ms"] = Percentile(latencies_ms, 0.5);
  out["p99_ms"] = Percentile(latencies_ms, 0.99);
  out["max_ms"] = Percentile(latencies_ms, 1.0);
  out["top1_is_edited_reference"] = static_cast<double>(found_own) / queries;
  return out;
}

absl::StatusOr<Json> SearchCase(const std::string& scratch, int64_t count, std::string* table) {
  const std::string dir = absl::StrCat(scratch, "/search-", count);
  const uint64_t seed_base = static_cast<uint64_t>(count) * 1000003;
  const SyntheticShape shape = SearchShape();
  SEMSHARE_ASSIGN_OR_RETURN(std::unique_ptr<CacheNode> node,
                            cache_node::OpenCacheNode(NodeOptions(dir)));
  auto start = std::chrono::steady_clock::now();
  for (int64_t i = 0; i < count; ++i) {
    SEMSHARE_RETURN_IF_ERROR(node->Put(
        ReferenceScope{kTenant, kModel},
        cache_node::testing::SyntheticReference(absl::StrCat("r", i), shape, seed_base + i)));
  }
  const double load_s = Seconds(start);
  SEMSHARE_ASSIGN_OR_RETURN(Served served, Serve(std::move(node)));
  SEMSHARE_ASSIGN_OR_RETURN(Json out, TimeFindSimilar(served.client.get(), count, seed_base));
  out["bulk_load_s"] = load_s;

  // Restart: close everything, then open the data dir again and serve until a search answers.
  SEMSHARE_RETURN_IF_ERROR(Shutdown(&served));
  start = std::chrono::steady_clock::now();
  SEMSHARE_ASSIGN_OR_RETURN(node, cache_node::OpenCacheNode(NodeOptions(dir)));
  const double open_s = Seconds(start);
  SEMSHARE_ASSIGN_OR_RETURN(served, Serve(std::move(node)));
  const NewReference probe = cache_node::testing::SyntheticReference("r0", shape, seed_base);
  SEMSHARE_ASSIGN_OR_RETURN(
      const FindResult found,
      served.client->FindSimilar(ReferenceScope{kTenant, kModel}, probe.codes, probe.sketch, 1));
  const double ready_s = Seconds(start);
  if (found.matches.empty() || found.matches[0].reference_id != "r0") {
    return absl::InternalError("after restart the probe reference was not found");
  }
  out["restart_open_s"] = open_s;
  out["restart_to_ready_s"] = ready_s;
  SEMSHARE_RETURN_IF_ERROR(Shutdown(&served));
  absl::StrAppendFormat(table, "%10d %10.2f %10.2f %10.2f %8.1f%% %12.1f %14.2f\n", count,
                        out["p50_ms"].number_value(), out["p99_ms"].number_value(),
                        out["max_ms"].number_value(),
                        100 * out["top1_is_edited_reference"].number_value(), load_s, ready_s);
  return out;
}

absl::StatusOr<Json> FetchCase(const std::string& scratch, std::string* table) {
  const SyntheticShape shape = FetchShape();
  SEMSHARE_ASSIGN_OR_RETURN(
      std::unique_ptr<CacheNode> node,
      cache_node::OpenCacheNode(NodeOptions(absl::StrCat(scratch, "/fetch"))));
  SEMSHARE_RETURN_IF_ERROR(node->Put(ReferenceScope{kTenant, kModel},
                                     cache_node::testing::SyntheticReference("big", shape, 99)));
  const std::vector<int32_t> identity =
      cache_node::testing::AllTargetTokens(static_cast<size_t>(shape.num_tokens));
  const int32_t repeats = absl::GetFlag(FLAGS_fetch_repeats);
  // The domain alone (read, verify, gather; no gRPC), for comparison.
  std::vector<double> domain_gbps;
  for (int32_t r = -1; r < repeats; ++r) {
    int64_t domain_bytes = 0;
    const auto start = std::chrono::steady_clock::now();
    SEMSHARE_RETURN_IF_ERROR(node->FetchKV(ReferenceScope{kTenant, kModel}, "big", identity, {},
                                           [&domain_bytes](const FetchedLayer& layer) {
                                             domain_bytes +=
                                                 static_cast<int64_t>(layer.kv.key.data.size() +
                                                                      layer.kv.value.data.size());
                                             return absl::OkStatus();
                                           }));
    const double s = Seconds(start);
    if (r >= 0) domain_gbps.push_back(static_cast<double>(domain_bytes) / s / 1e9);
  }
  SEMSHARE_ASSIGN_OR_RETURN(Served served, Serve(std::move(node)));
  std::vector<double> fetch_gbps;
  int64_t bytes = 0;
  for (int32_t r = -1; r < repeats; ++r) {  // one warm-up
    bytes = 0;
    const auto start = std::chrono::steady_clock::now();
    SEMSHARE_RETURN_IF_ERROR(served.client->FetchKV(
        ReferenceScope{kTenant, kModel}, "big", identity, {}, [&bytes](const FetchedLayer& layer) {
          bytes += static_cast<int64_t>(layer.kv.key.data.size() + layer.kv.value.data.size());
          return absl::OkStatus();
        }));
    const double s = Seconds(start);
    if (r >= 0) fetch_gbps.push_back(static_cast<double>(bytes) / s / 1e9);
  }
  SEMSHARE_RETURN_IF_ERROR(Shutdown(&served));
  std::vector<double> tcp_gbps;
  for (int32_t r = 0; r < repeats; ++r) {
    SEMSHARE_ASSIGN_OR_RETURN(const double gbps, MeasureLoopbackTcpGBps(bytes, kMaxKVChunkBytes));
    tcp_gbps.push_back(gbps);
  }
  Json out;
  out["tokens"] = shape.num_tokens;
  out["layers"] = shape.num_layers;
  out["kv_heads"] = shape.kv_heads;
  out["head_dim"] = shape.head_dim;
  out["dtype"] = "float32";
  out["bytes"] = bytes;
  out["repeats"] = repeats;
  out["fetch_gbps_median"] = Median(fetch_gbps);
  out["fetch_gbps_best"] = Percentile(fetch_gbps, 1.0);
  out["loopback_tcp_gbps_median"] = Median(tcp_gbps);
  out["fetch_share_of_tcp_bound"] = Median(fetch_gbps) / Median(tcp_gbps);
  out["domain_fetch_gbps_median"] = Median(domain_gbps);
  absl::StrAppendFormat(
      table,
      "FetchKV %d tokens x 24 layers x 3 kv heads x 64 fp32 (%.1f MB, one stream): "
      "median %.2f GB/s, best %.2f GB/s; loopback TCP bound %.2f GB/s (%.0f%%); "
      "node alone (no gRPC) %.2f GB/s\n",
      shape.num_tokens, bytes / 1e6, Median(fetch_gbps), Percentile(fetch_gbps, 1.0),
      Median(tcp_gbps), 100 * Median(fetch_gbps) / Median(tcp_gbps), Median(domain_gbps));
  return out;
}

}  // namespace

absl::StatusOr<Json> RunCacheNodeBench(std::string* table) {
  std::vector<int64_t> sizes;
  for (absl::string_view s : absl::StrSplit(absl::GetFlag(FLAGS_sizes), ',', absl::SkipEmpty())) {
    int64_t n = 0;
    if (!absl::SimpleAtoi(s, &n) || n <= 0)
      return absl::InvalidArgumentError(absl::StrCat("--sizes: bad count '", s, "'"));
    sizes.push_back(n);
  }
  if (absl::GetFlag(FLAGS_queries) <= 0 || absl::GetFlag(FLAGS_fetch_repeats) <= 0) {
    return absl::InvalidArgumentError("--queries and --fetch-repeats must be > 0");
  }
  std::string scratch = absl::GetFlag(FLAGS_scratch_dir);
  const bool remove_scratch = scratch.empty();
  if (scratch.empty()) {
    std::string pattern = "/tmp/semshare_bench_XXXXXX";
    if (mkdtemp(pattern.data()) == nullptr) return absl::InternalError("mkdtemp failed");
    scratch = pattern;
  }
  Json out;
  out["bench"] = "cache-node";
  out["find_similar_reference_shape"] =
      absl::StrCat(absl::GetFlag(FLAGS_prompt_tokens),
                   " tokens, 256-bit codes, 576-wide sketch, KV 1 layer of [1, n, 1] fp16 "
                   "(tiny on purpose: only the search is timed)");
  *table +=
      "FindSimilar over gRPC, one tenant, top_k 4, targets = stored references with 10% of codes "
      "replaced\n";
  *table += "references    p50 ms     p99 ms     max ms  top1 ok  bulk load s  restart->ready s\n";
  Json search = Json::MakeArray();
  absl::Status status;
  for (int64_t n : sizes) {
    absl::StatusOr<Json> result = SearchCase(scratch, n, table);
    if (!result.ok()) {
      status = result.status();
      break;
    }
    search.push_back(*std::move(result));
  }
  out["find_similar"] = std::move(search);
  if (status.ok()) {
    absl::StatusOr<Json> fetch = FetchCase(scratch, table);
    if (fetch.ok()) {
      out["fetch_kv"] = *std::move(fetch);
    } else {
      status = fetch.status();
    }
  }
  if (remove_scratch) {
    std::error_code ignored;
    std::filesystem::remove_all(scratch, ignored);
  }
  if (!status.ok()) return status;
  return out;
}

}  // namespace semshare::bench
