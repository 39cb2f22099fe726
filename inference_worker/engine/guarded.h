#ifndef SEMSHARE_INFERENCE_WORKER_ENGINE_GUARDED_H_
#define SEMSHARE_INFERENCE_WORKER_ENGINE_GUARDED_H_

#include <c10/util/Exception.h>

#include <new>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace semshare {

// Runs `body` (returning absl::Status or absl::StatusOr<T>) and turns what ATen and the
// allocator throw into a status, so no exception leaves the engine: c10::Error is Internal
// ("<what> failed: ..."), std::bad_alloc ResourceExhausted.
template <typename Body>
auto Guarded(const char* what, Body&& body) -> decltype(body()) {
  try {
    return body();
  } catch (const c10::Error& e) {
    return absl::InternalError(absl::StrCat(what, " failed: ", e.what_without_backtrace()));
  } catch (const std::bad_alloc&) {
    return absl::ResourceExhaustedError(absl::StrCat(what, " failed: out of memory"));
  }
}

}  // namespace semshare

#endif  // SEMSHARE_INFERENCE_WORKER_ENGINE_GUARDED_H_
