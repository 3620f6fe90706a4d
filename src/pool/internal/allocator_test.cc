#include "pool/internal/allocator.h"

#include <map>
#include <random>

#include "gtest/gtest.h"

namespace ems::pool::internal {
namespace {

constexpr uint64_t kG = 4096;

TEST(AllocatorTest, SplitsAndCoalescesBackToOneChunk) {
  Allocator a(64 * kG, kG);
  Chunk* x = a.Allocate(1);
  Chunk* y = a.Allocate(3 * kG);
  Chunk* z = a.Allocate(kG + 1);
  ASSERT_TRUE(x && y && z);
  EXPECT_EQ(x->size, kG);
  EXPECT_EQ(y->size, 3 * kG);
  EXPECT_EQ(z->size, 2 * kG);
  EXPECT_EQ(a.used_bytes(), 6 * kG);
  a.Free(y);
  a.Free(x);
  a.Free(z);
  EXPECT_EQ(a.used_bytes(), 0u);
  EXPECT_EQ(a.LargestFree(), 64 * kG) << "all neighbours merged again";
}

TEST(AllocatorTest, RefusesWhatCannotFit) {
  Allocator a(8 * kG, kG);
  EXPECT_EQ(a.Allocate(0), nullptr);
  EXPECT_EQ(a.Allocate(9 * kG), nullptr);
  Chunk* all = a.Allocate(8 * kG);
  ASSERT_NE(all, nullptr);
  EXPECT_EQ(a.Allocate(1), nullptr);
  a.Free(all);
  EXPECT_NE(a.Allocate(8 * kG), nullptr);
}

// Random alloc/free against a reference model: chunks never overlap, stay inside the arena,
// are granule aligned, and the free bytes always add up.
TEST(AllocatorTest, RandomChurnNeverOverlaps) {
  const uint64_t cap = 4096 * kG;  // 16 MiB
  Allocator a(cap, kG);
  std::mt19937_64 rng(1234);
  std::map<uint64_t, Chunk*> live;  // offset → chunk
  for (int step = 0; step < 100000; ++step) {
    if (live.empty() || rng() % 3 != 0) {
      const uint64_t sizes[] = {1, kG, 3 * kG + 5, 64 * kG, 257 * kG, 700 * kG};
      Chunk* c = a.Allocate(sizes[rng() % 6]);
      if (c == nullptr) continue;
      ASSERT_EQ(c->offset % kG, 0u);
      ASSERT_LE(c->offset + c->size, cap);
      auto next = live.lower_bound(c->offset);
      if (next != live.end()) {
        ASSERT_LE(c->offset + c->size, next->first);
      }
      if (next != live.begin()) {
        auto prev = std::prev(next);
        ASSERT_LE(prev->first + prev->second->size, c->offset);
      }
      live.emplace(c->offset, c);
    } else {
      auto it = live.begin();
      std::advance(it, rng() % live.size());
      a.Free(it->second);
      live.erase(it);
    }
    uint64_t used = 0;
    if (step % 1000 == 0) {
      for (auto& [off, c] : live) used += c->size;
      ASSERT_EQ(used, a.used_bytes());
    }
  }
  for (auto& [off, c] : live) a.Free(c);
  EXPECT_EQ(a.LargestFree(), cap);
}

TEST(AllocatorTest, GoodFitKeepsLargeRunsForLargeRequests) {
  Allocator a(1024 * kG, kG);
  // Many small chunks freed in a checkerboard leave small holes; a large request must still
  // be served from the untouched tail, not fail.
  std::vector<Chunk*> small;
  for (int i = 0; i < 256; ++i) small.push_back(a.Allocate(kG));
  for (int i = 0; i < 256; i += 2) a.Free(small[i]);
  EXPECT_NE(a.Allocate(512 * kG), nullptr);
  EXPECT_NE(a.Allocate(kG), nullptr) << "a hole is reused";
}

// Blocks of one size that is not a class boundary (65 granules: its class holds 64 and 65).
// The hole one of them leaves fits the next of that size exactly and must be found.
TEST(AllocatorTest, AHoleOfExactlyTheRequestedSizeIsReused) {
  Allocator a(1024 * kG, kG);
  std::vector<Chunk*> blocks;
  for (int i = 0; i < 15; ++i) {
    blocks.push_back(a.Allocate(65 * kG));
    ASSERT_NE(blocks.back(), nullptr);
  }
  // 975 granules used; the 49 left at the tail fit no block.
  a.Free(blocks[7]);
  EXPECT_EQ(a.free_bytes(), (49 + 65) * kG);
  Chunk* again = a.Allocate(65 * kG);
  ASSERT_NE(again, nullptr) << "the 65-granule hole was not found";
  EXPECT_EQ(again->offset, 7 * 65 * kG);
  EXPECT_EQ(again->size, 65 * kG);
  EXPECT_EQ(a.Allocate(64 * kG), nullptr) << "only the 49-granule tail is free now";
  EXPECT_NE(a.Allocate(49 * kG), nullptr);
}

}  // namespace
}  // namespace ems::pool::internal
