#ifndef SEMSHARE_CACHE_NODE_RPC_METRICS_H_
#define SEMSHARE_CACHE_NODE_RPC_METRICS_H_

#include <prometheus/collectable.h>
#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/registry.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "cache_node/cache_node.h"
#include "common/rpc/rpc_metrics.h"

namespace semshare::cache_node {

// The cache node's Prometheus metrics (names: the metric catalogue): RPC counts and latency by
// method and status code, KV bytes sent, and the node's references, bytes, evictions and
// corrupt blobs read from NodeStats at scrape time.
class CacheNodeMetrics {
 public:
  // `stats` is called on every scrape; it must stay callable while the metrics are exposed.
  explicit CacheNodeMetrics(std::function<NodeStats()> stats);

  // `code` is the gRPC status code name, e.g. "OK", "NOT_FOUND".
  void RecordRpc(absl::string_view method, absl::string_view code, double seconds);

  // Bytes of KV (keys and values) a FetchKV sent to `tenant`.
  void RecordKvSent(const std::string& tenant, int64_t bytes);

  // Everything to register with a prometheus::Exposer.
  std::vector<std::shared_ptr<prometheus::Collectable>> collectables() const;

 private:
  std::shared_ptr<prometheus::Registry> registry_;
  RpcMetrics rpcs_;
  prometheus::Family<prometheus::Counter>* kv_sent_bytes_;
  std::shared_ptr<prometheus::Collectable> node_stats_;
};

}  // namespace semshare::cache_node

#endif  // SEMSHARE_CACHE_NODE_RPC_METRICS_H_
