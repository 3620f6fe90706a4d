#include "pool/eviction_policy.h"

#include "absl/container/flat_hash_set.h"
#include "gtest/gtest.h"
#include "pool/internal/id_table.h"
#include "pool/internal/prefix_policy.h"

namespace ems::pool {
namespace {

auto Any = [](uint64_t) { return true; };

std::unique_ptr<EvictionPolicy> Make(const char* name) {
  auto p = MakeEvictionPolicy(name);
  EXPECT_TRUE(p.ok()) << p.status();
  return *std::move(p);
}

TEST(EvictionPolicyTest, FactoryNamesPolicies) {
  EXPECT_EQ(Make("lru")->name(), "lru");
  EXPECT_EQ(Make("s3fifo")->name(), "s3fifo");
  auto bad = MakeEvictionPolicy("random");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("random"), std::string::npos);
}

TEST(EvictionPolicyTest, LruEvictsLeastRecentlyUsed) {
  auto p = Make("lru");
  for (uint64_t id = 1; id <= 4; ++id) p->OnInsert(id, 0);
  p->OnAccess(1);  // order, most recent first: 1 4 3 2
  EXPECT_EQ(p->Evict(Any), 2u);
  EXPECT_EQ(p->Evict(Any), 3u);
  p->OnErase(4);
  EXPECT_EQ(p->Evict(Any), 1u);
  EXPECT_EQ(p->Evict(Any), std::nullopt);
  EXPECT_EQ(p->size(), 0u);
}

TEST(EvictionPolicyTest, PinnedBlocksAreSkippedAndEverythingPinnedIsNotALoop) {
  for (const char* name : {"lru", "s3fifo", "prefix"}) {
    SCOPED_TRACE(name);
    auto p = Make(name);
    for (uint64_t id = 1; id <= 100; ++id) p->OnInsert(id, 0);
    EXPECT_EQ(p->Evict([](uint64_t) { return false; }), std::nullopt);
    EXPECT_EQ(p->size(), 100u) << "skipped blocks stay tracked";
    auto v = p->Evict([](uint64_t id) { return id == 57; });
    EXPECT_EQ(v, 57u);
    EXPECT_EQ(p->size(), 99u);
  }
}

TEST(EvictionPolicyTest, S3FifoEvictsOneHitWondersBeforeReusedBlocks) {
  auto p = Make("s3fifo");
  // 1..10 are read twice while in probation; 11..100 once (inserted only).
  for (uint64_t id = 1; id <= 10; ++id) p->OnInsert(id, 0);
  for (uint64_t id = 1; id <= 10; ++id) {
    p->OnAccess(id);
    p->OnAccess(id);
  }
  for (uint64_t id = 11; id <= 100; ++id) p->OnInsert(id, 0);
  // 80 evictions keep the small queue above its 10% share, so only probation is evicted.
  for (int i = 0; i < 80; ++i) {
    auto v = p->Evict(Any);
    ASSERT_TRUE(v.has_value());
    EXPECT_GT(*v, 10u) << "a reused block was evicted before a one-hit wonder";
  }
}

// Blocks in the main queue need up to four visits each (three to spend a frequency of 3, one
// to go), so a scan sized for two finds nothing when every block is hot, pinned or not.
TEST(EvictionPolicyTest, S3FifoFindsAVictimWhenEveryBlockIsHot) {
  auto p = Make("s3fifo");
  for (uint64_t id = 1; id <= 20; ++id) p->OnInsert(id, 0);
  for (uint64_t id = 1; id <= 20; ++id) {
    p->OnAccess(id);
    p->OnAccess(id);
  }
  // Promotes all 20 to the main queue with no frequency, then evicts the oldest.
  EXPECT_EQ(p->Evict(Any), 1u);
  for (uint64_t id = 2; id <= 20; ++id) {
    for (int i = 0; i < 3; ++i) p->OnAccess(id);
  }
  const std::optional<uint64_t> v = p->Evict(Any);
  ASSERT_TRUE(v.has_value()) << "nothing evicted from 19 unpinned blocks";
  EXPECT_GE(*v, 2u);
  EXPECT_LE(*v, 20u);
  EXPECT_EQ(p->size(), 18u);
}

TEST(EvictionPolicyTest, S3FifoGhostHitGoesStraightToMain) {
  auto p = Make("s3fifo");
  for (uint64_t id = 1; id <= 20; ++id) p->OnInsert(id, 0);
  EXPECT_EQ(p->Evict(Any), 1u);  // FIFO from the small queue, remembered as a ghost
  p->OnInsert(1, 0);             // wanted again: main queue
  for (uint64_t id = 21; id <= 40; ++id) p->OnInsert(id, 0);
  // Everything in the small queue goes before the block that came back.
  for (int i = 0; i < 30; ++i) EXPECT_NE(p->Evict(Any), 1u);
}

}  // namespace
}  // namespace ems::pool

