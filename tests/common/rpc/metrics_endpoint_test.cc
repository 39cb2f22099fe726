#include "common/rpc/metrics_endpoint.h"

#include <prometheus/counter.h>
#include <prometheus/registry.h>

#include <memory>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/common/http_get.h"

namespace semshare {
namespace {

using ::testing::HasSubstr;

std::shared_ptr<prometheus::Registry> RegistryWithCounter(double value) {
  auto registry = std::make_shared<prometheus::Registry>();
  prometheus::BuildCounter()
      .Name("semshare_test_total")
      .Help("a test counter")
      .Register(*registry)
      .Add({})
      .Increment(value);
  return registry;
}

TEST(MetricsEndpointTest, ServesTheCollectablesOnAnyFreePort) {
  auto endpoint = MetricsEndpoint::Start("127.0.0.1:0", {RegistryWithCounter(3)});
  ASSERT_TRUE(endpoint.ok()) << endpoint.status();
  ASSERT_GT((*endpoint)->port(), 0);
  const std::string response = testing_http::HttpGet((*endpoint)->port(), "/metrics");
  EXPECT_THAT(response, HasSubstr("HTTP/1.0 200 OK\r\n"));
  EXPECT_THAT(response, HasSubstr("Content-Type: text/plain; version=0.0.4"));
  EXPECT_THAT(response, HasSubstr("# TYPE semshare_test_total counter\nsemshare_test_total 3\n"));
}

TEST(MetricsEndpointTest, OtherPathsAreNotFound) {
  auto endpoint = MetricsEndpoint::Start("127.0.0.1:0", {RegistryWithCounter(1)});
  ASSERT_TRUE(endpoint.ok()) << endpoint.status();
  EXPECT_THAT(testing_http::HttpGet((*endpoint)->port(), "/"),
              HasSubstr("HTTP/1.0 404 Not Found\r\n"));
}

TEST(MetricsEndpointTest, AfterStopCollectingNothingIsRead) {
  auto endpoint = MetricsEndpoint::Start("127.0.0.1:0", {RegistryWithCounter(1)});
  ASSERT_TRUE(endpoint.ok()) << endpoint.status();
  (*endpoint)->StopCollecting();
  const std::string response = testing_http::HttpGet((*endpoint)->port(), "/metrics");
  EXPECT_THAT(response, HasSubstr("HTTP/1.0 200 OK\r\n"));
  EXPECT_THAT(response, ::testing::Not(HasSubstr("semshare_test_total")));
}

TEST(MetricsEndpointTest, ABoundPortOrABadAddressIsAClearError) {
  auto first = MetricsEndpoint::Start("127.0.0.1:0", {});
  ASSERT_TRUE(first.ok()) << first.status();
  const std::string taken = "127.0.0.1:" + std::to_string((*first)->port());
  auto second = MetricsEndpoint::Start(taken, {});
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(std::string(second.status().message()),
              HasSubstr("cannot serve metrics on " + taken));
  EXPECT_EQ(MetricsEndpoint::Start("no-port", {}).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(MetricsEndpoint::Start("", {}).status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace semshare
