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
#if defined(__x86_64__) || defined(__i386__)
  __builtin_cpu_init();
  EXPECT_EQ(
      BlasCoreOverride(core, __builtin_cpu_supports("avx512f"), __builtin_cpu_supports("avx2")), "")
      << "OpenBLAS runs its " << core << " kernels";
#endif
}

}  // namespace
}  // namespace semshare
