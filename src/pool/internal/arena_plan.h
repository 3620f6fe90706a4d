// Where the arena's pages come from: hugetlb, THP, or a refusal, decided from what the machine
// says (free hugepages, memory limits) so that the decision can be tested on made-up numbers.
#ifndef EMS_POOL_INTERNAL_ARENA_PLAN_H_
#define EMS_POOL_INTERNAL_ARENA_PLAN_H_

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace ems::pool::internal {

// What this machine and cgroup offer an arena of one page size. 0 for a limit = none or unknown.
struct ArenaFacts {
  uint64_t free_hugepages = 0;
  uint64_t resv_hugepages = 0;
  uint64_t memory_limit_bytes = 0;         // min of MemTotal and memory.max / memory.limit_in_bytes
  uint64_t hugetlb_limit_bytes = 0;        // hugetlb.<size>.max / hugetlb.<size>.limit_in_bytes
  bool hugetlb_charged_to_memory = false;  // cgroup2 mounted with memory_hugetlb_accounting
};

// Reads ArenaFacts for `page_mb` (2 or 1024) MB pages from the files under `root` ("/" on a real
// machine; a test points it at a tree of its own). Files that are absent read as 0.
ArenaFacts ReadArenaFacts(uint64_t page_mb, const std::string& root = "/");

// The decision for an arena of `page_num` x `page_mb` MB.
struct ArenaPlan {
  uint64_t bytes = 0;
  bool hugetlb = false;
  std::string why_not_hugetlb;  // when !hugetlb: what the hugetlb path lacked, for the warning
};

// Hugetlb when the hugepages no other mapping has claimed (free - reserved) cover the arena and
// it fits the hugetlb cgroup limit; otherwise THP, which must fit the memory limit. The memory
// limit does not bound hugetlb pages: they are charged to the hugetlb controller, not to
// memory.max (unless cgroup2 is mounted with memory_hugetlb_accounting; then it bounds them
// too), and MemTotal already counts the hugepage pool.
// INVALID_ARGUMENT for a bad page size or count; FAILED_PRECONDITION if `require_hugepages`
// and hugetlb cannot back the arena; RESOURCE_EXHAUSTED if neither path can. Messages give the
// numbers.
absl::StatusOr<ArenaPlan> PlanArena(uint64_t page_num, uint64_t page_mb, bool require_hugepages,
                                    const ArenaFacts& facts);

// OK if an arena of `page_num` x `page_mb` MB on ordinary pages (THP) fits
// facts.memory_limit_bytes; RESOURCE_EXHAUSTED with the numbers if not.
// REQUIRES: the size is valid (PlanArena accepted it).
absl::Status CheckFitsInMemory(uint64_t page_num, uint64_t page_mb, const ArenaFacts& facts);

}  // namespace ems::pool::internal

#endif  // EMS_POOL_INTERNAL_ARENA_PLAN_H_
