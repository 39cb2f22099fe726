#include "common/cluster_auth.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdlib>

#include "common/file_util.h"

namespace semshare {
namespace {

using ::testing::HasSubstr;

TEST(ClusterAuthTest, TokenMatchesOnlyItself) {
  const ClusterToken token = *ClusterToken::FromString("  secret-0123456789abcdef\n");
  EXPECT_EQ(token.value(), "secret-0123456789abcdef");
  EXPECT_TRUE(token.Matches("secret-0123456789abcdef"));
  EXPECT_FALSE(token.Matches("secret-0123456789abcdeF"));
  EXPECT_FALSE(token.Matches("secret-0123456789abcde"));
  EXPECT_FALSE(token.Matches("secret-0123456789abcdefg"));
  EXPECT_FALSE(token.Matches(""));
}

TEST(ClusterAuthTest, RejectsWeakTokens) {
  EXPECT_TRUE(absl::IsInvalidArgument(ClusterToken::FromString("short").status()));
  EXPECT_TRUE(absl::IsInvalidArgument(ClusterToken::FromString("has a space in it 0123").status()));
}

TEST(ClusterAuthTest, ReadsTheTokenFromAFile) {
  const std::string dir = std::string(getenv("TEST_TMPDIR") ? getenv("TEST_TMPDIR") : "/tmp");
  const std::string path = JoinPath(dir, "semshare_cluster_token_test");
  ASSERT_TRUE(WriteStringToFile(path, "file-token-0123456789\n").ok());
  absl::StatusOr<ClusterToken> token = ClusterToken::FromFile(path);
  ASSERT_TRUE(token.ok()) << token.status();
  EXPECT_TRUE(token->Matches("file-token-0123456789"));
  EXPECT_TRUE(absl::IsNotFound(ClusterToken::FromFile(path + ".missing").status()));
}

TEST(ClusterAuthTest, AuthenticatesTenantsVouchedForByTheToken) {
  const ClusterToken token = *ClusterToken::FromString("secret-0123456789abcdef");
  const std::string good = "secret-0123456789abcdef", bad = "secret-0123456789abcdeg";
  const std::string alice = "alice", evil = "alice\nbob", empty;
  EXPECT_EQ(*AuthenticateTenant(token, &good, &alice), "alice");
  EXPECT_THAT(AuthenticateTenant(token, nullptr, &alice).status().message(),
              HasSubstr("missing x-semshare-cluster-token"));
  EXPECT_THAT(AuthenticateTenant(token, &bad, &alice).status().message(), HasSubstr("wrong"));
  EXPECT_THAT(AuthenticateTenant(token, &good, nullptr).status().message(),
              HasSubstr("missing x-semshare-tenant"));
  EXPECT_TRUE(absl::IsUnauthenticated(AuthenticateTenant(token, &good, &evil).status()));
  EXPECT_TRUE(absl::IsUnauthenticated(AuthenticateTenant(token, &good, &empty).status()));
  EXPECT_TRUE(absl::IsUnauthenticated(AuthenticateTenant(token, &bad, &alice).status()));
}

TEST(ClusterAuthTest, TenantNames) {
  EXPECT_TRUE(ValidateTenantName("team-a_1.prod").ok());
  EXPECT_FALSE(ValidateTenantName("").ok());
  EXPECT_FALSE(ValidateTenantName("a b").ok());
  EXPECT_FALSE(ValidateTenantName(std::string(129, 'a')).ok());
}

}  // namespace
}  // namespace semshare
