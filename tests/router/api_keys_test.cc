#include "router/api_keys.h"

#include <cstdio>
#include <fstream>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace semshare::router {
namespace {

using ::testing::HasSubstr;

constexpr char kKeys[] =
    "# production keys\n"
    "\n"
    "alpha-key-0123456789  acme   1048576\n"
    "\tbeta-key-0123456789+/=\tacme\t1048576  \r\n"
    "gamma_key.0123456789~ globex 0\n";

ApiKeys ParseOrDie(absl::string_view text) {
  absl::StatusOr<ApiKeys> keys = ApiKeys::Parse(text, "keys.txt");
  EXPECT_TRUE(keys.ok()) << keys.status();
  return *std::move(keys);
}

TEST(ApiKeysTest, ParsesKeysCommentsBlankLinesAndCrlf) {
  const ApiKeys keys = ParseOrDie(kKeys);
  EXPECT_EQ(keys.size(), 3u);
  absl::StatusOr<TenantGrant> grant = keys.Authenticate("Bearer beta-key-0123456789+/=");
  ASSERT_TRUE(grant.ok()) << grant.status();
  EXPECT_EQ(grant->tenant, "acme");
  EXPECT_EQ(grant->byte_budget, 1048576);
  grant = keys.Authenticate("Bearer gamma_key.0123456789~");
  ASSERT_TRUE(grant.ok()) << grant.status();
  EXPECT_EQ(grant->tenant, "globex");
  EXPECT_EQ(grant->byte_budget, 0);
}

TEST(ApiKeysTest, SchemeIsCaseInsensitive) {
  const ApiKeys keys = ParseOrDie(kKeys);
  EXPECT_TRUE(keys.Authenticate("bearer alpha-key-0123456789").ok());
  EXPECT_TRUE(keys.Authenticate("BEARER alpha-key-0123456789").ok());
}

TEST(ApiKeysTest, MissingMalformedAndUnknownAreUnauthenticated) {
  const ApiKeys keys = ParseOrDie(kKeys);
  for (const char* header :
       {"", "alpha-key-0123456789", "Basic alpha-key-0123456789", "Bearer", "Bearer ",
        "Bearer alpha key", "Bearer alpha-key-0123456789x", "Bearer alpha-key-012345678",
        "Bearer \xff\xfe", "Bearer ALPHA-KEY-0123456789"}) {
    absl::StatusOr<TenantGrant> grant = keys.Authenticate(header);
    EXPECT_TRUE(absl::IsUnauthenticated(grant.status()))
        << "'" << header << "': " << grant.status();
  }
  EXPECT_THAT(keys.Authenticate("").status().message(), HasSubstr("missing"));
  EXPECT_THAT(keys.Authenticate("Token x").status().message(), HasSubstr("Bearer KEY"));
  const absl::Status unknown = keys.Authenticate("Bearer zeta-key-0123456789").status();
  EXPECT_THAT(unknown.message(), HasSubstr("unknown API key"));
  EXPECT_THAT(unknown.message(), ::testing::Not(HasSubstr("zeta")));  // never echoes the key
}

TEST(ApiKeysTest, BadFilesNameTheLine) {
  struct Case {
    const char* text;
    const char* message;
  };
  const Case cases[] = {
      {"alpha-key-0123456789 acme\n", "keys.txt:1: expected 3 fields"},
      {"# c\nalpha-key-0123456789 acme 1 extra\n", "keys.txt:2: expected 3 fields"},
      {"short acme 1\n", "keys.txt:1: key must be 16 to 256"},
      {"alpha-key-01234567$9 acme 1\n", "keys.txt:1: key must be"},
      {"alpha-key-0123456789 ac/me 1\n", "keys.txt:1: tenant 'ac/me'"},
      {"alpha-key-0123456789 acme -5\n", "keys.txt:1: byte budget '-5'"},
      {"alpha-key-0123456789 acme 1e6\n", "keys.txt:1: byte budget '1e6'"},
      {"alpha-key-0123456789 acme +5\n", "keys.txt:1: byte budget '+5'"},
      {"alpha-key-0123456789 acme 99999999999999999999\n", "keys.txt:1: byte budget"},
      {"alpha-key-0123456789 acme 1\n\nalpha-key-0123456789 globex 1\n",
       "keys.txt:3: the same key is already on line 1"},
      {"alpha-key-0123456789 acme 1\nbeta-key-0123456789x acme 2\n",
       "keys.txt:2: tenant 'acme' has byte budget 2 here but 1 on line 1"},
      {"# nothing\n\n", "keys.txt: no keys"},
  };
  for (const Case& c : cases) {
    absl::StatusOr<ApiKeys> keys = ApiKeys::Parse(c.text, "keys.txt");
    ASSERT_FALSE(keys.ok()) << c.text;
    EXPECT_TRUE(absl::IsInvalidArgument(keys.status()));
    EXPECT_THAT(keys.status().message(), HasSubstr(c.message)) << c.text;
  }
}

TEST(ApiKeysTest, LoadsAFileAndReportsAMissingOne) {
  const std::string path = ::testing::TempDir() + "/api_keys_test_keys.txt";
  {
    std::ofstream out(path);
    out << kKeys;
  }
  absl::StatusOr<ApiKeys> keys = ApiKeys::Load(path);
  ASSERT_TRUE(keys.ok()) << keys.status();
  EXPECT_EQ(keys->size(), 3u);
  std::remove(path.c_str());
  absl::StatusOr<ApiKeys> missing = ApiKeys::Load(path);
  ASSERT_FALSE(missing.ok());
  EXPECT_THAT(missing.status().message(), HasSubstr(path));

  std::ofstream(path) << "alpha-key-0123456789 acme\n";
  absl::StatusOr<ApiKeys> bad = ApiKeys::Load(path);
  ASSERT_FALSE(bad.ok());
  EXPECT_THAT(bad.status().message(), HasSubstr(path + ":1:"));
  std::remove(path.c_str());
}

TEST(ConstantTimeEqualsTest, ComparesWholeStrings) {
  EXPECT_TRUE(ConstantTimeEquals("", ""));
  EXPECT_TRUE(ConstantTimeEquals("abc", "abc"));
  EXPECT_FALSE(ConstantTimeEquals("abc", "abd"));
  EXPECT_FALSE(ConstantTimeEquals("abc", "ab"));
  EXPECT_FALSE(ConstantTimeEquals("ab", "abc"));
  EXPECT_FALSE(ConstantTimeEquals("", "a"));
  EXPECT_FALSE(ConstantTimeEquals(std::string("a\0", 2), "a"));
}

}  // namespace
}  // namespace semshare::router
