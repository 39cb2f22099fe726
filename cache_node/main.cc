// semshare-cache-node: one shard of the cluster, serving semshare.v1.CacheNode over gRPC.
#include <algorithm>
#include <cstdio>
#include <memory>

#include "absl/flags/flag.h"
#include "absl/strings/str_cat.h"
#include "cache_node/cache_node.h"
#include "cache_node/rpc/cache_node_server.h"
#include "cache_node/rpc/metrics.h"
#include "common/blas_core.h"
#include "common/cli.h"
#include "common/cluster_auth.h"
#include "common/rpc/metrics_endpoint.h"
#include "common/shutdown_signals.h"

ABSL_FLAG(std::string, listen, "", "gRPC address to serve on, host:port (port 0: any free port)");
ABSL_FLAG(std::string, data_dir, "", "RocksDB directory (created if missing)");
ABSL_FLAG(std::string, metrics_listen, "", "Prometheus /metrics address, host:port (port 0: any)");
ABSL_FLAG(int64_t, capacity_bytes, 0, "byte budget of the node; LRU eviction past it");
ABSL_FLAG(int64_t, tenant_capacity_bytes, 0, "byte budget of each tenant (0: only the node's)");
ABSL_FLAG(bool, sync_writes, false, "fsync the WAL on every write");
ABSL_FLAG(std::string, cluster_token_file, "", "file holding the shared cluster secret");
ABSL_FLAG(int64_t, max_message_bytes, semshare::kDefaultMaxMessageBytes,
          "largest gRPC message accepted (larger: RESOURCE_EXHAUSTED)");
ABSL_FLAG(int32_t, candidates, 16, "similarity-index candidates scored per FindSimilar");
ABSL_FLAG(double, distance_norm, 30.0,
          "mapping: similarity = 1 - mean(min(d / distance_norm, 1)) (as the engine's)");
ABSL_FLAG(int32_t, unmatched_radius, 24,
          "mapping: tokens farther than this many bits are unmatched (as the engine's)");

namespace semshare::cache_node {
namespace {

int Run() {
  const sigset_t signals = BlockShutdownSignals();
  if (absl::Status s =
          RequireFlags({{"listen", absl::GetFlag(FLAGS_listen)},
                        {"data-dir", absl::GetFlag(FLAGS_data_dir)},
                        {"metrics-listen", absl::GetFlag(FLAGS_metrics_listen)},
                        {"cluster-token-file", absl::GetFlag(FLAGS_cluster_token_file)}});
      !s.ok()) {
    return Fail(s);
  }
  CacheNodeOptions options;
  options.data_dir = absl::GetFlag(FLAGS_data_dir);
  options.sync_writes = absl::GetFlag(FLAGS_sync_writes);
  options.capacity_bytes = absl::GetFlag(FLAGS_capacity_bytes);
  options.tenant_capacity_bytes = absl::GetFlag(FLAGS_tenant_capacity_bytes);
  options.candidates = absl::GetFlag(FLAGS_candidates);
  options.mapping.distance_norm = absl::GetFlag(FLAGS_distance_norm);
  options.mapping.unmatched_radius = absl::GetFlag(FLAGS_unmatched_radius);
  if (absl::Status s = options.Validate(); !s.ok()) return Fail(s);
  absl::StatusOr<ClusterToken> token =
      ClusterToken::FromFile(absl::GetFlag(FLAGS_cluster_token_file));
  if (!token.ok()) return Fail(token.status());
  CacheNodeServerOptions server_options;
  server_options.listen_address = absl::GetFlag(FLAGS_listen);
  server_options.max_message_bytes = absl::GetFlag(FLAGS_max_message_bytes);
  server_options.service.max_reference_bytes =
      options.tenant_capacity_bytes > 0
          ? std::min(options.capacity_bytes, options.tenant_capacity_bytes)
          : options.capacity_bytes;
  if (absl::Status s = server_options.Validate(); !s.ok()) return Fail(s);

  absl::StatusOr<std::unique_ptr<CacheNode>> node = OpenCacheNode(options);
  if (!node.ok()) return Fail(node.status());
  CacheNodeMetrics metrics([node = node->get()] { return node->Stats(); });
  absl::StatusOr<std::unique_ptr<MetricsEndpoint>> endpoint =
      MetricsEndpoint::Start(absl::GetFlag(FLAGS_metrics_listen), metrics.collectables());
  if (!endpoint.ok()) return Fail(endpoint.status());
  absl::StatusOr<std::unique_ptr<CacheNodeServer>> server =
      CacheNodeServer::Start(node->get(), *std::move(token), server_options, &metrics);
  if (!server.ok()) return Fail(server.status());

  const NodeStats stats = (*node)->Stats();
  std::printf(
      "semshare-cache-node ready: listen=%s port=%d metrics_port=%d references=%lld bytes=%lld "
      "data_dir=%s\n",
      (*server)->address().c_str(), (*server)->port(), (*endpoint)->port(),
      static_cast<long long>(stats.references), static_cast<long long>(stats.bytes),
      options.data_dir.c_str());
  std::fflush(stdout);

  const int signal_number = WaitForShutdownSignal(signals);
  std::printf("semshare-cache-node: signal %d, shutting down\n", signal_number);
  std::fflush(stdout);
  (*server)->Shutdown();
  // Nothing may read the node once it is closed; the endpoint itself goes last.
  (*endpoint)->StopCollecting();
  const absl::Status flushed = (*node)->Flush();
  node->reset();  // closes RocksDB
  if (!flushed.ok()) return Fail(flushed);
  std::printf("semshare-cache-node: stopped\n");
  std::fflush(stdout);
  endpoint->reset();
  return 0;
}

}  // namespace
}  // namespace semshare::cache_node

int main(int argc, char** argv) {
  semshare::EnsureBlasKernelsMatchCpu(argv);  // before anything else runs
  semshare::ParseToolFlags(
      argc, argv,
      "semshare-cache-node --listen ADDR --data-dir DIR --metrics-listen ADDR --capacity-bytes N "
      "[--tenant-capacity-bytes N] [--sync-writes] --cluster-token-file F");
  return semshare::cache_node::Run();
}
