#ifndef SEMSHARE_TOOLS_BENCH_CLUSTER_BENCH_H_
#define SEMSHARE_TOOLS_BENCH_CLUSTER_BENCH_H_

#include <string>

#include "absl/status/statusor.h"
#include "common/json.h"

namespace semshare::bench {

// `semshare-bench cluster`: starts deploy/local/cluster.sh on a model without a tokenizer
// (bench-100m by default), sends a synthetic reference (a miss) then its paraphrase (a hit)
// through the router as token ids, then runs --clients concurrent clients for --duration-s.
// Reads its flags; returns the JSON result and fills `table`.
absl::StatusOr<Json> RunClusterBench(std::string* table);

}  // namespace semshare::bench

#endif  // SEMSHARE_TOOLS_BENCH_CLUSTER_BENCH_H_
