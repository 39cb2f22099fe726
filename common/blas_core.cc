#include "common/blas_core.h"

#include <dlfcn.h>
#include <unistd.h>

#include <cstdlib>
#include <initializer_list>
#include <string>
#include <string_view>

#include "absl/strings/ascii.h"

namespace semshare {
namespace {

bool IsOneOf(const std::string& core, std::initializer_list<std::string_view> names) {
  for (std::string_view name : names) {
    if (core == absl::AsciiStrToLower(std::string(name))) return true;
  }
  return false;
}

}  // namespace

std::string BlasCoreOverride(std::string_view detected, bool has_avx512f, bool has_avx2) {
  const std::string core = absl::AsciiStrToLower(std::string(detected));
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

void EnsureBlasKernelsMatchCpu(char** argv) {
#if defined(__x86_64__) || defined(__i386__)
  if (std::getenv("OPENBLAS_CORETYPE") != nullptr) return;
  __builtin_cpu_init();
  // GCC's checks include the OS's support (XCR0), as OpenBLAS's own do.
  const std::string wanted = BlasCoreOverride(BlasCoreName(), __builtin_cpu_supports("avx512f"),
                                              __builtin_cpu_supports("avx2"));
  if (wanted.empty()) return;
  if (setenv("OPENBLAS_CORETYPE", wanted.c_str(), /*overwrite=*/1) != 0) return;
  setenv(kBlasRestartedVariable, "1", /*overwrite=*/1);
  execv("/proc/self/exe", argv);
  // Only reached if the restart failed: go on with the slower kernels (the environment
  // variable now set affects nothing already loaded).
#else
  (void)argv;  // OpenBLAS's fallback problem above is an x86 one
#endif
}

}  // namespace semshare
