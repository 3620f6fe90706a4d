#include "pool/internal/arena_plan.h"

#include <fstream>
#include <sstream>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace ems::pool::internal {
namespace {

std::string Path(const std::string& root, const std::string& rel) {
  return absl::StrCat(root, !root.empty() && root.back() == '/' ? "" : "/", rel);
}

// First number in a file, or 0 when the file is absent or says "max".
uint64_t ReadNumber(const std::string& path) {
  std::ifstream in(path);
  std::string word;
  uint64_t v = 0;
  if (in >> word && absl::SimpleAtoi(word, &v)) return v;
  return 0;
}

uint64_t MemTotalBytes(const std::string& root) {
  std::ifstream in(Path(root, "proc/meminfo"));
  std::string name;
  uint64_t kb;
  std::string unit;
  while (in >> name >> kb >> unit) {
    if (name == "MemTotal:") return kb * 1024;
  }
  return 0;
}

}  // namespace

ArenaFacts ReadArenaFacts(uint64_t page_mb, const std::string& root) {
  ArenaFacts f;
  const std::string dir =
      Path(root, absl::StrCat("sys/kernel/mm/hugepages/hugepages-", page_mb * 1024, "kB/"));
  f.free_hugepages = ReadNumber(dir + "free_hugepages");
  f.resv_hugepages = ReadNumber(dir + "resv_hugepages");
  f.memory_limit_bytes = MemTotalBytes(root);
  for (const char* rel :
       {"sys/fs/cgroup/memory.max", "sys/fs/cgroup/memory/memory.limit_in_bytes"}) {
    const uint64_t cg = ReadNumber(Path(root, rel));
    if (cg > 0 && (f.memory_limit_bytes == 0 || cg < f.memory_limit_bytes)) {
      f.memory_limit_bytes = cg;
    }
  }
  // Kubernetes sets these to the pod's hugepages-<size> limit. Sizes are named as the kernel's
  // hugetlb controller names them: 2MB, 1GB.
  const std::string size = page_mb == 1024 ? "1GB" : absl::StrCat(page_mb, "MB");
  for (const std::string& rel :
       {absl::StrCat("sys/fs/cgroup/hugetlb.", size, ".max"),
        absl::StrCat("sys/fs/cgroup/hugetlb/hugetlb.", size, ".limit_in_bytes")}) {
    const uint64_t cg = ReadNumber(Path(root, rel));
    if (cg > 0 && (f.hugetlb_limit_bytes == 0 || cg < f.hugetlb_limit_bytes)) {
      f.hugetlb_limit_bytes = cg;
    }
  }
  // A mount option of the whole cgroup2 hierarchy (Linux 6.6+, off by default), so every
  // cgroup2 line of mounts shows it.
  std::ifstream mounts(Path(root, "proc/self/mounts"));
  std::string line;
  while (std::getline(mounts, line)) {
    std::istringstream fields(line);
    std::string device, dir, type, opts;
    if (!(fields >> device >> dir >> type >> opts) || type != "cgroup2") continue;
    for (const std::string& opt : std::vector<std::string>(absl::StrSplit(opts, ','))) {
      if (opt == "memory_hugetlb_accounting") f.hugetlb_charged_to_memory = true;
    }
  }
  return f;
}

absl::Status CheckFitsInMemory(uint64_t page_num, uint64_t page_mb, const ArenaFacts& facts) {
  const uint64_t bytes = page_num * (page_mb << 20);
  const uint64_t limit = facts.memory_limit_bytes;
  if (limit > 0 && bytes > limit) {
    return absl::ResourceExhaustedError(
        absl::StrCat("arena of ", page_num, " x ", page_mb, " MB = ", bytes >> 20,
                     " MiB on ordinary pages exceeds what this machine or cgroup can hold (",
                     limit >> 20, " MiB)"));
  }
  return absl::OkStatus();
}

absl::StatusOr<ArenaPlan> PlanArena(uint64_t page_num, uint64_t page_mb, bool require_hugepages,
                                    const ArenaFacts& facts) {
  if (page_mb != 2 && page_mb != 1024) {
    return absl::InvalidArgumentError(
        absl::StrCat("huge_page_flavor must be 2 or 1024 (MB), got ", page_mb));
  }
  if (page_num == 0) return absl::InvalidArgumentError("huge_page_num must be > 0");
  const uint64_t page_bytes = page_mb << 20;
  if (page_num > (UINT64_MAX >> 1) / page_bytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("huge_page_num ", page_num, " overflows the arena size"));
  }
  ArenaPlan plan;
  plan.bytes = page_num * page_bytes;

  // Hugetlb pages are charged to the hugetlb cgroup, not to memory.max (unless cgroup2 has
  // memory_hugetlb_accounting), and come from a pool set aside beforehand that MemTotal already
  // counts, so the pool's unclaimed pages and the hugetlb limit bound them. free_hugepages
  // includes pages other mappings have reserved but not yet touched; an mmap that counts on
  // those fails with ENOMEM.
  const uint64_t available =
      facts.free_hugepages > facts.resv_hugepages ? facts.free_hugepages - facts.resv_hugepages : 0;
  std::string hint;
  if (available < page_num) {
    plan.why_not_hugetlb = absl::StrCat(page_num, " ", page_mb, " MB hugepages needed, ", available,
                                        " available (", facts.free_hugepages, " free, ",
                                        facts.resv_hugepages, " reserved by other mappings)");
    hint = " (reserve them with vm.nr_hugepages)";
  } else if (facts.hugetlb_limit_bytes > 0 && plan.bytes > facts.hugetlb_limit_bytes) {
    plan.why_not_hugetlb = absl::StrCat(plan.bytes >> 20, " MiB of ", page_mb,
                                        " MB hugepages exceeds the hugetlb cgroup limit (",
                                        facts.hugetlb_limit_bytes >> 20, " MiB)");
  } else if (facts.hugetlb_charged_to_memory && facts.memory_limit_bytes > 0 &&
             plan.bytes > facts.memory_limit_bytes) {
    plan.why_not_hugetlb = absl::StrCat(
        plan.bytes >> 20, " MiB of hugepages exceeds the memory limit they are charged to (",
        facts.memory_limit_bytes >> 20, " MiB, cgroup2 memory_hugetlb_accounting)");
  } else {
    plan.hugetlb = true;
    return plan;
  }
  if (require_hugepages) {
    return absl::FailedPreconditionError(
        absl::StrCat("require_hugepages: ", plan.why_not_hugetlb, hint));
  }
  if (absl::Status s = CheckFitsInMemory(page_num, page_mb, facts); !s.ok()) {
    return absl::Status(
        s.code(),
        absl::StrCat(s.message(), "; hugetlb pages do not fit either: ", plan.why_not_hugetlb));
  }
  return plan;
}

}  // namespace ems::pool::internal
