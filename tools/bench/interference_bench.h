#ifndef SEMSHARE_TOOLS_BENCH_INTERFERENCE_BENCH_H_
#define SEMSHARE_TOOLS_BENCH_INTERFERENCE_BENCH_H_

#include <string>

#include "absl/status/statusor.h"
#include "common/json.h"

namespace semshare::bench {

// `semshare-bench interference`: what a long prefill arriving costs the requests already
// decoding, at each worker --prefill-chunk-tokens of --chunk-tokens. Per value a local cluster
// (full prefill, nothing stored) serves --decoders streaming requests; once they decode, one
// --long-prompt-tokens prompt arrives. Measured at the clients: the decoders' time between
// tokens in a window before it arrives and while it prefills (p50, p99, their ratio), and the
// long prompt's TTFT. Reads its flags; returns the JSON result and fills `table`.
absl::StatusOr<Json> RunInterferenceBench(std::string* table);

}  // namespace semshare::bench

#endif  // SEMSHARE_TOOLS_BENCH_INTERFERENCE_BENCH_H_
