#include "common/rpc/rpc_metrics.h"

namespace semshare {

const prometheus::Histogram::BucketBoundaries& RequestSecondsBuckets() {
  static const prometheus::Histogram::BucketBoundaries buckets = {.005, .01, .025, .05, .1, .25, .5,
                                                                  1,    2.5, 5,    10,  25, 60};
  return buckets;
}

const prometheus::Histogram::BucketBoundaries& FineSecondsBuckets() {
  static const prometheus::Histogram::BucketBoundaries buckets = [] {
    prometheus::Histogram::BucketBoundaries b = {.0005, .001, .0025};
    b.insert(b.end(), RequestSecondsBuckets().begin(), RequestSecondsBuckets().end());
    return b;
  }();
  return buckets;
}

prometheus::Gauge& UnlabelledGauge(prometheus::Registry& registry, const std::string& name,
                                   const std::string& help) {
  return prometheus::BuildGauge().Name(name).Help(help).Register(registry).Add({});
}

prometheus::Counter& UnlabelledCounter(prometheus::Registry& registry, const std::string& name,
                                       const std::string& help) {
  return prometheus::BuildCounter().Name(name).Help(help).Register(registry).Add({});
}

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
