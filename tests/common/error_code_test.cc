#include "common/error_code.h"

#include <gtest/gtest.h>

namespace semshare {
namespace {

TEST(ErrorCodeTest, RidesOnTheStatusAndLeavesCodeAndMessageAlone) {
  const absl::Status plain = absl::InvalidArgumentError("the prompt has 9000 tokens");
  EXPECT_EQ(ErrorCode(plain), std::nullopt);
  const absl::Status coded = WithErrorCode(plain, kContextLengthExceeded);
  EXPECT_EQ(ErrorCode(coded), "context_length_exceeded");
  EXPECT_TRUE(absl::IsInvalidArgument(coded));
  EXPECT_EQ(coded.message(), plain.message());
  // Setting it again replaces it.
  EXPECT_EQ(ErrorCode(WithErrorCode(coded, "other")), "other");
}

TEST(ErrorCodeTest, AnOkStatusHasNone) {
  EXPECT_EQ(ErrorCode(WithErrorCode(absl::OkStatus(), kContextLengthExceeded)), std::nullopt);
}

}  // namespace
}  // namespace semshare
