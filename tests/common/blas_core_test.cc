#include "common/blas_core.h"

#include <gtest/gtest.h>

namespace semshare {
namespace {

TEST(BlasCoreOverrideTest, GenericKernelsOnAModernCpuAreReplaced) {
  // What Debian's OpenBLAS 0.3.21 chose on this project's AVX-512 Xeons.
  EXPECT_EQ(BlasCoreOverride("Prescott", /*has_avx512f=*/true, /*has_avx2=*/true), "SkylakeX");
  EXPECT_EQ(BlasCoreOverride("prescott", true, true), "SkylakeX");
  EXPECT_EQ(BlasCoreOverride("Nehalem", /*has_avx512f=*/false, /*has_avx2=*/true), "Haswell");
  EXPECT_EQ(BlasCoreOverride("Sandybridge", false, true), "Haswell");
  // An AVX2 core on an AVX-512 CPU is also below what the CPU can run.
  EXPECT_EQ(BlasCoreOverride("Haswell", true, true), "SkylakeX");
}

TEST(BlasCoreOverrideTest, AGoodChoiceOrAnOldCpuIsLeftAlone) {
  EXPECT_EQ(BlasCoreOverride("SkylakeX", true, true), "");
  EXPECT_EQ(BlasCoreOverride("Cooperlake", true, true), "");
  EXPECT_EQ(BlasCoreOverride("SapphireRapids", true, true), "");
  EXPECT_EQ(BlasCoreOverride("Haswell", false, true), "");
  EXPECT_EQ(BlasCoreOverride("Zen", false, true), "");
  // No AVX2: OpenBLAS's SSE kernels are the best there is.
  EXPECT_EQ(BlasCoreOverride("Prescott", false, false), "");
  // Not OpenBLAS at all.
  EXPECT_EQ(BlasCoreOverride("", true, true), "");
}

}  // namespace
}  // namespace semshare
