#include "pool/internal/arena_plan.h"

#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include "absl/strings/match.h"
#include "gtest/gtest.h"
#include "pool/internal/arena.h"

namespace ems::pool::internal {
namespace {

constexpr uint64_t kMiB = 1ull << 20;
constexpr uint64_t kGiB = 1ull << 30;

// A made-up /proc and /sys under a temporary directory, removed at the end of the test.
class FakeRoot {
 public:
  FakeRoot() {
    std::string tmpl = (std::filesystem::temp_directory_path() / "ems-arena-XXXXXX").string();
    root_ = mkdtemp(tmpl.data());
  }
  ~FakeRoot() { std::filesystem::remove_all(root_); }
  void Write(const std::string& rel, const std::string& text) {
    const std::filesystem::path p = std::filesystem::path(root_) / rel;
    std::filesystem::create_directories(p.parent_path());
    std::ofstream(p) << text;
  }
  const std::string& root() const { return root_; }

 private:
  std::string root_;
};

constexpr char kHp2M[] = "sys/kernel/mm/hugepages/hugepages-2048kB/";

TEST(ArenaFactsTest, ReadsCgroupV2Files) {
  FakeRoot t;
  t.Write("proc/meminfo", "MemTotal:       67108864 kB\nMemFree:        1000 kB\n");
  t.Write(std::string(kHp2M) + "free_hugepages", "300\n");
  t.Write(std::string(kHp2M) + "resv_hugepages", "44\n");
  t.Write("sys/fs/cgroup/memory.max", "17179869184\n");
  t.Write("sys/fs/cgroup/hugetlb.2MB.max", "536870912\n");
  t.Write("proc/self/mounts", "cgroup2 /sys/fs/cgroup cgroup2 rw,nosuid,nsdelegate 0 0\n");
  const ArenaFacts f = ReadArenaFacts(2, t.root());
  EXPECT_EQ(f.free_hugepages, 300u);
  EXPECT_EQ(f.resv_hugepages, 44u);
  EXPECT_EQ(f.memory_limit_bytes, 16 * kGiB);
  EXPECT_EQ(f.hugetlb_limit_bytes, 512 * kMiB);
  EXPECT_FALSE(f.hugetlb_charged_to_memory);
}

TEST(ArenaFactsTest, ReadsCgroupV1FilesAnd1GPages) {
  FakeRoot t;
  t.Write("proc/meminfo", "MemTotal:       8388608 kB\n");
  t.Write("sys/kernel/mm/hugepages/hugepages-1048576kB/free_hugepages", "4\n");
  t.Write("sys/fs/cgroup/memory/memory.limit_in_bytes", "9223372036854771712\n");  // unlimited
  t.Write("sys/fs/cgroup/hugetlb/hugetlb.1GB.limit_in_bytes", "3221225472\n");
  t.Write("sys/fs/cgroup/hugetlb/hugetlb.2MB.limit_in_bytes", "2097152\n");  // other size
  const ArenaFacts f = ReadArenaFacts(1024, t.root() + "/");
  EXPECT_EQ(f.free_hugepages, 4u);
  EXPECT_EQ(f.resv_hugepages, 0u) << "absent file";
  EXPECT_EQ(f.memory_limit_bytes, 8 * kGiB) << "MemTotal is below v1's 'unlimited'";
  EXPECT_EQ(f.hugetlb_limit_bytes, 3 * kGiB);
  EXPECT_FALSE(f.hugetlb_charged_to_memory) << "no mounts file";
}

TEST(ArenaFactsTest, MaxMeansNoLimitAndTheAccountingMountOptionIsSeen) {
  FakeRoot t;
  t.Write("proc/meminfo", "MemTotal:       1048576 kB\n");
  t.Write("sys/fs/cgroup/memory.max", "max\n");
  t.Write("sys/fs/cgroup/hugetlb.2MB.max", "max\n");
  t.Write("proc/self/mounts",
          "proc /proc proc rw 0 0\n"
          "cgroup2 /sys/fs/cgroup cgroup2 rw,nsdelegate,memory_hugetlb_accounting 0 0\n");
  const ArenaFacts f = ReadArenaFacts(2, t.root());
  EXPECT_EQ(f.memory_limit_bytes, kGiB);
  EXPECT_EQ(f.hugetlb_limit_bytes, 0u);
  EXPECT_TRUE(f.hugetlb_charged_to_memory);
}

TEST(ArenaPlanTest, RejectsBadSizes) {
  EXPECT_EQ(PlanArena(1, 4, false, {}).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(PlanArena(0, 2, false, {}).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(PlanArena(1ull << 60, 1024, false, {}).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(ArenaPlanTest, TakesHugetlbWhenEnoughPagesAreFree) {
  auto p = PlanArena(8, 2, true, {.free_hugepages = 8, .memory_limit_bytes = kGiB});
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_TRUE(p->hugetlb);
  EXPECT_EQ(p->bytes, 16 * kMiB);
}

TEST(ArenaPlanTest, RefusesAThpArenaAboveTheMemoryLimitWithTheNumbers) {
  auto p = PlanArena(1024, 2, false, {.memory_limit_bytes = kGiB});
  ASSERT_EQ(p.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_TRUE(absl::StrContains(p.status().message(), "2048 MiB")) << p.status();
  EXPECT_TRUE(absl::StrContains(p.status().message(), "exceeds")) << p.status();
  EXPECT_TRUE(absl::StrContains(p.status().message(), "(1024 MiB)")) << p.status();
}

TEST(ArenaPlanTest, RequireHugepagesWithNoneFreeFailsWithTheCount) {
  auto p = PlanArena(8, 2, true, {.memory_limit_bytes = kGiB});
  ASSERT_EQ(p.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_TRUE(absl::StrContains(p.status().message(), "vm.nr_hugepages")) << p.status();
}

// The prod overlay: memory 16Gi, hugepages-2Mi 256Gi, a 256 GiB arena. Hugetlb pages are not
// charged to memory.max, so the memory limit does not bound them.
TEST(ArenaPlanTest, AHugetlbArenaAboveMemoryMaxIsNotRefused) {
  const ArenaFacts prod{
      .free_hugepages = 131072, .memory_limit_bytes = 16 * kGiB, .hugetlb_limit_bytes = 256 * kGiB};
  auto p = PlanArena(131072, 2, true, prod);
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_TRUE(p->hugetlb);
  EXPECT_EQ(p->bytes, 256 * kGiB);
}

// free_hugepages counts pages other mappings have reserved but not yet faulted in.
TEST(ArenaPlanTest, PagesReservedByOthersAreNotAvailable) {
  const ArenaFacts f{.free_hugepages = 10, .resv_hugepages = 4, .memory_limit_bytes = kGiB};
  auto p = PlanArena(8, 2, false, f);
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_FALSE(p->hugetlb) << "10 free - 4 reserved = 6 < 8";
  EXPECT_TRUE(absl::StrContains(p->why_not_hugetlb, "6 available")) << p->why_not_hugetlb;
  auto six = PlanArena(6, 2, false, f);
  ASSERT_TRUE(six.ok()) << six.status();
  EXPECT_TRUE(six->hugetlb);
}

TEST(ArenaPlanTest, RequireHugepagesCountsPagesReservedByOthers) {
  auto p = PlanArena(8, 2, true,
                     {.free_hugepages = 10, .resv_hugepages = 4, .memory_limit_bytes = kGiB});
  ASSERT_EQ(p.status().code(), absl::StatusCode::kFailedPrecondition);
  for (const char* part : {"8 ", "6 available", "10 free", "4 reserved"}) {
    EXPECT_TRUE(absl::StrContains(p.status().message(), part)) << part << ": " << p.status();
  }
}

// Above the hugetlb cgroup limit the kernel refuses pages when they are faulted in (a SIGBUS,
// on the data path with --prefault=false), not at mmap, so the plan must check it.
TEST(ArenaPlanTest, TheHugetlbCgroupLimitBoundsTheHugetlbPath) {
  const ArenaFacts f{
      .free_hugepages = 1000, .memory_limit_bytes = kGiB, .hugetlb_limit_bytes = 100 * kMiB};
  auto p = PlanArena(64, 2, false, f);
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_FALSE(p->hugetlb);
  EXPECT_TRUE(absl::StrContains(p->why_not_hugetlb, "100 MiB")) << p->why_not_hugetlb;
  auto required = PlanArena(64, 2, true, f);
  ASSERT_EQ(required.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_TRUE(absl::StrContains(required.status().message(), "hugetlb cgroup limit"))
      << required.status();
}

TEST(ArenaPlanTest, WithHugetlbAccountingTheMemoryLimitBoundsHugetlbToo) {
  const ArenaFacts f{
      .free_hugepages = 2048, .memory_limit_bytes = kGiB, .hugetlb_charged_to_memory = true};
  auto p = PlanArena(1024, 2, true, f);
  ASSERT_FALSE(p.ok());
  EXPECT_TRUE(absl::StrContains(p.status().message(), "1024 MiB")) << p.status();
  auto fits = PlanArena(256, 2, true, f);
  ASSERT_TRUE(fits.ok()) << fits.status();
  EXPECT_TRUE(fits->hugetlb);
}

TEST(ArenaPlanTest, ARefusalSaysWhyNeitherPathFits) {
  auto p = PlanArena(1024, 2, false,
                     {.free_hugepages = 10, .resv_hugepages = 4, .memory_limit_bytes = kGiB});
  ASSERT_EQ(p.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_TRUE(absl::StrContains(p.status().message(), "exceeds")) << p.status();
  EXPECT_TRUE(absl::StrContains(p.status().message(), "6 available")) << p.status();
}

// The facts promise hugepages this machine has not reserved: the hugetlb mapping fails in the
// kernel and Create must fall back to THP, as it does when the facts say so.
TEST(ArenaCreateTest, FallsBackToThpWhenTheKernelRefusesHugetlbPages) {
  const ArenaFacts real = ReadArenaFacts(2);
  if (real.free_hugepages > real.resv_hugepages) GTEST_SKIP() << "this machine has hugepages";
  ArenaFacts promised = real;
  promised.free_hugepages = 1 << 20;
  ArenaOptions o;
  o.page_num = 8;
  o.page_mb = 2;
  auto arena = Arena::Create(o, promised);
  ASSERT_TRUE(arena.ok()) << arena.status();
  EXPECT_FALSE((*arena)->hugepages());
  EXPECT_EQ((*arena)->size(), 16 * kMiB);
  (*arena)->base()[(*arena)->size() - 1] = 1;  // mapped and writable
}

TEST(ArenaCreateTest, RequireHugepagesDoesNotFallBackWhenTheKernelRefuses) {
  const ArenaFacts real = ReadArenaFacts(2);
  if (real.free_hugepages > real.resv_hugepages) GTEST_SKIP() << "this machine has hugepages";
  ArenaFacts promised = real;
  promised.free_hugepages = 1 << 20;
  ArenaOptions o;
  o.page_num = 8;
  o.page_mb = 2;
  o.require_hugepages = true;
  auto arena = Arena::Create(o, promised);
  EXPECT_FALSE(arena.ok());
}

}  // namespace
}  // namespace ems::pool::internal
