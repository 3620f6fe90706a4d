// EMS_RETURN_IF_ERROR / EMS_ASSIGN_OR_RETURN: Abseil 20220623 ships neither.
#ifndef EMS_COMMON_STATUS_MACROS_H_
#define EMS_COMMON_STATUS_MACROS_H_

#include "absl/status/status.h"
#include "absl/status/statusor.h"

#define EMS_STATUS_CONCAT_INNER_(a, b) a##b
#define EMS_STATUS_CONCAT_(a, b) EMS_STATUS_CONCAT_INNER_(a, b)

// Returns from the enclosing function if `expr` (an absl::Status) is not OK.
#define EMS_RETURN_IF_ERROR(expr)                    \
  do {                                               \
    ::absl::Status ems_status_ = (expr);             \
    if (!ems_status_.ok()) return ems_status_;       \
  } while (0)

// EMS_ASSIGN_OR_RETURN(auto x, MakeX()); declares or assigns `lhs` from a StatusOr.
#define EMS_ASSIGN_OR_RETURN(lhs, rexpr) \
  EMS_ASSIGN_OR_RETURN_IMPL_(EMS_STATUS_CONCAT_(ems_statusor_, __LINE__), lhs, rexpr)

#define EMS_ASSIGN_OR_RETURN_IMPL_(statusor, lhs, rexpr) \
  auto statusor = (rexpr);                               \
  if (!statusor.ok()) return statusor.status();          \
  lhs = std::move(statusor).value()

#endif  // EMS_COMMON_STATUS_MACROS_H_
