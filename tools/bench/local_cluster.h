#ifndef SEMSHARE_TOOLS_BENCH_LOCAL_CLUSTER_H_
#define SEMSHARE_TOOLS_BENCH_LOCAL_CLUSTER_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "semshare/v1/router.grpc.pb.h"

// What the cluster benchmarks share: the binaries' directory, deploy/local/cluster.sh's files,
// the benchmark model, percentiles.
namespace semshare::bench {

// The directory of this binary (the other binaries sit beside it), or $SEMSHARE_BIN_DIR.
std::string BinDir();
absl::Status RunCommand(const std::string& command);
std::string ReadTrimmed(const std::string& path);
// `q` in [0, 1] of `values` (nearest rank); 0 when empty.
double Percentile(std::vector<double> values, double q);
// An integer field of the model's config.json.
absl::StatusOr<int32_t> ConfigInt(const std::string& model, const std::string& key);
// `model`, or bench-100m made under `dir` (semshare-make-model --seed 1) when it is empty.
absl::StatusOr<std::string> BenchModel(const std::string& model, const std::string& dir);
// The tenant the cluster's api_keys file names for `key`.
std::string TenantOfKey(const std::string& dir, const std::string& key);
// Stores the cluster's worker has queued or running (-1 when it cannot be asked).
int32_t WorkerPendingStores(const std::string& dir);
// A new directory under /tmp, or `dir` when it is not empty.
absl::StatusOr<std::string> ClusterDir(const std::string& dir, const std::string& prefix);

// One streamed Generate call as its client sees it.
struct ClientCall {
  bool ok = false;
  std::string error;
  bool hit = false;
  double ttft_ms = 0;     // the call to the first token read
  double latency_ms = 0;  // the call to the end of the stream
  int64_t tokens = 0;
  double reported_queue_ms = 0;
  std::vector<double> token_ms;  // when each token was read, ms after the call
};

// Calls the router's Generate with `prompt` (token ids) and reads the stream to its end.
ClientCall StreamGenerate(v1::Router::Stub* stub, const std::string& api_key,
                          const std::vector<int32_t>& prompt, int32_t max_tokens);

// How deploy/local/cluster.sh is started.
struct LocalClusterArgs {
  std::string script;  // deploy/local/cluster.sh
  std::string model;
  std::string device;  // cpu | cuda
  std::string worker_args;
  std::string router_args;
};

// A cluster of deploy/local/cluster.sh, up for the object's life.
class LocalCluster {
 public:
  static absl::StatusOr<std::unique_ptr<LocalCluster>> Start(const std::string& dir,
                                                             const LocalClusterArgs& args);
  ~LocalCluster();
  LocalCluster(const LocalCluster&) = delete;
  LocalCluster& operator=(const LocalCluster&) = delete;

  v1::Router::Stub* stub() { return stub_.get(); }
  // The API key of tenant 0 or 1 (the cluster's two keys).
  const std::string& key(int tenant) const { return keys_[tenant]; }
  // Bounded wait for the worker's stores to land, so one run's stores do not slow the next.
  void WaitForStores() const;

 private:
  LocalCluster(std::string dir, std::string script)
      : dir_(std::move(dir)), script_(std::move(script)) {}

  const std::string dir_;
  const std::string script_;
  std::vector<std::string> keys_;
  std::unique_ptr<v1::Router::Stub> stub_;
};

}  // namespace semshare::bench

#endif  // SEMSHARE_TOOLS_BENCH_LOCAL_CLUSTER_H_
