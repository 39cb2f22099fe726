#include "cache_node/cache_node.h"

#include "gtest/gtest.h"

namespace semshare::cache_node {
namespace {

TEST(CacheNodeOptionsTest, ValidateRejectsBadConfig) {
  CacheNodeOptions options;
  EXPECT_EQ(options.Validate().code(), absl::StatusCode::kInvalidArgument);
  options.data_dir = "/tmp/x";
  EXPECT_EQ(options.Validate().code(), absl::StatusCode::kInvalidArgument);
  options.capacity_bytes = 1 << 20;
  EXPECT_TRUE(options.Validate().ok());
  options.candidates = 0;
  EXPECT_EQ(options.Validate().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace semshare::cache_node
