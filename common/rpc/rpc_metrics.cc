#include "common/rpc/rpc_metrics.h"

namespace semshare {

RpcMetrics::RpcMetrics(prometheus::Registry& registry, const std::string& prefix)
    : rpcs_(prometheus::BuildCounter()
                .Name(prefix + "_rpcs_total")
                .Help("Server calls, by method and status code")
                .Register(registry)),
      rpc_seconds_(prometheus::BuildHistogram()
                       .Name(prefix + "_rpc_seconds")
                       .Help("Server call latency in seconds, by method")
                       .Register(registry)) {}

void RpcMetrics::Record(absl::string_view method, absl::string_view code, double seconds) {
  static const prometheus::Histogram::BucketBoundaries kBuckets = {
      0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10, 60};
  rpcs_.Add({{"method", std::string(method)}, {"code", std::string(code)}}).Increment();
  rpc_seconds_.Add({{"method", std::string(method)}}, kBuckets).Observe(seconds);
}

}  // namespace semshare
