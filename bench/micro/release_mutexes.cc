// Linked into every micro benchmark: they measure what the binaries run, which turn off
// absl::Mutex's deadlock detector at start (common/mutex_checks.h).
#include "common/mutex_checks.h"

namespace {
const bool kReleased = (ems::DisableMutexDeadlockDetection(), true);
}  // namespace
