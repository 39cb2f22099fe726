#ifndef SEMSHARE_COMMON_BLAS_CORE_H_
#define SEMSHARE_COMMON_BLAS_CORE_H_

#include <string>

#include "absl/strings/string_view.h"

// OpenBLAS picks its kernels ("core") from the CPU's model number when it loads. Debian 12's
// OpenBLAS (0.3.21) does not know newer Xeons and falls back to its generic SSE3 "Prescott"
// kernels, which made every libtorch matmul (and FAISS's) about 6x slower on an AVX-512 machine
// (a 5,120-token prefill of bench-100m: 50 s instead of 8 s). OpenBLAS reads its choice of core
// only from the environment (OPENBLAS_CORETYPE) and only as it loads, before main runs, so the
// fix is to run the program again with that variable set.
namespace semshare {

// The OPENBLAS_CORETYPE to ask for, or "" to leave OpenBLAS's choice alone. `core` is
// OpenBLAS's own choice (openblas_get_corename(), any case). A CPU with AVX-512F (usable by the
// OS) gets "SkylakeX" unless OpenBLAS already chose an AVX-512 core (SkylakeX, Cooperlake,
// SapphireRapids); one with AVX2 gets "Haswell" unless OpenBLAS chose an AVX2 or AVX-512 core
// (Haswell, Zen, or those). Anything else: "".
std::string BlasCoreOverride(absl::string_view core, bool has_avx512f, bool has_avx2);

// OpenBLAS's core in this process ("" when the BLAS in use is not OpenBLAS).
std::string BlasCoreName();

// BlasCoreOverride for this process's core and this CPU's features ("" off x86).
std::string BlasCoreOverrideForThisCpu();

// Set (to "1") in the environment of a program EnsureBlasKernelsMatchCpu restarted.
inline constexpr char kBlasRestartedVariable[] = "SEMSHARE_BLAS_RESTARTED";

// Called first in main by every program that computes with libtorch or FAISS. When
// OPENBLAS_CORETYPE is unset and BlasCoreOverrideForThisCpu says OpenBLAS chose slower kernels
// than this CPU can run, re-executes the program (/proc/self/exe, same arguments) with
// OPENBLAS_CORETYPE set (and kBlasRestartedVariable); the variable being set then stops a second
// restart. Does nothing otherwise, or if the restart fails. Setting OPENBLAS_CORETYPE yourself
// always wins.
void EnsureBlasKernelsMatchCpu(char** argv);

}  // namespace semshare

#endif  // SEMSHARE_COMMON_BLAS_CORE_H_
