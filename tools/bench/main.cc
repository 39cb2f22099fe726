// semshare-bench: benchmarks of the distributed pieces. `semshare-bench cache-node [flags]`.
#include <algorithm>
#include <iostream>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "common/blas_core.h"
#include "common/cli.h"
#include "tools/bench/cache_node_bench.h"
#include "tools/bench/cluster_bench.h"
#include "tools/bench/interference_bench.h"
#include "tools/bench/serve_bench.h"

ABSL_FLAG(std::string, json, "", "write the JSON result to this file (default: stdout)");

int main(int argc, char** argv) {
  semshare::EnsureBlasKernelsMatchCpu(argv);  // before anything else runs
  const std::vector<std::string> args = semshare::ParseToolFlags(
      argc, argv,
      "semshare-bench cache-node [--sizes 1000,10000[,100000]] [--queries N] [--json FILE]\n"
      "semshare-bench cluster [--model DIR] [--tokens 5120] [--clients 16] [--duration-s 300] "
      "[--device cpu|cuda] [--json FILE]\n"
      "semshare-bench serve [--model DIR] [--rates 0.1,0.2,0.4,0.8] "
      "[--mixes paraphrase-heavy,prefix-heavy,novel] [--modes full,semshare] "
      "[--requests-per-rate 24] [--min-prompt-tokens 512] [--max-prompt-tokens 4096] "
      "[--ttft-slo-ms MS] [--seed 1] [--plot PNG] [--json FILE]\n"
      "semshare-bench interference [--model DIR] [--chunk-tokens 64,128,256,512] [--decoders 8] "
      "[--long-prompt-tokens 4096] [--json FILE]");
  const std::vector<std::string> benches = {"cache-node", "cluster", "serve", "interference"};
  if (args.size() != 1 || std::find(benches.begin(), benches.end(), args[0]) == benches.end()) {
    return semshare::Fail(absl::InvalidArgumentError(
        "usage: semshare-bench cache-node|cluster|serve|interference [flags]"));
  }
  std::string table;
  absl::StatusOr<semshare::Json> result =
      args[0] == "cluster"        ? semshare::bench::RunClusterBench(&table)
      : args[0] == "serve"        ? semshare::bench::RunServeBench(&table)
      : args[0] == "interference" ? semshare::bench::RunInterferenceBench(&table)
                                  : semshare::bench::RunCacheNodeBench(&table);
  if (!result.ok()) return semshare::Fail(result.status());
  return semshare::EmitResultTo(*result, table, absl::GetFlag(FLAGS_json));
}
