// semshare-worker: runs the engine behind semshare.v1.Worker; pulls references' KV from the
// shards on hits and stores new references on misses.

#include <prometheus/registry.h>

#include <cstdio>
#include <memory>

#include "absl/flags/flag.h"
#include "absl/strings/str_cat.h"
#include "common/blas_core.h"
#include "common/cli.h"
#include "common/cluster_auth.h"
#include "common/rpc/metrics_endpoint.h"
#include "common/shutdown_signals.h"
#include "inference_worker/engine/engine.h"
#include "inference_worker/service/cache_node_reference_source.h"
#include "inference_worker/service/worker.h"
#include "inference_worker/service/worker_metrics.h"
#include "inference_worker/service/worker_service.h"
#include "inference_worker/tools/reuse_flags.h"

ABSL_FLAG(std::string, listen, "", "gRPC address to serve on, host:port (port 0: any free port)");
ABSL_FLAG(std::string, metrics_listen, "",
          "Prometheus /metrics address, host:port (port 0: any free port)");
ABSL_FLAG(std::string, cluster_token_file, "", "file holding the shared cluster secret");
ABSL_FLAG(int32_t, max_batch, semshare::worker::WorkerOptions().max_batch,
          "requests admitted at once (prefilling or decoding); their decodes run as one batch");
ABSL_FLAG(int32_t, max_queue, semshare::worker::WorkerOptions().max_queue,
          "requests waiting for admission per tenant; past it RESOURCE_EXHAUSTED");
ABSL_FLAG(int64_t, kv_budget_bytes, 0,
          "KV bytes admitted requests may reserve (0: a quarter of the machine's memory)");
ABSL_FLAG(int64_t, prefill_chunk_tokens, semshare::worker::WorkerOptions().prefill_chunk_tokens,
          "tokens per piece of a full prefill between two batched decode steps (0: whole prompts)");
ABSL_FLAG(int64_t, recompute_layers_per_piece,
          semshare::worker::WorkerOptions().recompute_layers_per_piece,
          "layers per piece of a selective recompute between two batched decode steps");
ABSL_FLAG(int64_t, local_cache_bytes, int64_t{512} << 20,
          "bytes of references' KV held for repeat hits");
ABSL_FLAG(int32_t, max_pending_stores, 16, "new references waiting to be stored; past it dropped");
ABSL_FLAG(bool, overlap_fetch, true,
          "recompute layer l while layer l+1 is in transfer (false: the whole transfer first)");
ABSL_FLAG(int64_t, max_pending_store_bytes, int64_t{1} << 30,
          "KV of misses kept for their stores; past it a store recomputes its prompt's KV");

namespace semshare::worker {
namespace {

int Run() {
  const sigset_t signals = BlockShutdownSignals();
  if (absl::Status s =
          RequireFlags({{"listen", absl::GetFlag(FLAGS_listen)},
                        {"cluster-token-file", absl::GetFlag(FLAGS_cluster_token_file)},
                        {"metrics-listen", absl::GetFlag(FLAGS_metrics_listen)}});
      !s.ok()) {
    return Fail(s);
  }
  WorkerOptions options;
  options.max_batch = absl::GetFlag(FLAGS_max_batch);
  options.max_queue = absl::GetFlag(FLAGS_max_queue);
  options.kv_budget_bytes = absl::GetFlag(FLAGS_kv_budget_bytes);
  options.prefill_chunk_tokens = absl::GetFlag(FLAGS_prefill_chunk_tokens);
  options.recompute_layers_per_piece = absl::GetFlag(FLAGS_recompute_layers_per_piece);
  options.local_cache_bytes = absl::GetFlag(FLAGS_local_cache_bytes);
  options.stores.max_pending = absl::GetFlag(FLAGS_max_pending_stores);
  options.stores.max_pending_bytes = absl::GetFlag(FLAGS_max_pending_store_bytes);
  options.overlap_fetch = absl::GetFlag(FLAGS_overlap_fetch);
  if (absl::Status s = options.Validate(); !s.ok()) return Fail(s);
  absl::StatusOr<ReuseOptions> reuse = ReuseOptionsFromFlags();
  if (!reuse.ok()) return Fail(reuse.status());
  absl::StatusOr<EngineOptions> engine_options = EngineOptionsFromFlags();
  if (!engine_options.ok()) return Fail(engine_options.status());
  absl::StatusOr<ClusterToken> token =
      ClusterToken::FromFile(absl::GetFlag(FLAGS_cluster_token_file));
  if (!token.ok()) return Fail(token.status());
  WorkerServerOptions server_options;
  server_options.listen_address = absl::GetFlag(FLAGS_listen);
  if (absl::Status s = server_options.Validate(); !s.ok()) return Fail(s);

  absl::StatusOr<std::unique_ptr<Model>> model = LoadModelFromFlags();
  if (!model.ok()) return Fail(model.status());
  absl::StatusOr<std::unique_ptr<Engine>> engine = Engine::Create(model->get(), *engine_options);
  if (!engine.ok()) return Fail(engine.status());
  CacheNodeReferenceSource source(*token, cache_node::CacheNodeClient::Options());
  auto registry = std::make_shared<prometheus::Registry>();
  WorkerMetrics metrics(*registry);
  absl::StatusOr<std::unique_ptr<MetricsEndpoint>> endpoint =
      MetricsEndpoint::Start(absl::GetFlag(FLAGS_metrics_listen), {registry});
  if (!endpoint.ok()) return Fail(endpoint.status());
  absl::StatusOr<std::unique_ptr<InferenceWorker>> worker =
      InferenceWorker::Create(engine->get(), *reuse, &source, options, &metrics);
  if (!worker.ok()) return Fail(worker.status());
  absl::StatusOr<std::unique_ptr<WorkerServer>> server =
      WorkerServer::Start(worker->get(), *std::move(token), server_options);
  if (!server.ok()) return Fail(server.status());

  std::printf(
      "semshare-worker ready: listen=%s port=%d metrics_port=%d fingerprint=%s max_batch=%d "
      "max_queue=%d kv_budget_bytes=%lld prefill_chunk_tokens=%lld blas_core=%s\n",
      (*server)->address().c_str(), (*server)->port(), (*endpoint)->port(),
      (*worker)->model_fingerprint().c_str(), options.max_batch, options.max_queue,
      static_cast<long long>((*worker)->Load().kv_budget_bytes),
      static_cast<long long>(options.prefill_chunk_tokens), BlasCoreName().c_str());
  std::fflush(stdout);

  const int signal_number = WaitForShutdownSignal(signals);
  std::printf("semshare-worker: signal %d, shutting down\n", signal_number);
  std::fflush(stdout);
  (*server)->Shutdown();
  worker->reset();  // finishes the stores already queued
  std::printf("semshare-worker: stopped\n");
  std::fflush(stdout);
  return 0;
}

}  // namespace
}  // namespace semshare::worker

int main(int argc, char** argv) {
  semshare::EnsureBlasKernelsMatchCpu(argv);  // before anything else runs
  semshare::ParseToolFlags(
      argc, argv,
      "semshare-worker --listen ADDR --model DIR --device cpu|cuda "
      "--cluster-token-file F --metrics-listen ADDR "
      "[--max-batch N] [--max-queue N] [--kv-budget-bytes N] [--prefill-chunk-tokens N] "
      "[--local-cache-bytes N]");
  return semshare::worker::Run();
}
