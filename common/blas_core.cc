#include "common/blas_core.h"

#include <dlfcn.h>
#include <unistd.h>

#include <cstdlib>
#include <initializer_list>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/string_view.h"

namespace semshare {
namespace {

bool IsOneOf(absl::string_view core, std::initializer_list<absl::string_view> names) {
  for (absl::string_view name : names) {
    if (absl::EqualsIgnoreCase(core, name)) return true;
  }
  return false;
}

}  // namespace

std::string BlasCoreOverride(absl::string_view core, bool has_avx512f, bool has_avx2) {
  if (core.empty()) return "";  // not OpenBLAS
  if (IsOneOf(core, {"SkylakeX", "Cooperlake", "SapphireRapids"})) return "";
  if (has_avx512f) return "SkylakeX";
  if (IsOneOf(core, {"Haswell", "Zen"})) return "";
  if (has_avx2) return "Haswell";
  return "";
}

std::string BlasCoreName() {
  // Looked up, not linked: the BLAS behind libblas.so.3 is chosen by Debian's alternatives and
  // may not be OpenBLAS.
  using CoreNameFn = char* (*)();
  auto* core_name = reinterpret_cast<CoreNameFn>(dlsym(RTLD_DEFAULT, "openblas_get_corename"));
  if (core_name == nullptr) return "";
  const char* name = core_name();
  return name == nullptr ? "" : name;
}

std::string BlasCoreOverrideForThisCpu() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_cpu_init();
  // GCC's checks include the OS's support (XCR0), as OpenBLAS's own do.
  return BlasCoreOverride(BlasCoreName(), __builtin_cpu_supports("avx512f"),
                          __builtin_cpu_supports("avx2"));
#else
  return "";  // OpenBLAS's fallback problem above is an x86 one
#endif
}

void EnsureBlasKernelsMatchCpu(char** argv) {
  if (std::getenv("OPENBLAS_CORETYPE") != nullptr) return;
  const std::string wanted = BlasCoreOverrideForThisCpu();
  if (wanted.empty()) return;
  if (setenv("OPENBLAS_CORETYPE", wanted.c_str(), /*overwrite=*/1) != 0) return;
  setenv(kBlasRestartedVariable, "1", /*overwrite=*/1);
  execv("/proc/self/exe", argv);
  // Only reached if the restart failed: go on with the slower kernels (the environment
  // variable now set affects nothing already loaded).
}

}  // namespace semshare
