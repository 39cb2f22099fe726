// semshare-router: the front door. Authenticates clients, finds a similar reference on the
// shards, picks a worker and streams its tokens back.

#include <prometheus/registry.h>

#include <algorithm>
#include <cstdio>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/random/random.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/notification.h"
#include "common/blas_core.h"
#include "common/cli.h"
#include "common/clock.h"
#include "common/cluster_auth.h"
#include "common/rpc/metrics_endpoint.h"
#include "common/shutdown_signals.h"
#include "router/api_keys.h"
#include "router/backoff.h"
#include "router/http/http_server.h"
#include "router/http/router_backend.h"
#include "router/service/router.h"
#include "router/service/router_metrics.h"
#include "router/service/router_service.h"
#include "router/service/shard_search.h"
#include "router/service/target_encoder.h"
#include "router/service/worker_discovery.h"
#include "router/service/worker_pool.h"

ABSL_FLAG(std::string, listen, "", "gRPC address to serve on, host:port (port 0: any free port)");
ABSL_FLAG(std::string, shards, "", "cache node addresses, comma-separated");
ABSL_FLAG(std::string, workers, "",
          "inference worker addresses, comma-separated, or dns:HOST:PORT to follow every address "
          "HOST resolves to "
          "(a headless Service of a worker Deployment), re-resolved every "
          "--worker-discovery-interval-ms");
ABSL_FLAG(int32_t, worker_discovery_interval_ms, 5000,
          "how often a dns: --workers name is resolved again");
ABSL_FLAG(std::string, model, "",
          "model directory (only the tokenizer and embedding matrix are read)");
ABSL_FLAG(std::string, worker_device, "cpu",
          "the workers' device, cpu|cuda (codes are rounded as theirs)");
ABSL_FLAG(std::string, api_keys, "", "API keys file: KEY TENANT BYTE_BUDGET per line");
ABSL_FLAG(std::string, cluster_token_file, "", "file holding the shared cluster secret");
ABSL_FLAG(double, similarity_threshold, 0.8, "default similarity a reference needs to be reused");
ABSL_FLAG(bool, reuse, true,
          "search for references and store new ones; false: every request a full prefill (a "
          "baseline for benchmarks)");
ABSL_FLAG(int32_t, search_deadline_ms, 500, "deadline of each shard's FindSimilar");
ABSL_FLAG(int32_t, max_tokens_limit, 4096,
          "largest max_tokens a request may ask for (more: INVALID_ARGUMENT / 400)");
ABSL_FLAG(std::string, metrics_listen, "",
          "Prometheus /metrics address, host:port (port 0: any free port)");
ABSL_FLAG(int32_t, worker_status_ttl_ms, 200, "how long a worker's polled status is trusted");
ABSL_FLAG(std::string, http_listen, "",
          "OpenAI-compatible HTTP address, host:port (port 0: any; empty: none)");
ABSL_FLAG(std::string, model_name, "",
          "model id of the HTTP front (default: the --model directory's name)");
ABSL_FLAG(int64_t, http_max_body_bytes, 1 << 20,
          "largest HTTP request body accepted (larger: 413)");
ABSL_FLAG(int32_t, http_threads, 16, "HTTP connections served at once (a stream holds one)");

