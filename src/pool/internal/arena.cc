#include "pool/internal/arena.h"

#include <linux/memfd.h>
#include <numa.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <string>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
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

struct Mapping {
  int fd = -1;
  uint8_t* base = nullptr;
};

// A memfd of `bytes` on hugetlb or shmem pages, mapped, bound and (if asked) faulted in.
absl::StatusOr<Mapping> MapArena(uint64_t bytes, bool hugetlb, const ArenaOptions& options) {
  unsigned flags = MFD_CLOEXEC;
  if (hugetlb) flags |= MFD_HUGETLB | (options.page_mb == 2 ? MFD_HUGE_2MB : MFD_HUGE_1GB);
  const char* kind = hugetlb ? "hugetlb pages" : "ordinary pages";
  int fd = memfd_create("ems-arena", flags);
  if (fd < 0) {
    return absl::InternalError(absl::StrCat("memfd_create for ", kind, ": ", std::strerror(errno)));
  }
  if (ftruncate(fd, static_cast<off_t>(bytes)) != 0) {
    absl::Status s = absl::ResourceExhaustedError(absl::StrCat(
        "cannot size the arena to ", bytes, " bytes on ", kind, ": ", std::strerror(errno)));
    close(fd);
    return s;
  }
  // Hugetlb pages are reserved here; every page is faulted in only below, after the huge-page
  // advice and the NUMA binding, which do not move pages already there (with MAP_POPULATE
  // the arena stayed on the node the process started on, whatever --numa_node said).
  void* base = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (base == MAP_FAILED) {
    absl::Status s = absl::ResourceExhaustedError(absl::StrCat(
        "cannot map an arena of ", bytes, " bytes on ", kind, ": ", std::strerror(errno)));
    close(fd);
    return s;
  }
  // THP gives 2 MB pages where the kernel allows (shmem_enabled); without prefault, pages
  // fill in as blocks are written.
  if (!hugetlb) madvise(base, bytes, MADV_HUGEPAGE);
  if (options.numa_node >= 0) numa_tonode_memory(base, bytes, options.numa_node);
  if (options.prefault) {
    if (absl::Status s = Prefault(static_cast<uint8_t*>(base), bytes, options.keep_going);
        !s.ok()) {
      munmap(base, bytes);
      close(fd);
      return s;
    }
  }
  return Mapping{fd, static_cast<uint8_t*>(base)};
}

}  // namespace

absl::StatusOr<std::unique_ptr<Arena>> Arena::Create(const ArenaOptions& options) {
  return Create(options, ReadArenaFacts(options.page_mb));
}

absl::StatusOr<std::unique_ptr<Arena>> Arena::Create(const ArenaOptions& options,
                                                     const ArenaFacts& facts) {
  EMS_ASSIGN_OR_RETURN(const ArenaPlan plan, PlanArena(options.page_num, options.page_mb,
                                                       options.require_hugepages, facts));
  if (options.numa_node >= 0) {
    if (numa_available() < 0) {
      return absl::FailedPreconditionError("numa_node given but NUMA is not available here");
    }
    if (options.numa_node > numa_max_node()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "numa_node ", options.numa_node, " does not exist (max ", numa_max_node(), ")"));
    }
  }
  if (!plan.hugetlb) {
    spdlog::warn("arena: {}; falling back to transparent huge pages (hugepages=false)",
                 plan.why_not_hugetlb);
  }
  bool hugetlb = plan.hugetlb;
  absl::StatusOr<Mapping> m = MapArena(plan.bytes, hugetlb, options);
  // The facts are a snapshot: another process can take hugepages between the read and the
  // mmap, and the kernel can refuse for reasons they do not show. Without require_hugepages
  // that is the same case as too few free pages, so it gets the same fallback.
  if (!m.ok() && hugetlb && !options.require_hugepages && !absl::IsCancelled(m.status())) {
    if (absl::Status s = CheckFitsInMemory(options.page_num, options.page_mb, facts); !s.ok()) {
      return absl::Status(
          s.code(), absl::StrCat(s.message(), "; hugetlb pages failed: ", m.status().message()));
    }
    spdlog::warn("arena: {}; falling back to transparent huge pages (hugepages=false)",
                 m.status().ToString());
    hugetlb = false;
    m = MapArena(plan.bytes, hugetlb, options);
  }
  if (!m.ok()) return m.status();
  spdlog::info("arena: {} MiB on {}", plan.bytes >> 20, hugetlb ? "hugetlb pages" : "THP");
  return std::unique_ptr<Arena>(new Arena(m->fd, m->base, plan.bytes, hugetlb));
}

Arena::~Arena() {
  munmap(base_, size_);
  close(fd_);
}

}  // namespace ems::pool::internal
