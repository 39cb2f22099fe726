#ifndef SEMSHARE_TOOLS_BENCH_SERVE_BENCH_H_
#define SEMSHARE_TOOLS_BENCH_SERVE_BENCH_H_

#include <string>

#include "absl/status/statusor.h"
#include "common/json.h"

namespace semshare::bench {

// `semshare-bench serve`: a serving workload against deploy/local/cluster.sh, measured at the
// client. Poisson arrivals at each of --rates, prompts (token ids) drawn per --mixes from a
// pool of documents (repeats, paraphrases, re-ordered sections, multi-turn extensions, novel
// documents), two tenants; each mix served by a cluster per mode (full: the router searches
// nothing and stores nothing; semshare). Reports TTFT and time per output token percentiles,
// throughput and hit rate per rate, and per mode the highest rate whose TTFT p99 meets the
// SLO. Reads its flags; returns the JSON result and fills `table`.
absl::StatusOr<Json> RunServeBench(std::string* table);

}  // namespace semshare::bench

#endif  // SEMSHARE_TOOLS_BENCH_SERVE_BENCH_H_
