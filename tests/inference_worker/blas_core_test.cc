#include "common/blas_core.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <string>

namespace semshare {
namespace {

// This binary links libtorch, so OpenBLAS (when it is the BLAS) is loaded, and its main
// (tests/test_main.cc) ran EnsureBlasKernelsMatchCpu: the kernels must now suit this CPU.
TEST(BlasCoreTest, OpenBlasRunsKernelsThisCpuCanRun) {
  const std::string core = BlasCoreName();
  if (core.empty()) GTEST_SKIP() << "the BLAS in use is not OpenBLAS";
  if (std::getenv("OPENBLAS_CORETYPE") != nullptr &&
      std::getenv(kBlasRestartedVariable) == nullptr) {
    GTEST_SKIP() << "OPENBLAS_CORETYPE was set by the caller, who chose " << core;
  }
  EXPECT_EQ(BlasCoreOverrideForThisCpu(), "") << "OpenBLAS runs its " << core << " kernels";
}

}  // namespace
}  // namespace semshare
