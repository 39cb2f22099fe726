#include "router/service/worker_discovery.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace semshare::router {
namespace {

TEST(WorkerDiscoveryTest, DnsNamesResolveToEveryAddressWithThePort) {
  EXPECT_TRUE(IsWorkerDnsName("dns:semshare-worker:7100"));
  EXPECT_FALSE(IsWorkerDnsName("10.0.0.1:7100,10.0.0.2:7100"));
  const absl::StatusOr<std::vector<std::string>> found = ResolveWorkers("dns:localhost:7100");
  ASSERT_TRUE(found.ok()) << found.status();
  EXPECT_THAT(*found, ::testing::Contains("127.0.0.1:7100"));
  EXPECT_TRUE(std::is_sorted(found->begin(), found->end()));
  EXPECT_EQ(*ResolveWorkers("dns:127.0.0.1:7100"), std::vector<std::string>{"127.0.0.1:7100"});
}

TEST(WorkerDiscoveryTest, MalformedNamesAndUnknownHostsAreErrors) {
  for (const char* bad : {"dns:localhost", "dns::7100", "dns:localhost:0", "dns:localhost:70000",
                          "dns:localhost:port", "localhost:7100"}) {
    EXPECT_EQ(ResolveWorkers(bad).status().code(), absl::StatusCode::kInvalidArgument) << bad;
  }
  EXPECT_EQ(ResolveWorkers("dns:no-such-worker.invalid:7100").status().code(),
            absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace semshare::router