namespace ems::pool {
namespace {

TEST(EvictionPolicyTest, PrefixEvictsLeavesBeforeTheirAncestors) {
  auto p = *MakeEvictionPolicy("prefix");
  // Chain 1 → 2 → 3 inserted in order (the root is the oldest), and an unrelated block 10.
  p->OnInsert(1, 0);
  p->OnInsert(2, 1);
  p->OnInsert(3, 2);
  p->OnInsert(10, 0);
  p->OnAccess(10);
  // LRU would take 1 first and orphan 2 and 3; prefix takes the chain from its tail.
  EXPECT_EQ(p->Evict(Any), 3u);
  EXPECT_EQ(p->Evict(Any), 2u);
  EXPECT_EQ(p->Evict(Any), 1u);
  EXPECT_EQ(p->Evict(Any), 10u);
  EXPECT_EQ(p->Evict(Any), std::nullopt);
}

TEST(EvictionPolicyTest, PrefixKeepsASharedRootWhileItHasChildren) {
  auto p = *MakeEvictionPolicy("prefix");
  p->OnInsert(1, 0);  // a shared system prompt
  for (uint64_t c = 2; c <= 5; ++c) p->OnInsert(c, 1);
  for (int i = 0; i < 4; ++i) EXPECT_NE(p->Evict(Any), 1u);
  EXPECT_EQ(p->Evict(Any), 1u) << "a leaf once its children are gone";
  // Pinned leaves fall back to any evictable block.
  p->OnInsert(7, 0);
  p->OnInsert(8, 7);
  EXPECT_EQ(p->Evict([](uint64_t id) { return id == 7; }), 7u);
}

// Leaves Evict passes over (pinned) keep their place: once they can go, they go first.
TEST(EvictionPolicyTest, PrefixLeavesPassedOverKeepTheirPlace) {
  auto p = *MakeEvictionPolicy("prefix");
  for (uint64_t id = 1; id <= 8; ++id) p->OnInsert(id, 0);
  EXPECT_EQ(p->Evict([](uint64_t id) { return id > 3; }), 4u);
  for (uint64_t want : {1u, 2u, 3u, 5u, 6u, 7u, 8u}) EXPECT_EQ(p->Evict(Any), want);
  EXPECT_EQ(p->Evict(Any), std::nullopt);
}

// A parent removed by its owner and stored again is another block: the old one's children
// do not count against the new one's. Before, they were matched by id, so evicting an old
// child made the new parent a leaf while its own child was still cached, and it went first.
TEST(EvictionPolicyTest, PrefixChildrenOfARemovedParentAreNotTheNewOnes) {
  auto p = *MakeEvictionPolicy("prefix");
  p->OnInsert(1, 0);
  p->OnInsert(2, 1);
  p->OnErase(1);  // removed by its owner while 2 is cached
  p->OnInsert(1, 0);
  p->OnInsert(3, 1);
  EXPECT_EQ(p->Evict([](uint64_t id) { return id == 2; }), 2u);
  EXPECT_EQ(p->Evict(Any), 3u) << "1 still has a cached child";
  EXPECT_EQ(p->Evict(Any), 1u);
}

TEST(EvictionPolicyTest, PrefixGhostHitReadmitsABlockAheadOfNewOnes) {
  auto p = *MakeEvictionPolicy("prefix");
  for (uint64_t id = 1; id <= 4; ++id) p->OnInsert(id, 0);
  EXPECT_EQ(p->Evict(Any), 1u);  // the oldest of four cold blocks
  p->OnInsert(1, 0);             // wanted again soon: its prefix is reused
  p->OnInsert(5, 0);
  p->OnInsert(6, 0);
  // Without the ghost, 1 would rank as a new cold block between 4 and 5.
  for (uint64_t want : {2u, 3u, 4u, 5u, 6u}) EXPECT_EQ(p->Evict(Any), want);
  EXPECT_EQ(p->Evict(Any), 1u);
}

TEST(EvictionPolicyTest, PrefixGhostListIsBounded) {
  auto p = *MakeEvictionPolicy("prefix");
  // At most two blocks tracked at once, so at most four ghosts: 1 is forgotten after
  // five newer evictions and comes back as new as the blocks around it.
  p->OnInsert(1, 0);
  p->OnInsert(2, 0);
  EXPECT_EQ(p->Evict(Any), 1u);
  for (uint64_t id = 3; id <= 7; ++id) {
    p->OnInsert(id, 0);
    EXPECT_EQ(p->Evict(Any), id - 1);
  }
  p->OnInsert(1, 0);
  p->OnInsert(8, 0);
  EXPECT_EQ(p->Evict(Any), 7u);
  EXPECT_EQ(p->Evict(Any), 1u) << "a forgotten ghost is not readmitted ahead";
  EXPECT_EQ(p->Evict(Any), 8u);
}

// A block that came back and was evicted again is remembered from its latest eviction, however
// often it cycled: its older places in the ghost list neither forget it early nor count
// against the bound. 10 cycles leave the old places in the list; 300 make the list drop them.
TEST(EvictionPolicyTest, PrefixGhostCountsFromTheLatestEviction) {
  for (int cycles : {10, 300}) {
    SCOPED_TRACE(cycles);
    auto p = *MakeEvictionPolicy("prefix");
    auto only = [](uint64_t want) { return [want](uint64_t id) { return id == want; }; };
    for (uint64_t id = 100; id <= 103; ++id) p->OnInsert(id, 0);  // stay tracked throughout
    p->OnInsert(1, 0);
    p->OnInsert(2, 0);  // six tracked at most: twelve ghosts
    EXPECT_EQ(p->Evict(only(1)), 1u);
    p->OnInsert(1, 0);  // back from the ghost list: its first place there is stale
    EXPECT_EQ(p->Evict(only(2)), 2u);
    for (int cycle = 0; cycle < cycles; ++cycle) {  // out again, and back
      EXPECT_EQ(p->Evict(only(1)), 1u);
      p->OnInsert(1, 0);
    }
    EXPECT_EQ(p->Evict(only(1)), 1u);
    // Ghosts, oldest first: 2, 1, then 3..13. Thirteen: 2 is forgotten, 1 is not.
    for (uint64_t id = 3; id <= 13; ++id) {
      p->OnInsert(id, 0);
      EXPECT_EQ(p->Evict(only(id)), id);
    }
    p->OnInsert(1, 0);
    p->OnInsert(2, 0);
    p->OnInsert(50, 0);
    auto new_ones = [](uint64_t id) { return id < 100; };
    EXPECT_EQ(p->Evict(new_ones), 2u) << "2 is as new as 50, and older";
    EXPECT_EQ(p->Evict(new_ones), 50u);
    EXPECT_EQ(p->Evict(new_ones), 1u) << "1 came back from the ghost list";
  }
}

// The duel: starting with leaf-first LRU while one-shot blocks keep pushing out a recurring
// set, the policy switches to the tuning that evicts cold blocks first once that tuning's
// shadow has scored more prefix hits over a window, and from then on keeps the set.
TEST(EvictionPolicyTest, PrefixDuelSwitchesToTheTuningWhoseShadowHitsMore) {
  internal::PrefixPolicy p({{.cold = 0, .hit = 0}, {.cold = 1, .hit = 0}});
  constexpr size_t kCapacity = 8;
  absl::flat_hash_set<uint64_t> present;
  uint64_t one_shot = 100;
  auto use = [&](uint64_t id) {
    const bool hit = present.contains(id);
    if (hit) {
      p.OnAccess(id);
    } else {
      p.OnInsert(id, 0);
      present.insert(id);
    }
    while (p.size() > kCapacity) {
      const std::optional<uint64_t> victim = p.Evict(Any);
      if (!victim) break;
      present.erase(*victim);
      p.OnErase(*victim);  // an id Evict already let go of is ignored, by the shadows too
    }
    return hit;
  };
  int early_hits = 0, late_hits = 0;
  for (int round = 0; round < 1000; ++round) {
    if (round == 50) {
      EXPECT_EQ(p.tuning(), 0u) << "600 uses: the first window is not over";
    }
    for (uint64_t id = 1; id <= 4; ++id) {
      const bool hit = use(id);
      if (round < 50) early_hits += hit;
      if (round >= 900) late_hits += hit;
    }
    for (int i = 0; i < 8; ++i) use(one_shot++);
  }
  EXPECT_EQ(p.tuning(), 1u);
  EXPECT_EQ(early_hits, 0) << "under LRU eight one-shot blocks push the set out every round";
  EXPECT_EQ(late_hits, 400) << "cold blocks first: the set is hit every round";
  EXPECT_EQ(p.size(), kCapacity);
}

// The prefix policy and its shadows share one table of ids: an id stays found while any of
// them holds it, and its slot is given to another id only after the last one let it go.
TEST(EvictionPolicyTest, IdTableKeepsAnIdUntilItsLastHolderReleasesIt) {
  internal::IdTable t;
  const internal::IdTable::Slot a = t.Acquire(7);
  EXPECT_EQ(t.Acquire(7), a) << "a second holder gets the same slot";
  EXPECT_EQ(t.Find(7), a);
  t.Release(a, 7);
  EXPECT_EQ(t.Find(7), a) << "one holder left";
  const internal::IdTable::Slot b = t.Acquire(8);
  EXPECT_NE(b, a);
  t.Release(a, 7);
  EXPECT_EQ(t.Find(7), internal::IdTable::kNone);
  EXPECT_EQ(t.Acquire(9), a) << "the freed slot is reused";
  EXPECT_EQ(t.Find(8), b);
  EXPECT_EQ(t.capacity(), 2u);
}

}  // namespace
}  // namespace ems::pool
