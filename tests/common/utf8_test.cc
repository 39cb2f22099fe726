#include "common/utf8.h"

#include <string>

#include "gtest/gtest.h"

namespace semshare {
namespace {

TEST(Utf8Test, FindInvalidUtf8PointsAtTheFirstBadByte) {
  constexpr size_t kValid = absl::string_view::npos;
  EXPECT_EQ(FindInvalidUtf8(""), kValid);
  EXPECT_EQ(FindInvalidUtf8("plain ASCII"), kValid);
  EXPECT_EQ(FindInvalidUtf8("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80"), kValid);
  EXPECT_EQ(FindInvalidUtf8("caf\xe9"), 3u);                   // Latin-1
  EXPECT_EQ(FindInvalidUtf8("ab\xc3"), 2u);                    // truncated at the end
  EXPECT_EQ(FindInvalidUtf8("\xc3\xa9\xc0\xaf"), 2u);          // overlong '/'
  EXPECT_EQ(FindInvalidUtf8("x\xed\xa0\x80"), 1u);             // a surrogate
  EXPECT_EQ(FindInvalidUtf8("\xf4\x90\x80\x80"), 0u);          // past U+10FFFF
  EXPECT_EQ(FindInvalidUtf8(std::string("a\0b", 3)), kValid);  // NUL is a character
}

}  // namespace
}  // namespace semshare
