#include "inference_worker/service/worker_metrics.h"

#include <prometheus/registry.h>
#include <prometheus/text_serializer.h>

#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace semshare::worker {
namespace {

using ::testing::HasSubstr;

std::string Scrape(prometheus::Registry& registry) {
  return prometheus::TextSerializer().Serialize(registry.Collect());
}

TEST(WorkerMetricsTest, RequestsRejectionsAndLoad) {
  prometheus::Registry registry;
  WorkerMetrics metrics(registry);
  metrics.RecordRequest("a", "hit");
  metrics.RecordRequest("a", "hit");
  metrics.RecordRequest("b", "bypass");
  metrics.RecordRejected();
  metrics.SetLoad(2, 5, 1024, 4096);
  metrics.RecordDecodeStep(3);
  metrics.RecordDecodeStep(16);
  metrics.RecordQueueWait(0.25);
  const std::string text = Scrape(registry);
  EXPECT_THAT(text, HasSubstr("semshare_worker_requests_total{outcome=\"hit\",tenant=\"a\"} 2\n"));
  EXPECT_THAT(text,
              HasSubstr("semshare_worker_requests_total{outcome=\"bypass\",tenant=\"b\"} 1\n"));
  EXPECT_THAT(text, HasSubstr("semshare_worker_rejected_requests_total 1\n"));
  EXPECT_THAT(text, HasSubstr("semshare_worker_in_flight_requests 2\n"));
  EXPECT_THAT(text, HasSubstr("semshare_worker_queue_depth 5\n"));
  EXPECT_THAT(text, HasSubstr("semshare_worker_kv_reserved_bytes 1024\n"));
  EXPECT_THAT(text, HasSubstr("semshare_worker_kv_budget_bytes 4096\n"));
  EXPECT_THAT(text, HasSubstr("semshare_worker_decode_batch_size_count 2\n"));
  EXPECT_THAT(text, HasSubstr("semshare_worker_decode_batch_size_sum 19\n"));
  EXPECT_THAT(text, HasSubstr("semshare_worker_queue_seconds_sum 0.25\n"));
}

TEST(WorkerMetricsTest, FetchesLocalCacheStoresAndRpcs) {
  prometheus::Registry registry;
  WorkerMetrics metrics(registry);
  metrics.RecordFetch("a", 1000, 0.25);
  metrics.RecordFetch("a", 24, 0.5);
  metrics.RecordFetch("b", 7, 0.125);
  metrics.RecordLocalCacheHit();
  metrics.SetLocalCache(4096, 3);
  metrics.RecordStore("stored");
  metrics.RecordStore("stored");
  metrics.RecordStore("dropped");
  metrics.RecordRpc("GetStatus", "OK", 0.001);
  const std::string text = Scrape(registry);
  EXPECT_THAT(text, HasSubstr("semshare_worker_kv_fetched_bytes_total{tenant=\"a\"} 1024\n"));
  EXPECT_THAT(text, HasSubstr("semshare_worker_kv_fetched_bytes_total{tenant=\"b\"} 7\n"));
  EXPECT_THAT(text, HasSubstr("semshare_worker_kv_fetch_seconds_count 3\n"));
  EXPECT_THAT(text, HasSubstr("semshare_worker_kv_fetch_seconds_sum 0.875\n"));
  EXPECT_THAT(text, HasSubstr("semshare_worker_local_cache_hits_total 1\n"));
  EXPECT_THAT(text, HasSubstr("semshare_worker_local_cache_bytes 4096\n"));
  EXPECT_THAT(text, HasSubstr("semshare_worker_local_cache_references 3\n"));
  EXPECT_THAT(text, HasSubstr("semshare_worker_stores_total{result=\"stored\"} 2\n"));
  EXPECT_THAT(text, HasSubstr("semshare_worker_stores_total{result=\"dropped\"} 1\n"));
  EXPECT_THAT(text, HasSubstr("semshare_worker_rpcs_total{code=\"OK\",method=\"GetStatus\"} 1\n"));
}

}  // namespace
}  // namespace semshare::worker
