#include "pool/internal/arena.h"

#include <linux/memfd.h>
#include <numa.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <string>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "spdlog/spdlog.h"

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23  // Linux 5.14; older headers lack it
#endif

namespace ems::pool::internal {
namespace {

// Allocates and maps every page of [base, base + bytes) now, where the NUMA policy and the
// huge-page advice already set put them, one kPrefaultStep at a time.
absl::Status Prefault(uint8_t* base, uint64_t bytes, const std::function<bool()>& keep_going) {
  bool populate = true;  // MADV_POPULATE_WRITE, until a kernel before 5.14 refuses it
  const uint64_t page = static_cast<uint64_t>(sysconf(_SC_PAGESIZE));
  for (uint64_t start = 0; start < bytes; start += kPrefaultStep) {
    if (keep_going && !keep_going()) {
      return absl::CancelledError(absl::StrCat("stopped while faulting in the arena, after ",
                                               start >> 20, " of ", bytes >> 20, " MiB"));
    }
    const uint64_t len = std::min(kPrefaultStep, bytes - start);
    if (populate && madvise(base + start, len, MADV_POPULATE_WRITE) == 0) continue;
    if (populate && errno != EINVAL) {  // EINVAL: a kernel before 5.14; else out of memory
      return absl::ResourceExhaustedError(
          absl::StrCat("cannot fault in an arena of ", bytes, " bytes: ", std::strerror(errno)));
    }
    populate = false;
    for (uint64_t off = start; off < start + len; off += page) {
      reinterpret_cast<volatile uint8_t*>(base)[off] = 0;
    }
  }
  return absl::OkStatus();
}

// First number in a file, or 0 when the file is absent or says "max".
uint64_t ReadNumber(const std::string& path) {
  std::ifstream in(path);
  std::string word;
  uint64_t v = 0;
  if (in >> word && absl::SimpleAtoi(word, &v)) return v;
  return 0;
}

uint64_t MemTotalBytes() {
  std::ifstream in("/proc/meminfo");
  std::string name;
  uint64_t kb;
  std::string unit;
  while (in >> name >> kb >> unit) {
    if (name == "MemTotal:") return kb * 1024;
  }
  return 0;
}

}  // namespace

uint64_t FreeHugepages(uint64_t page_mb) {
  return ReadNumber(
      absl::StrCat("/sys/kernel/mm/hugepages/hugepages-", page_mb * 1024, "kB/free_hugepages"));
}

uint64_t MemoryLimitBytes() {
  uint64_t limit = MemTotalBytes();
  for (const char* path :
       {"/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"}) {
    const uint64_t cg = ReadNumber(path);
    if (cg > 0 && (limit == 0 || cg < limit)) limit = cg;
  }
  return limit;
}

absl::StatusOr<std::unique_ptr<Arena>> Arena::Create(const ArenaOptions& options) {
  if (options.page_mb != 2 && options.page_mb != 1024) {
    return absl::InvalidArgumentError(
        absl::StrCat("huge_page_flavor must be 2 or 1024 (MB), got ", options.page_mb));
  }
  if (options.page_num == 0) return absl::InvalidArgumentError("huge_page_num must be > 0");
  const uint64_t page_bytes = options.page_mb << 20;
  if (options.page_num > (UINT64_MAX >> 1) / page_bytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("huge_page_num ", options.page_num, " overflows the arena size"));
  }
  const uint64_t bytes = options.page_num * page_bytes;
  const uint64_t limit = MemoryLimitBytes();
  if (limit > 0 && bytes > limit) {
    return absl::ResourceExhaustedError(
        absl::StrCat("arena of ", options.page_num, " x ", options.page_mb, " MB = ", bytes >> 20,
                     " MiB exceeds what this machine or cgroup can hold (", limit >> 20, " MiB)"));
  }
  if (options.numa_node >= 0) {
    if (numa_available() < 0) {
      return absl::FailedPreconditionError("numa_node given but NUMA is not available here");
    }
    if (options.numa_node > numa_max_node()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "numa_node ", options.numa_node, " does not exist (max ", numa_max_node(), ")"));
    }
  }

  const bool hugetlb = FreeHugepages(options.page_mb) >= options.page_num;
  if (!hugetlb && options.require_hugepages) {
    return absl::FailedPreconditionError(
        absl::StrCat("require_hugepages: ", options.page_num, " free ", options.page_mb,
                     " MB hugepages needed, ", FreeHugepages(options.page_mb),
                     " free (reserve them with vm.nr_hugepages)"));
  }
  unsigned flags = MFD_CLOEXEC;
  if (hugetlb) flags |= MFD_HUGETLB | (options.page_mb == 2 ? MFD_HUGE_2MB : MFD_HUGE_1GB);
  int fd = memfd_create("ems-arena", flags);
  if (fd < 0) {
    return absl::InternalError(absl::StrCat("memfd_create: ", std::strerror(errno)));
  }
  if (ftruncate(fd, static_cast<off_t>(bytes)) != 0) {
    absl::Status s = absl::ResourceExhaustedError(
        absl::StrCat("cannot size the arena to ", bytes, " bytes: ", std::strerror(errno)));
    close(fd);
    return s;
  }
  // Hugetlb pages are reserved here; every page is faulted in only below, after the huge-page
  // advice and the NUMA binding, which do not move pages already there (with MAP_POPULATE
  // the arena stayed on the node the process started on, whatever --numa_node said).
  void* base = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (base == MAP_FAILED) {
    absl::Status s = absl::ResourceExhaustedError(
        absl::StrCat("cannot map an arena of ", bytes, " bytes: ", std::strerror(errno)));
    close(fd);
    return s;
  }
  if (!hugetlb) {
    // THP gives 2 MB pages where the kernel allows (shmem_enabled); without prefault, pages
    // fill in as blocks are written.
    madvise(base, bytes, MADV_HUGEPAGE);
    spdlog::warn(
        "arena: {} free {} MB hugepages needed, {} reserved; falling back to transparent huge "
        "pages (hugepages=false)",
        options.page_num, options.page_mb, FreeHugepages(options.page_mb));
  }
  if (options.numa_node >= 0) numa_tonode_memory(base, bytes, options.numa_node);
  if (options.prefault) {
    if (absl::Status s = Prefault(static_cast<uint8_t*>(base), bytes, options.keep_going);
        !s.ok()) {
      munmap(base, bytes);
      close(fd);
      return s;
    }
  }
  spdlog::info("arena: {} MiB on {}", bytes >> 20, hugetlb ? "hugetlb pages" : "THP");
  return std::unique_ptr<Arena>(new Arena(fd, static_cast<uint8_t*>(base), bytes, hugetlb));
}

Arena::~Arena() {
  munmap(base_, size_);
  close(fd_);
}

}  // namespace ems::pool::internal
