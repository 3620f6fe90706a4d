#include "common/mutex_checks.h"

#include "absl/synchronization/mutex.h"

namespace ems {

void DisableMutexDeadlockDetection() {
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
}

}  // namespace ems
