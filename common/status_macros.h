#ifndef SEMSHARE_COMMON_STATUS_MACROS_H_
#define SEMSHARE_COMMON_STATUS_MACROS_H_

#include "absl/status/status.h"
#include "absl/status/statusor.h"

// Early-return helpers for absl::Status / absl::StatusOr, the project's one error model.
#define SEMSHARE_RETURN_IF_ERROR(expr)                   \
  do {                                                   \
    ::absl::Status semshare_status_ = (expr);            \
    if (!semshare_status_.ok()) return semshare_status_; \
  } while (0)

#define SEMSHARE_CONCAT_INNER_(a, b) a##b
#define SEMSHARE_CONCAT_(a, b) SEMSHARE_CONCAT_INNER_(a, b)

#define SEMSHARE_ASSIGN_OR_RETURN(lhs, expr) \
  SEMSHARE_ASSIGN_OR_RETURN_IMPL_(SEMSHARE_CONCAT_(semshare_statusor_, __LINE__), lhs, expr)

#define SEMSHARE_ASSIGN_OR_RETURN_IMPL_(statusor, lhs, expr) \
  auto statusor = (expr);                                    \
  if (!statusor.ok()) return std::move(statusor).status();   \
  lhs = std::move(statusor).value()

#endif  // SEMSHARE_COMMON_STATUS_MACROS_H_
