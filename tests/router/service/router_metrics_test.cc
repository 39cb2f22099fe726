#include "router/service/router_metrics.h"

#include <prometheus/registry.h>
#include <prometheus/text_serializer.h>

#include <string>

#include "absl/status/status.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace semshare::router {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

std::string Scrape(prometheus::Registry& registry) {
  return prometheus::TextSerializer().Serialize(registry.Collect());
}

v1::GenerateStats Served(bool hit, bool bypassed) {
  v1::GenerateStats stats;
  stats.set_cache_hit(hit);
  stats.set_bypassed(bypassed);
  stats.set_ttft_ms(250);
  stats.set_latency_ms(500);
  stats.set_recompute_share(0.25);
  stats.set_kv_kept_share(0.5);
  stats.mutable_stages()->set_tokenize_ms(1);
  stats.mutable_stages()->set_search_ms(2);
  stats.mutable_stages()->set_queue_ms(3);
  stats.mutable_stages()->set_fetch_ms(4);
  stats.mutable_stages()->set_recompute_ms(8);
  stats.mutable_stages()->set_decode_ms(16);
  return stats;
}

TEST(RequestOutcomeTest, ErrorHitBypassMiss) {
  EXPECT_EQ(RequestOutcome(absl::UnavailableError("down")), "error");
  EXPECT_EQ(RequestOutcome(Served(true, false)), "hit");
  EXPECT_EQ(RequestOutcome(Served(false, true)), "bypass");
  EXPECT_EQ(RequestOutcome(Served(false, false)), "miss");
}

TEST(RouterMetricsTest, CountsRequestsByTenantAndOutcome) {
  prometheus::Registry registry;
  RouterMetrics metrics(registry);
  metrics.RecordRequest("a", Served(true, false), 0.9);
  metrics.RecordRequest("a", Served(true, false), 0.85);
  metrics.RecordRequest("a", Served(false, false), std::nullopt);
  metrics.RecordRequest("b", Served(false, true), 0.95);
  metrics.RecordRequest("b", absl::UnavailableError("no worker"), std::nullopt);
  const std::string text = Scrape(registry);
  EXPECT_THAT(text, HasSubstr("semshare_router_requests_total{outcome=\"hit\",tenant=\"a\"} 2\n"));
  EXPECT_THAT(text, HasSubstr("semshare_router_requests_total{outcome=\"miss\",tenant=\"a\"} 1\n"));
  EXPECT_THAT(text,
              HasSubstr("semshare_router_requests_total{outcome=\"bypass\",tenant=\"b\"} 1\n"));
  EXPECT_THAT(text,
              HasSubstr("semshare_router_requests_total{outcome=\"error\",tenant=\"b\"} 1\n"));
  EXPECT_THAT(text, HasSubstr("# TYPE semshare_router_requests_total counter\n"));
}

TEST(RouterMetricsTest, LatenciesByOutcomeSharesOfHitsOnlyAndStages) {
  prometheus::Registry registry;
  RouterMetrics metrics(registry);
  metrics.RecordRequest("a", Served(true, false), 0.9);
  metrics.RecordRequest("a", Served(false, false), std::nullopt);
  metrics.RecordRequest("a", absl::InternalError("x"), std::nullopt);
  const std::string text = Scrape(registry);
  EXPECT_THAT(text, HasSubstr("semshare_router_ttft_seconds_count{outcome=\"hit\"} 1\n"));
  EXPECT_THAT(text, HasSubstr("semshare_router_ttft_seconds_sum{outcome=\"hit\"} 0.25\n"));
  EXPECT_THAT(text,
              HasSubstr("semshare_router_request_duration_seconds_sum{outcome=\"miss\"} 0.5\n"));
  // A failed request has no latency to report.
  EXPECT_THAT(text, Not(HasSubstr("semshare_router_ttft_seconds_count{outcome=\"error\"}")));
  EXPECT_THAT(text, HasSubstr("semshare_router_recompute_share_count 1\n"));
  EXPECT_THAT(text, HasSubstr("semshare_router_recompute_share_sum 0.25\n"));
  EXPECT_THAT(text, HasSubstr("semshare_router_kv_kept_share_sum 0.5\n"));
  EXPECT_THAT(text, HasSubstr("semshare_router_similarity_count 1\n"));
  EXPECT_THAT(text, HasSubstr("semshare_router_similarity_sum 0.9\n"));
  // Stages by outcome, the worker's queue among them.
  EXPECT_THAT(
      text, HasSubstr("semshare_router_stage_seconds_count{outcome=\"hit\",stage=\"decode\"} 1\n"));
  EXPECT_THAT(
      text,
      HasSubstr("semshare_router_stage_seconds_sum{outcome=\"miss\",stage=\"decode\"} 0.016\n"));
  EXPECT_THAT(
      text,
      HasSubstr("semshare_router_stage_seconds_sum{outcome=\"hit\",stage=\"tokenize\"} 0.001\n"));
  EXPECT_THAT(
      text,
      HasSubstr("semshare_router_stage_seconds_sum{outcome=\"miss\",stage=\"queue\"} 0.003\n"));
}

