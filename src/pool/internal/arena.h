// The pool's memory: one shared mapping of a memfd, on hugetlb pages when reserved.
#ifndef EMS_POOL_INTERNAL_ARENA_H_
#define EMS_POOL_INTERNAL_ARENA_H_

#include <cstdint>
#include <functional>
#include <memory>

#include "absl/status/statusor.h"
#include "pool/internal/arena_plan.h"

namespace ems::pool::internal {

struct ArenaOptions {
  uint64_t page_num = 0;
  uint64_t page_mb = 2;  // 2 or 1024
  int numa_node = -1;
  bool require_hugepages = false;
  bool prefault = false;
  // Asked before each kPrefaultStep of the prefault; false stops it and Create returns
  // CANCELLED. Empty: never stop.
  std::function<bool()> keep_going;
};

// The prefault runs in steps this large, so a start-up that should stop (a node sent SIGTERM
// while it zeroes hundreds of GiB) does so within one step, not after the whole arena.
inline constexpr uint64_t kPrefaultStep = 256ull << 20;

// Owns the memfd and its mapping. Immutable after Create; thread-safe.
class Arena {
 public:
  // Prefers a hugetlb memfd; otherwise a shmem memfd with MADV_HUGEPAGE (THP) and a warning,
  // also when the kernel refuses hugetlb pages the facts said were there. PlanArena says how
  // the size is checked on each path. RESOURCE_EXHAUSTED if it fits neither;
  // FAILED_PRECONDITION if hugepages are required but cannot back it; INVALID_ARGUMENT for a
  // bad page size, count or NUMA node.
  static absl::StatusOr<std::unique_ptr<Arena>> Create(const ArenaOptions& options);
  // As above, deciding on `facts` instead of what this machine says (PlanArena); the kernel
  // still has the last word on whether the pages exist.
  static absl::StatusOr<std::unique_ptr<Arena>> Create(const ArenaOptions& options,
                                                       const ArenaFacts& facts);
  ~Arena();
  Arena(const Arena&) = delete;
  Arena& operator=(const Arena&) = delete;

  int fd() const { return fd_; }
  uint8_t* base() const { return base_; }
  uint64_t size() const { return size_; }
  bool hugepages() const { return hugepages_; }

 private:
  Arena(int fd, uint8_t* base, uint64_t size, bool hugepages)
      : fd_(fd), base_(base), size_(size), hugepages_(hugepages) {}

  const int fd_;
  uint8_t* const base_;
  const uint64_t size_;
  const bool hugepages_;
};

}  // namespace ems::pool::internal

#endif  // EMS_POOL_INTERNAL_ARENA_H_
