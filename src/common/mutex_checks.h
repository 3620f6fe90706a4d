// Turns off absl::Mutex's deadlock detector for a process that serves traffic.
#ifndef EMS_COMMON_MUTEX_CHECKS_H_
#define EMS_COMMON_MUTEX_CHECKS_H_

namespace ems {

// Debian 12's Abseil (20220623) is built without NDEBUG, so absl::Mutex runs its deadlock
// detector on every Lock: it looks the mutex up in a process-wide graph under one global spin
// lock. That makes an uncontended lock 22 ns instead of 6, and it makes every lock of every
// thread take the same spin lock, so threads that share nothing still queue for each other
// (docs/pool.md has the figures). The binaries and the C and Python entry points call this
// once at start; the tests do not, and keep the detector finding lock-order cycles.
// Idempotent and thread-safe.
void DisableMutexDeadlockDetection();

}  // namespace ems

#endif  // EMS_COMMON_MUTEX_CHECKS_H_
