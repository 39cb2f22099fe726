// main for every test binary: gmock's, after making sure OpenBLAS runs the kernels this CPU
// can (common/blas_core.h), so the libtorch and FAISS tests do not run 6x slower on CPUs
// Debian's OpenBLAS does not know.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "common/blas_core.h"

int main(int argc, char** argv) {
  semshare::EnsureBlasKernelsMatchCpu(argv);
  testing::InitGoogleMock(&argc, argv);
  return RUN_ALL_TESTS();
}