TEST(RouterMetricsTest, InFlightRetriesEndpointsAndRpcs) {
  prometheus::Registry registry;
  RouterMetrics metrics(registry);
  metrics.RequestStarted();
  metrics.RequestStarted();
  metrics.RequestEnded();
  metrics.RecordWorkerRetry();
  metrics.SetShardUp("s0:1", true);
  metrics.SetShardUp("s1:1", true);
  metrics.SetShardUp("s1:1", false);
  metrics.SetWorkerUp("w:1", true);
  metrics.RecordRpc("Generate", "OK", 0.5);
  metrics.RecordRpc("Generate", "OK", 0.25);
  metrics.RecordRpc("http_completions", "UNAUTHENTICATED", 0.001);
  const std::string text = Scrape(registry);
  EXPECT_THAT(text, HasSubstr("semshare_router_in_flight_requests 1\n"));
  EXPECT_THAT(text, HasSubstr("semshare_router_worker_retries_total 1\n"));
  EXPECT_THAT(text, HasSubstr("semshare_router_shard_up{shard=\"s0:1\"} 1\n"));
  EXPECT_THAT(text, HasSubstr("semshare_router_shard_up{shard=\"s1:1\"} 0\n"));
  EXPECT_THAT(text, HasSubstr("semshare_router_worker_up{worker=\"w:1\"} 1\n"));
  EXPECT_THAT(text, HasSubstr("semshare_router_rpcs_total{code=\"OK\",method=\"Generate\"} 2\n"));
  EXPECT_THAT(
      text,
      HasSubstr(
          "semshare_router_rpcs_total{code=\"UNAUTHENTICATED\",method=\"http_completions\"} 1\n"));
  EXPECT_THAT(text, HasSubstr("semshare_router_rpc_seconds_sum{method=\"Generate\"} 0.75\n"));
}

TEST(RouterMetricsTest, ShareBucketsStepByFiveHundredths) {
  prometheus::Registry registry;
  RouterMetrics metrics(registry);
  metrics.RecordRequest("a", Served(true, false), 0.82);
  const std::string text = Scrape(registry);
  EXPECT_THAT(text, HasSubstr("semshare_router_similarity_bucket{le=\"0.8\"} 0\n"));
  EXPECT_THAT(text, HasSubstr("semshare_router_similarity_bucket{le=\"0.85\"} 1\n"));
  EXPECT_THAT(text, HasSubstr("semshare_router_similarity_bucket{le=\"1\"} 1\n"));
  EXPECT_THAT(text,
              HasSubstr("semshare_router_ttft_seconds_bucket{outcome=\"hit\",le=\"0.1\"} 0\n"));
  EXPECT_THAT(text,
              HasSubstr("semshare_router_ttft_seconds_bucket{outcome=\"hit\",le=\"0.25\"} 1\n"));
}

}  // namespace
}  // namespace semshare::router
