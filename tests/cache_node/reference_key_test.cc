#include "cache_node/reference_key.h"

#include "gtest/gtest.h"

namespace semshare::cache_node {
namespace {

TEST(ReferenceKeyTest, RoundTrips) {
  const ReferenceScope scope{"tenant", "model"};
  absl::StatusOr<DecodedReferenceKey> decoded = DecodeReferenceKey(ReferenceKey(scope, "id"));
  ASSERT_TRUE(decoded.ok());
  EXPECT_EQ(decoded->scope.tenant, "tenant");
  EXPECT_EQ(decoded->scope.model_fingerprint, "model");
  EXPECT_EQ(decoded->reference_id, "id");
  const std::string long_id(300, 'x');  // a multi-byte length
  decoded = DecodeReferenceKey(ReferenceKey(scope, long_id));
  ASSERT_TRUE(decoded.ok());
  EXPECT_EQ(decoded->reference_id, long_id);
}

TEST(ReferenceKeyTest, NoScopeIsAPrefixOfAnother) {
  const std::string a = ScopePrefix({"ab", "c"});
  for (const ReferenceScope& other : {ReferenceScope{"a", "bc"}, ReferenceScope{"abc", ""},
                                      ReferenceScope{"ab", "cd"}, ReferenceScope{"a", "b"}}) {
    const std::string b = ScopePrefix(other);
    EXPECT_NE(a.compare(0, b.size(), b), 0) << other.tenant << "/" << other.model_fingerprint;
    EXPECT_NE(b.compare(0, a.size(), a), 0) << other.tenant << "/" << other.model_fingerprint;
  }
  // An id cannot be chosen to land inside another reference's keys.
  const std::string r = ReferenceKey({"t", "m"}, "x");
  const std::string forged = ReferenceKey({"t", "m"}, std::string("x") + '\0');
  EXPECT_NE(forged.compare(0, r.size(), r), 0);
}

TEST(ReferenceKeyTest, KvKeysSortByLayerAndStayUnderTheReference) {
  const std::string r = ReferenceKey({"t", "m"}, "x");
  EXPECT_LT(KvKey(r, 1, KvPart::kValue), KvKey(r, 2, KvPart::kKey));
  EXPECT_LT(KvKey(r, 255, KvPart::kValue), KvKey(r, 256, KvPart::kKey));
  EXPECT_EQ(KvKey(r, 3, KvPart::kKey).compare(0, r.size(), r), 0);
  EXPECT_EQ(TokenIdsKey(r).compare(0, r.size(), r), 0);
  EXPECT_FALSE(DecodeReferenceKey(KvKey(r, 0, KvPart::kKey)).ok());
  EXPECT_FALSE(DecodeReferenceKey("\x05"
                                  "ab")
                   .ok());
}

}  // namespace
}  // namespace semshare::cache_node
