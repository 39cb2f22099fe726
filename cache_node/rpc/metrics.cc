#include "cache_node/rpc/metrics.h"

#include <utility>

namespace semshare::cache_node {
namespace {

prometheus::MetricFamily Family(std::string name, std::string help, prometheus::MetricType type) {
  prometheus::MetricFamily family;
  family.name = std::move(name);
  family.help = std::move(help);
  family.type = type;
  return family;
}

void AddValue(prometheus::MetricFamily* family, double value, std::string tenant = "") {
  prometheus::ClientMetric metric;
  if (!tenant.empty()) metric.label.push_back({"tenant", std::move(tenant)});
  if (family->type == prometheus::MetricType::Counter) {
    metric.counter.value = value;
  } else {
    metric.gauge.value = value;
  }
  family->metric.push_back(std::move(metric));
}

// Reads NodeStats when scraped, so the figures are never stale.
class NodeStatsCollector : public prometheus::Collectable {
 public:
  explicit NodeStatsCollector(std::function<NodeStats()> stats) : stats_(std::move(stats)) {}

  // Per-tenant families carry no unlabelled total, so sum() over them is the node's figure.
  std::vector<prometheus::MetricFamily> Collect() const override {
    const NodeStats stats = stats_();
    prometheus::MetricFamily references =
        Family("semshare_cache_node_references", "References stored, by tenant",
               prometheus::MetricType::Gauge);
    prometheus::MetricFamily bytes =
        Family("semshare_cache_node_stored_bytes", "KV bytes stored, by tenant",
               prometheus::MetricType::Gauge);
    prometheus::MetricFamily evicted =
        Family("semshare_cache_node_evicted_references_total",
               "References evicted since start, by tenant", prometheus::MetricType::Counter);
    prometheus::MetricFamily evicted_bytes =
        Family("semshare_cache_node_evicted_bytes_total", "KV bytes evicted since start, by tenant",
               prometheus::MetricType::Counter);
    prometheus::MetricFamily capacity =
        Family("semshare_cache_node_capacity_bytes", "The node's byte budget",
               prometheus::MetricType::Gauge);
    prometheus::MetricFamily corrupt = Family(
        "semshare_cache_node_corrupt_blobs_removed_total",
        "KV blobs that failed their checksum and were removed", prometheus::MetricType::Counter);
    AddValue(&capacity, static_cast<double>(stats.capacity_bytes));
    AddValue(&corrupt, static_cast<double>(stats.corrupt_blobs_removed));
    for (const auto& [tenant, t] : stats.tenants) {
      AddValue(&references, static_cast<double>(t.references), tenant);
      AddValue(&bytes, static_cast<double>(t.bytes), tenant);
      AddValue(&evicted, static_cast<double>(t.evicted_references), tenant);
      AddValue(&evicted_bytes, static_cast<double>(t.evicted_bytes), tenant);
    }
    return {std::move(references),    std::move(bytes),    std::move(evicted),
            std::move(evicted_bytes), std::move(capacity), std::move(corrupt)};
  }

 private:
  std::function<NodeStats()> stats_;
};

}  // namespace

CacheNodeMetrics::CacheNodeMetrics(std::function<NodeStats()> stats)
    : registry_(std::make_shared<prometheus::Registry>()),
      rpcs_(*registry_, "semshare_cache_node"),
      kv_sent_bytes_(&prometheus::BuildCounter()
                          .Name("semshare_cache_node_kv_sent_bytes_total")
                          .Help("KV bytes sent by FetchKV, by tenant")
                          .Register(*registry_)),
      node_stats_(std::make_shared<NodeStatsCollector>(std::move(stats))) {}

void CacheNodeMetrics::RecordKvSent(const std::string& tenant, int64_t bytes) {
  kv_sent_bytes_->Add({{"tenant", tenant}}).Increment(static_cast<double>(bytes));
}

void CacheNodeMetrics::RecordRpc(absl::string_view method, absl::string_view code, double seconds) {
  rpcs_.Record(method, code, seconds);
}

std::vector<std::shared_ptr<prometheus::Collectable>> CacheNodeMetrics::collectables() const {
  return {registry_, node_stats_};
}

}  // namespace semshare::cache_node