namespace semshare::router {
namespace {

std::vector<std::string> SplitList(const std::string& list) {
  return absl::StrSplit(list, ',', absl::SkipWhitespace());
}

http::HttpServerOptions HttpOptions() {
  http::HttpServerOptions options;
  options.listen_address = absl::GetFlag(FLAGS_http_listen);
  options.model_name = absl::GetFlag(FLAGS_model_name);
  if (options.model_name.empty())
    options.model_name = http::ModelIdOfDirectory(absl::GetFlag(FLAGS_model));
  options.max_body_bytes =
      static_cast<size_t>(std::max<int64_t>(0, absl::GetFlag(FLAGS_http_max_body_bytes)));
  options.threads = absl::GetFlag(FLAGS_http_threads);
  return options;
}

// The thread that follows a dns: --workers name; stops and joins when it goes.
struct DiscoveryLoop {
  absl::Notification stop;
  std::thread thread;
  ~DiscoveryLoop() {
    stop.Notify();
    if (thread.joinable()) thread.join();
  }
};

int Run() {
  const sigset_t signals = BlockShutdownSignals();
  if (absl::Status s =
          RequireFlags({{"listen", absl::GetFlag(FLAGS_listen)},
                        {"model", absl::GetFlag(FLAGS_model)},
                        {"api-keys", absl::GetFlag(FLAGS_api_keys)},
                        {"metrics-listen", absl::GetFlag(FLAGS_metrics_listen)},
                        {"cluster-token-file", absl::GetFlag(FLAGS_cluster_token_file)}});
      !s.ok()) {
    return Fail(s);
  }
  absl::StatusOr<ApiKeys> keys = ApiKeys::Load(absl::GetFlag(FLAGS_api_keys));
  if (!keys.ok()) return Fail(keys.status());
  absl::StatusOr<ClusterToken> token =
      ClusterToken::FromFile(absl::GetFlag(FLAGS_cluster_token_file));
  if (!token.ok()) return Fail(token.status());
  RouterOptions options;
  options.similarity_threshold = absl::GetFlag(FLAGS_similarity_threshold);
  options.reuse = absl::GetFlag(FLAGS_reuse);
  options.max_tokens_limit = absl::GetFlag(FLAGS_max_tokens_limit);
  options.tenant_byte_budgets = keys->TenantByteBudgets();
  if (absl::Status s = options.Validate(); !s.ok()) return Fail(s);
  ShardSearchOptions search_options;
  search_options.deadline = absl::Milliseconds(absl::GetFlag(FLAGS_search_deadline_ms));
  WorkerPoolOptions pool_options;
  pool_options.status_ttl = absl::Milliseconds(absl::GetFlag(FLAGS_worker_status_ttl_ms));

  absl::BitGen random;
  absl::StatusOr<std::unique_ptr<EndpointHealth>> health =
      EndpointHealth::Create(BackoffOptions(), RealClock(), random);
  if (!health.ok()) return Fail(health.status());
  absl::StatusOr<std::unique_ptr<ShardSearch>> shards = ShardSearch::Create(
      SplitList(absl::GetFlag(FLAGS_shards)), *token, search_options, health->get());
  if (!shards.ok()) return Fail(shards.status());
  const std::string workers_flag = absl::GetFlag(FLAGS_workers);
  const bool discover = IsWorkerDnsName(workers_flag);
  std::vector<std::string> initial_workers = SplitList(workers_flag);
  if (discover) {
    // Workers may not be up yet: start with whatever resolves and follow the name from then on.
    pool_options.allow_empty = true;
    absl::StatusOr<std::vector<std::string>> found = ResolveWorkers(workers_flag);
    if (absl::IsInvalidArgument(found.status())) return Fail(found.status());
    if (!found.ok())
      std::fprintf(stderr, "semshare-router: %s (retrying)\n", found.status().ToString().c_str());
    initial_workers = found.value_or(std::vector<std::string>{});
  }
  absl::StatusOr<std::unique_ptr<WorkerPool>> workers =
      WorkerPool::Create(initial_workers, *token, pool_options, health->get(), RealClock());
  if (!workers.ok()) return Fail(workers.status());
  DiscoveryLoop discovery;  // stopped before the pool goes, on every return
  if (discover) {
    const absl::Duration interval =
        absl::Milliseconds(std::max(100, absl::GetFlag(FLAGS_worker_discovery_interval_ms)));
    discovery.thread = std::thread([&, pool = workers->get()] {
      while (!discovery.stop.WaitForNotificationWithTimeout(interval)) {
        // A failed lookup keeps the workers known so far.
        if (absl::StatusOr<std::vector<std::string>> found = ResolveWorkers(workers_flag);
            found.ok()) {
          pool->SetWorkers(*found);
        }
      }
    });
  }
  absl::StatusOr<std::unique_ptr<TargetEncoder>> encoder =
      LoadTargetEncoder(absl::GetFlag(FLAGS_model), absl::GetFlag(FLAGS_worker_device));
  if (!encoder.ok()) return Fail(encoder.status());
  auto registry = std::make_shared<prometheus::Registry>();
  RouterMetrics metrics(*registry);
  absl::StatusOr<std::unique_ptr<MetricsEndpoint>> endpoint =
      MetricsEndpoint::Start(absl::GetFlag(FLAGS_metrics_listen), {registry});
  if (!endpoint.ok()) return Fail(endpoint.status());
  absl::StatusOr<std::unique_ptr<Router>> router =
      Router::Create(encoder->get(), shards->get(), workers->get(), options, &metrics);
  if (!router.ok()) return Fail(router.status());
  RouterServerOptions server_options;
  server_options.listen_address = absl::GetFlag(FLAGS_listen);
  absl::StatusOr<std::unique_ptr<RouterServer>> server =
      RouterServer::Start(router->get(), &*keys, server_options);
  if (!server.ok()) return Fail(server.status());
  http::RouterBackend backend(router->get(), workers->get());
  std::unique_ptr<http::HttpServer> http_server;
  if (!absl::GetFlag(FLAGS_http_listen).empty()) {
    absl::StatusOr<std::unique_ptr<http::HttpServer>> started =
        http::HttpServer::Start(&backend, &*keys, HttpOptions());
    if (!started.ok()) return Fail(started.status());
    http_server = *std::move(started);
  }

  std::printf(
      "semshare-router ready: listen=%s port=%d metrics_port=%d shards=%s workers=%s "
      "threshold=%.3f http_port=%d\n",
      (*server)->address().c_str(), (*server)->port(), (*endpoint)->port(),
      absl::GetFlag(FLAGS_shards).c_str(), absl::GetFlag(FLAGS_workers).c_str(),
      options.similarity_threshold, http_server != nullptr ? http_server->port() : 0);
  std::fflush(stdout);
  const int signal_number = WaitForShutdownSignal(signals);
  std::printf("semshare-router: signal %d, shutting down\n", signal_number);
  std::fflush(stdout);
  if (http_server != nullptr) http_server->Shutdown();
  (*server)->Shutdown();
  std::printf("semshare-router: stopped\n");
  std::fflush(stdout);
  return 0;
}

}  // namespace
}  // namespace semshare::router

int main(int argc, char** argv) {
  semshare::EnsureBlasKernelsMatchCpu(argv);  // before anything else runs
  semshare::ParseToolFlags(
      argc, argv,
      "semshare-router --listen ADDR --shards A,B --workers W,... --model DIR --api-keys FILE "
      "--cluster-token-file F --metrics-listen ADDR [--similarity-threshold 0.8] "
      "[--search-deadline-ms N] [--http-listen ADDR [--model-name ID]]");
  return semshare::router::Run();
}
