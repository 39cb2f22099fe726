#ifndef SEMSHARE_TOOLS_BENCH_CACHE_NODE_BENCH_H_
#define SEMSHARE_TOOLS_BENCH_CACHE_NODE_BENCH_H_

#include <string>

#include "absl/status/statusor.h"
#include "common/json.h"

namespace semshare::bench {

// `semshare-bench cache-node`: FindSimilar latency over gRPC at several reference counts,
// restart-to-ready time, and FetchKV throughput beside the loopback TCP bound. Reads its
// flags (--sizes, --queries, ...); returns the JSON result and fills `table`.
absl::StatusOr<Json> RunCacheNodeBench(std::string* table);

}  // namespace semshare::bench

#endif  // SEMSHARE_TOOLS_BENCH_CACHE_NODE_BENCH_H_
