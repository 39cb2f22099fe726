#ifndef SEMSHARE_TOOLS_BENCH_LOCAL_CLUSTER_H_
#define SEMSHARE_TOOLS_BENCH_LOCAL_CLUSTER_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

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

}  // namespace semshare::bench

#endif  // SEMSHARE_TOOLS_BENCH_LOCAL_CLUSTER_H_
