#include "pool/pool.h"

#include <sys/mman.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <random>
#include <thread>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/prefix_hash.h"
#include "directory/directory.h"
#include "gtest/gtest.h"
#include "pool/internal/arena.h"
#include "pool/internal/lru_policy.h"
#include "pool/internal/pool_impl.h"

namespace ems::pool {
namespace {

constexpr uint64_t kMiB = 1 << 20;

BlockKey Key(uint64_t i, const std::string& ns = "test/ns") {
  Digest d;
  std::memcpy(d.bytes.data(), &i, sizeof(i));
  std::memcpy(d.bytes.data() + 8, &i, sizeof(i));
  return BlockKey{ns, d};
}

// Deterministic contents derived from the key index, so every read can be verified.
void Fill(uint8_t* p, uint64_t n, uint64_t seed) {
  uint64_t x = seed * 0x9e3779b97f4a7c15ull + 1;
  for (uint64_t i = 0; i < n; ++i) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    p[i] = static_cast<uint8_t>(x);
  }
}

bool Verify(const uint8_t* p, uint64_t n, uint64_t seed) {
  std::vector<uint8_t> want(n);
  Fill(want.data(), n, seed);
  return std::memcmp(p, want.data(), n) == 0;
}

class PoolTest : public ::testing::Test {
 protected:
  std::unique_ptr<Pool> MakePool(uint64_t pages = 16, const std::string& policy = "lru",
                                 bool directory = false) {
    PoolOptions o;
    o.publish_directory = directory;
    o.huge_page_num = pages;  // 2 MiB each
    o.eviction_policy = policy;
    o.clock = &clock_;
    o.max_value_bytes = 8 * kMiB;
    auto p = Pool::Create(o);
    EXPECT_TRUE(p.ok()) << p.status();
    return p.ok() ? *std::move(p) : nullptr;
  }

  absl::Status Put(Pool& pool, uint64_t i, uint64_t size, const BlockKey* parent = nullptr) {
    auto h = pool.Allocate(Key(i), size, parent);
    if (!h.ok()) return h.status();
    Fill(h->data(), size, i);
    return pool.Seal(*std::move(h));
  }

  FakeClock clock_;
};

TEST_F(PoolTest, PutGetRoundTripVerifiesEveryByte) {
  auto pool = MakePool();
  for (uint64_t i = 0; i < 20; ++i) ASSERT_TRUE(Put(*pool, i, 4096 + i * 1000).ok());
  for (uint64_t i = 0; i < 20; ++i) {
    auto h = pool->Get(Key(i));
    ASSERT_TRUE(h.ok()) << h.status();
    ASSERT_EQ(h->size(), 4096 + i * 1000);
    EXPECT_TRUE(Verify(h->data(), h->size(), i));
    EXPECT_EQ(h->info().checksum, Checksum(h->data(), h->size()));
    EXPECT_EQ(h->info().offset % 4096, 0u);
  }
  auto s = pool->Stats();
  EXPECT_EQ(s.keys, 20u);
  EXPECT_EQ(s.hits, 20u);
  EXPECT_EQ(s.pinned_blocks, 0u) << "handles released their pins";
  EXPECT_EQ(pool->Get(Key(99)).status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(pool->Stats().misses, 1u);
}

TEST_F(PoolTest, RePutSemantics) {
  auto pool = MakePool();
  ASSERT_TRUE(Put(*pool, 1, 10000).ok());
  auto same = pool->Allocate(Key(1), 10000);
  EXPECT_EQ(same.status().code(), absl::StatusCode::kAlreadyExists);
  EXPECT_TRUE(absl::StrContains(same.status().message(), "same size"));
  EXPECT_TRUE(StoredAlready(same.status()));
  EXPECT_FALSE(BeingWritten(same.status())) << "sealed: stored";
  auto other = pool->Allocate(Key(1), 20000);
  EXPECT_EQ(other.status().code(), absl::StatusCode::kAlreadyExists);
  EXPECT_TRUE(absl::StrContains(other.status().message(), "10000"));
  EXPECT_TRUE(absl::StrContains(other.status().message(), "20000"));
  // A key being written is taken too.
  auto w = pool->Allocate(Key(2), 5000);
  ASSERT_TRUE(w.ok());
  const absl::Status writing = pool->Allocate(Key(2), 5000).status();
  EXPECT_TRUE(StoredAlready(writing)) << writing;  // a cache's put is done
  EXPECT_TRUE(BeingWritten(writing)) << writing;   // but the block is not stored yet
  EXPECT_FALSE(pool->Contains(Key(2))) << "unsealed blocks are invisible";
  ASSERT_TRUE(pool->Seal(*std::move(w)).ok());
  EXPECT_FALSE(BeingWritten(pool->Allocate(Key(2), 5000).status()));
}

TEST_F(PoolTest, BadInputGetsInvalidArgument) {
  auto pool = MakePool(4);
  EXPECT_EQ(pool->Allocate(Key(1), 0).status().code(), absl::StatusCode::kInvalidArgument);
  auto big = pool->Allocate(Key(1), 9 * kMiB);
  EXPECT_EQ(big.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(absl::StrContains(big.status().message(), "maximum"));
  EXPECT_EQ(pool->Allocate(BlockKey{"", Key(1).digest}, 10).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_F(PoolTest, CreateRejectsBadOptions) {
  PoolOptions o;
  o.huge_page_num = 0;
  EXPECT_EQ(Pool::Create(o).status().code(), absl::StatusCode::kInvalidArgument);
  o.huge_page_num = 1;
  o.huge_page_flavor_mb = 4;
  EXPECT_EQ(Pool::Create(o).status().code(), absl::StatusCode::kInvalidArgument);
  o.huge_page_flavor_mb = 2;
  o.eviction_policy = "mru";
  EXPECT_EQ(Pool::Create(o).status().code(), absl::StatusCode::kInvalidArgument);
  o.eviction_policy = "lru";
  o.low_watermark = 0.99;
  EXPECT_EQ(Pool::Create(o).status().code(), absl::StatusCode::kInvalidArgument);
  o.low_watermark = 0.85;
  o.index_shards = 3;
  EXPECT_EQ(Pool::Create(o).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(PoolTest, RefusesAnArenaLargerThanTheMachine) {
  PoolOptions o;
  o.huge_page_num = 1ull << 30;  // 2 PiB
  auto p = Pool::Create(o);
  ASSERT_EQ(p.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_TRUE(absl::StrContains(p.status().message(), "exceeds"));
}

TEST_F(PoolTest, TakesHugetlbPagesWhenReservedAndFallsBackWhenNot) {
  const internal::ArenaFacts facts = internal::ReadArenaFacts(2);
  const uint64_t free_pages =
      facts.free_hugepages > facts.resv_hugepages ? facts.free_hugepages - facts.resv_hugepages : 0;
  if (free_pages > 0 && free_pages < 64) GTEST_SKIP() << "too few free hugepages to tell";
  auto pool = MakePool(8);
  ASSERT_TRUE(Put(*pool, 1, 3 * kMiB).ok());
  auto h = pool->Get(Key(1));
  ASSERT_TRUE(h.ok());
  EXPECT_TRUE(Verify(h->data(), h->size(), 1));
  EXPECT_EQ(pool->Stats().hugepages, free_pages >= 64)
      << free_pages << " free hugepages: hugetlb when there are, THP otherwise";
}

TEST_F(PoolTest, RequireHugepagesFailsClearlyWhenNoneAreReserved) {
  PoolOptions o;
  o.huge_page_num = 1ull << 20;  // more than any test machine reserves
  o.huge_page_flavor_mb = 2;
  o.require_hugepages = true;
  auto p = Pool::Create(o);
  EXPECT_FALSE(p.ok());
}

TEST_F(PoolTest, EvictsBetweenWatermarksAndKeepsServing) {
  auto pool = MakePool(16);  // 32 MiB
  // 3x the capacity in 1 MiB blocks.
  for (uint64_t i = 0; i < 96; ++i) ASSERT_TRUE(Put(*pool, i, kMiB).ok()) << i;
  auto s = pool->Stats();
  EXPECT_GT(s.evictions, 0u);
  EXPECT_LE(s.used_bytes, 32 * kMiB * 95 / 100);
  // The newest blocks survive under LRU and every surviving block is intact.
  for (uint64_t i = 90; i < 96; ++i) EXPECT_TRUE(pool->Contains(Key(i))) << i;
  uint64_t present = 0;
  for (uint64_t i = 0; i < 96; ++i) {
    auto h = pool->Get(Key(i));
    if (!h.ok()) continue;
    ++present;
    ASSERT_TRUE(Verify(h->data(), h->size(), i)) << "block " << i << " corrupted";
  }
  EXPECT_EQ(present, pool->Stats().keys);
}

TEST_F(PoolTest, APoolOfHotBlocksStillEvictsDownToTheLowWatermark) {
  PoolOptions o;
  o.huge_page_num = 2;  // 4 MiB: 1024 pages of 4 KiB
  o.eviction_policy = "s3fifo";
  o.high_watermark = 0.95;
  o.low_watermark = 0.93;
  o.clock = &clock_;
  auto created = Pool::Create(o);
  ASSERT_TRUE(created.ok()) << created.status();
  Pool& pool = **created;
  const uint64_t high = 4 * kMiB * 95 / 100, low = 4 * kMiB * 93 / 100;
  constexpr uint64_t kPage = 4096, kBlock = 50 * kPage;
  auto read = [&](uint64_t i) {
    auto h = pool.Get(Key(i));
    ASSERT_TRUE(h.ok()) << i << ": " << h.status();
    EXPECT_TRUE(Verify(h->data(), h->size(), i)) << i;
  };
  for (uint64_t i = 0; i < 19; ++i) ASSERT_TRUE(Put(pool, i, kBlock).ok());  // 950 pages
  for (uint64_t i = 0; i < 19; ++i) {
    read(i);
    read(i);
  }
  // Past the high watermark: S3-FIFO moves the blocks read twice to its main queue, all but
  // the last (its small queue keeps 10%), and evicts block 0; block 19 takes its place.
  ASSERT_TRUE(Put(pool, 19, kBlock).ok());
  ASSERT_EQ(pool.Stats().evictions, 1u);
  ASSERT_FALSE(pool.Contains(Key(0)));
  // Empty the small queue; make every block in the main queue hot.
  ASSERT_TRUE(pool.Remove(Key(18)).ok());
  ASSERT_TRUE(pool.Remove(Key(19)).ok());
  for (uint64_t i = 1; i < 18; ++i) {
    for (int n = 0; n < 3; ++n) read(i);
  }
  ASSERT_EQ(pool.Stats().used_bytes, 850 * kPage);
  // 124 pages fit in the 124 free at the end, and take the pool past its high watermark.
  ASSERT_TRUE(Put(pool, 100, 124 * kPage).ok());
  const PoolStats s = pool.Stats();
  EXPECT_LE(s.used_bytes, low) << "evicted " << s.evictions - 1 << " blocks; high watermark is "
                               << high;
  uint64_t present = 0;
  for (uint64_t i = 1; i < 18; ++i) {
    if (!pool.Contains(Key(i))) continue;
    ++present;
    read(i);
  }
  ASSERT_TRUE(pool.Contains(Key(100)));
  read(100);
  EXPECT_EQ(present + 1, s.keys);
}

TEST_F(PoolTest, TheKeyFeedTellsEverySealEvictionAndRemovalInOrder) {
  PoolOptions o;
  o.huge_page_num = 4;  // 8 MiB
  o.clock = &clock_;
  o.key_feed_events = 1024;
  auto pool = Pool::Create(o);
  ASSERT_TRUE(pool.ok()) << pool.status();
  ASSERT_NE((*pool)->key_feed(), nullptr);
  EXPECT_EQ(MakePool()->key_feed(), nullptr) << "no feed unless asked for";
  // A write that never seals is not a key; 12 sealed blocks of 1 MiB overflow 8 MiB.
  ASSERT_TRUE((*pool)->Allocate(Key(100), kMiB).ok());
  for (uint64_t i = 0; i < 12; ++i) ASSERT_TRUE(Put(**pool, i, kMiB).ok()) << i;
  ASSERT_TRUE((*pool)->Remove(Key(11)).ok());
  auto events = (*pool)->key_feed()->Read(0, 1024, absl::ZeroDuration());
  ASSERT_TRUE(events.ok()) << events.status();
  // Replaying the feed gives exactly the pool's keys.
  absl::flat_hash_set<BlockKey> replayed;
  uint64_t added = 0, gone = 0;
  for (const KeyFeed::Event& e : *events) {
    if (e.present) {
      EXPECT_TRUE(replayed.insert(e.key).second) << "added twice: " << e.key.ToString();
      ++added;
    } else {
      EXPECT_EQ(replayed.erase(e.key), 1u) << "removed before added: " << e.key.ToString();
      ++gone;
    }
  }
  EXPECT_EQ(added, 12u);
  EXPECT_EQ(gone, (*pool)->Stats().evictions + 1);
  const std::vector<BlockKey> keys = (*pool)->Keys(1000);
  EXPECT_EQ(replayed, absl::flat_hash_set<BlockKey>(keys.begin(), keys.end()));
  EXPECT_FALSE(replayed.contains(Key(11)));
  EXPECT_FALSE(replayed.contains(Key(100)));
}

TEST_F(PoolTest, OfferingAStoredBlockAgainTouchesIt) {
  auto pool = MakePool(16);  // 32 MiB: 30 blocks of 1 MiB fit under the 95% watermark
  for (uint64_t i = 0; i < 30; ++i) ASSERT_TRUE(Put(*pool, i, kMiB).ok()) << i;
  // Block 0 is the least recent; offering it again (as a writer that recomputed it would)
  // makes it the most recent, so the next evictions take 1, 2, ... instead.
  EXPECT_EQ(pool->Allocate(Key(0), kMiB).status().code(), absl::StatusCode::kAlreadyExists);
  for (uint64_t i = 30; i < 33; ++i) ASSERT_TRUE(Put(*pool, i, kMiB).ok()) << i;
  ASSERT_GT(pool->Stats().evictions, 0u);
  EXPECT_TRUE(pool->Contains(Key(0)));
  EXPECT_FALSE(pool->Contains(Key(1)));
}

TEST_F(PoolTest, PinnedBlocksAreNeverEvictedAndFullOfPinsIsResourceExhausted) {
  auto pool = MakePool(4);  // 8 MiB
  std::vector<ReadHandle> pins;
  for (uint64_t i = 0; i < 7; ++i) {
    ASSERT_TRUE(Put(*pool, i, kMiB).ok());
    auto h = pool->Get(Key(i));
    ASSERT_TRUE(h.ok());
    pins.push_back(*std::move(h));
  }
  auto full = pool->Allocate(Key(100), 2 * kMiB);
  EXPECT_EQ(full.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_TRUE(absl::StrContains(full.status().message(), "pins"));
  for (uint64_t i = 0; i < 7; ++i) {
    EXPECT_TRUE(Verify(pins[i].data(), pins[i].size(), i)) << "a pinned block changed";
  }
  pins.clear();
  EXPECT_TRUE(Put(*pool, 100, 2 * kMiB).ok()) << "unpinned blocks are evictable again";
}

// LRU, plus a reader that pins each victim the moment the policy has chosen it, before the
// pool's final check under the shard lock (a Get racing the eviction), and lets go before the
// next pick. So the pool's check always finds the victim pinned, and the victim is picked
// again. After `limit` picks the reader stops.
class ReaderRacingEvictions : public EvictionPolicy {
 public:
  explicit ReaderRacingEvictions(int limit) : limit_(limit) {}
  absl::string_view name() const override { return "lru"; }
  void OnInsert(uint64_t id, uint64_t parent) override { lru_.OnInsert(id, parent); }
  void OnAccess(uint64_t id) override { lru_.OnAccess(id); }
  void OnErase(uint64_t id) override { lru_.OnErase(id); }
  size_t size() const override { return lru_.size(); }
  std::optional<uint64_t> Evict(absl::FunctionRef<bool(uint64_t)> can_evict) override {
    pin_ = ReadHandle();  // last pick's reader is done
    std::optional<uint64_t> victim = lru_.Evict(can_evict);
    if (victim && picks_++ < limit_) {
      auto pin = pool_->Pin(key_);  // Pin takes no space_mu_: safe under the eviction
      EXPECT_TRUE(pin.ok()) << pin.status();
      if (pin.ok()) pin_ = *std::move(pin);
    }
    return victim;
  }

  Pool* pool_ = nullptr;
  BlockKey key_;  // the only block in the pool, so every victim
  ReadHandle pin_;
  int picks_ = 0;

 private:
  const int limit_;
  internal::LruPolicy lru_;
};

TEST_F(PoolTest, EvictionsThatAReaderKeepsBeatingAreBounded) {
  constexpr int kReaderPicks = 10000;
  PoolOptions o;
  o.huge_page_num = 2;  // 4 MiB
  o.clock = &clock_;
  auto arena = internal::Arena::Create(internal::ArenaOptions{.page_num = 2});
  ASSERT_TRUE(arena.ok()) << arena.status();
  auto owned = std::make_unique<ReaderRacingEvictions>(kReaderPicks);
  ReaderRacingEvictions* policy = owned.get();
  std::unique_ptr<Pool> pool = std::make_unique<internal::PoolImpl>(
      o, *std::move(arena), std::move(owned), /*directory=*/nullptr);
  policy->pool_ = pool.get();
  policy->key_ = Key(1);
  ASSERT_TRUE(Put(*pool, 1, kMiB).ok());
  // Needs the whole arena: only evicting block 1 makes room, and every attempt loses the race.
  auto big = pool->Allocate(Key(2), 4 * kMiB);
  const int picks = policy->picks_;
  // Bounded: one pick per tracked block plus a few (pool_impl.cc), per loop, not without end.
  EXPECT_LE(picks, 2 * (1 + 16) + 2) << "the eviction loop kept picking the pinned block";
  EXPECT_EQ(big.status().code(), absl::StatusCode::kResourceExhausted) << big.status();
  policy->pin_ = ReadHandle();
  auto h = pool->Get(Key(1));
  ASSERT_TRUE(h.ok()) << "the block was raced, not evicted: " << h.status();
  EXPECT_TRUE(Verify(h->data(), h->size(), 1));
  EXPECT_EQ(pool->Stats().evictions, 0u);
}

// A cache of equal-size blocks whose size is not an allocator class boundary (65 pages of
// 4 KiB): the hole a removed or evicted block leaves fits the next block of that size exactly.
class ExactHoleTest : public PoolTest {
 protected:
  static constexpr uint64_t kBlock = 65 * 4096;
  static constexpr uint64_t kBlocks = 15;  // 975 of the arena's 1024 pages; 49 left at the end

  void SetUp() override {
    PoolOptions o;
    o.huge_page_num = 2;     // 4 MiB
    o.high_watermark = 1.0;  // no eviction ahead of need: only what a put cannot fit
    o.low_watermark = 1.0;
    o.clock = &clock_;
    auto p = Pool::Create(o);
    ASSERT_TRUE(p.ok()) << p.status();
    pool_ = *std::move(p);
    for (uint64_t i = 0; i < kBlocks; ++i) ASSERT_TRUE(Put(*pool_, i, kBlock).ok());
    ASSERT_EQ(pool_->Stats().used_bytes, kBlocks * kBlock);
  }

  std::unique_ptr<Pool> pool_;
};

TEST_F(ExactHoleTest, APutThatFitsTheHoleOfARemovedBlockEvictsNothing) {
  ASSERT_TRUE(pool_->Remove(Key(7)).ok());
  ASSERT_TRUE(Put(*pool_, 100, kBlock).ok());
  const PoolStats s = pool_->Stats();
  EXPECT_EQ(s.evictions, 0u) << "blocks evicted although the removed block's hole fits";
  EXPECT_EQ(s.keys, kBlocks);
  EXPECT_EQ(s.used_bytes, kBlocks * kBlock);
  for (uint64_t i : {0, 1, 2, 3, 4, 5, 6, 8, 9, 10, 11, 12, 13, 14, 100}) {
    auto h = pool_->Get(Key(i));
    ASSERT_TRUE(h.ok()) << "key " << i << ": " << h.status();
    EXPECT_TRUE(Verify(h->data(), h->size(), i)) << "key " << i;
  }
}

TEST_F(ExactHoleTest, APoolOfPinsStillFillsTheHoleOfARemovedBlock) {
  std::vector<ReadHandle> pins;
  for (uint64_t i = 0; i < kBlocks; ++i) {
    if (i == 7) continue;
    auto h = pool_->Get(Key(i));
    ASSERT_TRUE(h.ok());
    pins.push_back(*std::move(h));
  }
  ASSERT_TRUE(pool_->Remove(Key(7)).ok());
  absl::Status put = Put(*pool_, 100, kBlock);
  EXPECT_TRUE(put.ok()) << put;
  auto h = pool_->Get(Key(100));
  ASSERT_TRUE(h.ok()) << h.status();
  EXPECT_TRUE(Verify(h->data(), h->size(), 100));
  EXPECT_EQ(h->info().offset, 7 * kBlock) << "the new block is in the removed one's hole";
  for (const ReadHandle& pin : pins) {
    EXPECT_TRUE(Verify(pin.data(), pin.size(), pin.info().offset / kBlock)) << "a pin changed";
  }
  EXPECT_EQ(pool_->Stats().evictions, 0u);
}

TEST_F(PoolTest, RemoveWhilePinnedHidesNowAndFreesAtUnpin) {
  auto pool = MakePool();
  ASSERT_TRUE(Put(*pool, 1, kMiB).ok());
  const uint64_t used = pool->Stats().used_bytes;
  {
    auto h = pool->Get(Key(1));
    ASSERT_TRUE(h.ok());
    ASSERT_TRUE(pool->Remove(Key(1)).ok());
    EXPECT_FALSE(pool->Contains(Key(1)));
    EXPECT_EQ(pool->Stats().used_bytes, used) << "still pinned";
    EXPECT_TRUE(Verify(h->data(), h->size(), 1));
  }
  EXPECT_EQ(pool->Stats().used_bytes, 0u);
  EXPECT_EQ(pool->Remove(Key(1)).code(), absl::StatusCode::kNotFound);
}

TEST_F(PoolTest, DroppedWriteHandleFreesItsBlock) {
  auto pool = MakePool();
  { auto h = pool->Allocate(Key(1), kMiB); }
  auto s = pool->Stats();
  EXPECT_EQ(s.used_bytes, 0u);
  EXPECT_EQ(s.unsealed_blocks, 0u);
  EXPECT_TRUE(Put(*pool, 1, kMiB).ok()) << "the key is free again";
}

TEST_F(PoolTest, ExpiredLeasesReturnMemoryToBaseline) {
  auto pool = MakePool();
  ASSERT_TRUE(Put(*pool, 1, kMiB).ok());
  const uint64_t baseline = pool->Stats().used_bytes;
  auto w = pool->AcquireWrite(Key(2), 3 * kMiB, nullptr, absl::Seconds(5));
  ASSERT_TRUE(w.ok());
  auto r = pool->AcquireRead(Key(1), absl::Seconds(5));
  ASSERT_TRUE(r.ok());
  ASSERT_TRUE(pool->Remove(Key(1)).ok());  // pinned by the read lease
  EXPECT_EQ(pool->ExpireLeases(), 0u);
  clock_.Advance(absl::Seconds(6));
  EXPECT_EQ(pool->ExpireLeases(), 2u);
  auto s = pool->Stats();
  EXPECT_EQ(s.used_bytes, 0u) << "baseline was " << baseline << " before the leases";
  EXPECT_EQ(s.reclaimed_writes, 1u);
  EXPECT_EQ(s.pinned_blocks, 0u);
  EXPECT_EQ(pool->SealLease(w->first, 0).code(), absl::StatusCode::kNotFound);
}

TEST_F(PoolTest, SealVerifiesTheWritersChecksum) {
  auto pool = MakePool();
  auto w = pool->AcquireWrite(Key(1), 8192, nullptr, absl::Seconds(5));
  ASSERT_TRUE(w.ok());
  uint8_t* p = pool->arena_base() + w->second.offset;
  Fill(p, 8192, 1);
  const uint64_t good = Checksum(p, 8192);
  EXPECT_EQ(pool->SealLease(w->first, good ^ 1).code(), absl::StatusCode::kDataLoss);
  EXPECT_FALSE(pool->Contains(Key(1)));
  EXPECT_EQ(pool->Stats().used_bytes, 0u);
  w = pool->AcquireWrite(Key(1), 8192, nullptr, absl::Seconds(5));
  ASSERT_TRUE(w.ok());
  Fill(pool->arena_base() + w->second.offset, 8192, 1);
  EXPECT_TRUE(pool->SealLease(w->first, good).ok());
  EXPECT_TRUE(pool->Contains(Key(1)));
}

TEST_F(PoolTest, ABlankIsBoundToItsKeyWhenSealed) {
  auto pool = MakePool(16, "lru", /*directory=*/true);
  ASSERT_TRUE(Put(*pool, 1, 8192).ok());
  auto blank = pool->AcquireBlank(8192, absl::Seconds(5));
  ASSERT_TRUE(blank.ok()) << blank.status();
  auto s = pool->Stats();
  EXPECT_EQ(s.blank_blocks, 1u);
  EXPECT_EQ(s.unsealed_blocks, 0u);
  EXPECT_EQ(s.keys, 1u) << "a blank is no key";
  EXPECT_EQ(s.used_bytes, 2 * 8192u) << "but it holds its space";
  EXPECT_EQ(pool->SealLease(blank->first, 0).code(), absl::StatusCode::kFailedPrecondition)
      << "a blank has no key to seal under";
  uint8_t* p = pool->arena_base() + blank->second.offset;
  Fill(p, 8192, 2);
  const BlockKey parent = Key(1);
  ASSERT_TRUE(pool->SealBlank(blank->first, Key(2), &parent, Checksum(p, 8192)).ok());
  s = pool->Stats();
  EXPECT_EQ(s.blank_blocks, 0u);
  EXPECT_EQ(s.keys, 2u);
  EXPECT_EQ(s.puts, 2u);
  auto h = pool->Get(Key(2));
  ASSERT_TRUE(h.ok()) << h.status();
  EXPECT_TRUE(Verify(h->data(), 8192, 2));
  EXPECT_EQ(h->info().offset, blank->second.offset);
  EXPECT_EQ(pool->SealBlank(blank->first, Key(3), nullptr, 0).code(), absl::StatusCode::kNotFound)
      << "the lease ended with the seal";
}

TEST_F(PoolTest, ABlankForAKeyAlreadyStoredIsFreedAndTheKeyKept) {
  auto pool = MakePool();
  ASSERT_TRUE(Put(*pool, 1, 8192).ok());
  auto same = pool->AcquireBlank(8192, absl::Seconds(5));
  auto other = pool->AcquireBlank(4096, absl::Seconds(5));
  ASSERT_TRUE(same.ok() && other.ok());
  Fill(pool->arena_base() + same->second.offset, 8192, 99);  // not key 1's bytes
  absl::Status s = pool->SealBlank(same->first, Key(1), nullptr, 0);
  EXPECT_EQ(s.code(), absl::StatusCode::kAlreadyExists);
  EXPECT_TRUE(absl::StrContains(s.message(), "same size")) << s;
  s = pool->SealBlank(other->first, Key(1), nullptr, 0);
  EXPECT_EQ(s.code(), absl::StatusCode::kAlreadyExists);
  EXPECT_TRUE(absl::StrContains(s.message(), "size 8192")) << s;
  auto h = pool->Get(Key(1));
  ASSERT_TRUE(h.ok());
  EXPECT_TRUE(Verify(h->data(), 8192, 1)) << "the stored block is untouched";
  const auto st = pool->Stats();
  EXPECT_EQ(st.blank_blocks, 0u);
  EXPECT_EQ(st.used_bytes, 8192u) << "both blanks were freed";
}

TEST_F(PoolTest, BlanksAreRefusedBadSizesAndReturnedByReleaseExpiryAndBadKeys) {
  auto pool = MakePool();
  EXPECT_EQ(pool->AcquireBlank(0, absl::Seconds(5)).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(pool->AcquireBlank(9 * kMiB, absl::Seconds(5)).status().code(),
            absl::StatusCode::kInvalidArgument);
  auto a = pool->AcquireBlank(kMiB, absl::Seconds(5));
  auto b = pool->AcquireBlank(kMiB, absl::Seconds(5));
  auto c = pool->AcquireBlank(kMiB, absl::Seconds(50));
  ASSERT_TRUE(a.ok() && b.ok() && c.ok());
  EXPECT_EQ(pool->Stats().used_bytes, 3 * kMiB);
  EXPECT_TRUE(pool->Release(a->first).ok());
  clock_.Advance(absl::Seconds(6));
  EXPECT_EQ(pool->ExpireLeases(), 1u);
  EXPECT_EQ(pool->SealBlank(b->first, Key(1), nullptr, 0).code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(pool->SealBlank(c->first, BlockKey{"", Key(1).digest}, nullptr, 0).code(),
            absl::StatusCode::kInvalidArgument);
  auto s = pool->Stats();
  EXPECT_EQ(s.used_bytes, 0u);
  EXPECT_EQ(s.blank_blocks, 0u);
  EXPECT_EQ(s.reclaimed_writes, 0u) << "a blank returned is no abandoned write";
  auto held = pool->AcquireBlank(kMiB, absl::Seconds(5));
  ASSERT_TRUE(held.ok());  // still held when the pool goes: freed with it (ASan checks)
}

TEST_F(PoolTest, BlanksEvictLikeWritesAndAFullPoolIsResourceExhausted) {
  auto pool = MakePool(4);  // 8 MiB
  for (uint64_t i = 1; i <= 4; ++i) ASSERT_TRUE(Put(*pool, i, 2 * kMiB).ok());
  auto blank = pool->AcquireBlank(2 * kMiB, absl::Seconds(5));
  ASSERT_TRUE(blank.ok()) << blank.status();
  EXPECT_GE(pool->Stats().evictions, 1u);
  std::vector<LeaseId> pins;
  for (uint64_t i = 1; i <= 4; ++i) {
    if (auto r = pool->AcquireRead(Key(i), absl::Seconds(5)); r.ok()) pins.push_back(r->first);
  }
  absl::Status last;  // blanks until the pins and blanks fill the arena
  for (int i = 0; i < 8 && last.ok(); ++i) {
    auto more = pool->AcquireBlank(2 * kMiB, absl::Seconds(5));
    if (more.ok()) pins.push_back(more->first);
    last = more.status();
  }
  EXPECT_EQ(last.code(), absl::StatusCode::kResourceExhausted) << last;
  EXPECT_EQ(pool->Stats().used_bytes, 8 * kMiB);
  for (LeaseId l : pins) ASSERT_TRUE(pool->Release(l).ok());
  Fill(pool->arena_base() + blank->second.offset, 2 * kMiB, 7);
  ASSERT_TRUE(pool->SealBlank(blank->first, Key(7), nullptr, 0).ok());
  auto h = pool->Get(Key(7));
  ASSERT_TRUE(h.ok());
  EXPECT_TRUE(Verify(h->data(), 2 * kMiB, 7));
}

TEST_F(PoolTest, MatchPrefixCountsLeadingKeys) {
  auto pool = MakePool();
  for (uint64_t i : {0, 1, 2, 4}) ASSERT_TRUE(Put(*pool, i, 4096).ok());
  std::vector<BlockKey> keys = {Key(0), Key(1), Key(2), Key(3), Key(4)};
  EXPECT_EQ(pool->MatchPrefix(keys), 3u);
  EXPECT_EQ(pool->MatchPrefix({Key(9)}), 0u);
  EXPECT_EQ(pool->MatchPrefix({}), 0u);
  std::vector<BlockKey> other_ns = {Key(0, "other")};
  EXPECT_EQ(pool->MatchPrefix(other_ns), 0u) << "namespaces isolate";
}

TEST_F(PoolTest, MatchPrefixIsNotAUseAndProtectsNothingFromEviction) {
  auto pool = MakePool();  // 32 MiB: evicts from 95% down to 85%
  for (uint64_t i = 0; i < 28; ++i) ASSERT_TRUE(Put(*pool, i, kMiB).ok());
  for (int k = 0; k < 5; ++k) EXPECT_EQ(pool->MatchPrefix({Key(0)}), 1u);
  ASSERT_TRUE(pool->Get(Key(1)).ok());  // a use: the most recent of the old blocks now
  for (uint64_t i = 100; i < 104; ++i) ASSERT_TRUE(Put(*pool, i, kMiB).ok());
  ASSERT_GT(pool->Stats().evictions, 0u);
  EXPECT_FALSE(pool->Contains(Key(0))) << "looked up five times, used never: least recent";
  EXPECT_TRUE(pool->Contains(Key(1))) << "read once: kept";
}

TEST_F(PoolTest, TheDirectoryMirrorsExactlyTheSealedBlocks) {
  auto pool = MakePool(16, "lru", /*directory=*/true);  // 32 MiB
  ASSERT_GE(pool->directory_fd(), 0);
  auto dir = directory::Reader::Map(pool->directory_fd(), pool->directory_bytes());
  ASSERT_TRUE(dir.ok()) << dir.status();
  const uint64_t ns = directory::NamespaceHash(Key(0).ns);
  for (uint64_t i = 0; i < 20; ++i) ASSERT_TRUE(Put(*pool, i, kMiB - 100 * i).ok());
  auto unsealed = pool->Allocate(Key(50), 4096);
  ASSERT_TRUE(unsealed.ok());
  directory::Hit hit;
  EXPECT_FALSE((*dir)->Find(ns, Key(50).digest, &hit)) << "not sealed: not published";
  for (uint64_t i = 0; i < 20; ++i) {
    ASSERT_TRUE((*dir)->Find(ns, Key(i).digest, &hit)) << i;
    auto h = pool->Get(Key(i));
    ASSERT_TRUE(h.ok());
    EXPECT_EQ(hit.offset, h->info().offset);
    EXPECT_EQ(hit.size, kMiB - 100 * i);
    EXPECT_EQ(hit.checksum, h->info().checksum);
    EXPECT_TRUE(Verify(pool->arena_base() + hit.offset, hit.size, i));
  }
  ASSERT_TRUE((*dir)->Find(ns, Key(3).digest, &hit));
  ASSERT_TRUE(pool->Remove(Key(3)).ok());
  EXPECT_FALSE((*dir)->Find(ns, Key(3).digest, &hit));
  EXPECT_FALSE(directory::Reader::StillValid(hit));
  // Eviction unpublishes before the space is reused.
  ASSERT_TRUE((*dir)->Find(ns, Key(0).digest, &hit));
  for (uint64_t i = 100; i < 140; ++i) ASSERT_TRUE(Put(*pool, i, kMiB).ok());
  ASSERT_GT(pool->Stats().evictions, 0u);
  EXPECT_FALSE(directory::Reader::StillValid(hit));
  uint64_t published = 0;
  for (uint64_t i : {0, 1, 2, 4, 5, 100, 120, 139}) {
    published += (*dir)->Find(ns, Key(i).digest, &hit);
    EXPECT_EQ((*dir)->Find(ns, Key(i).digest, &hit), pool->Contains(Key(i))) << i;
  }
  EXPECT_GT(published, 0u);
  EXPECT_TRUE((*dir)->complete());
  EXPECT_GE(pool->Stats().metadata_bytes, pool->directory_bytes());
}

TEST_F(PoolTest, WithoutTheOptionThereIsNoDirectory) {
  auto pool = MakePool();
  EXPECT_EQ(pool->directory_fd(), -1);
  EXPECT_EQ(pool->directory_bytes(), 0u);
}

TEST_F(PoolTest, LocalReadsAreCountedAndTouchedLikeGets) {
  auto pool = MakePool(16, "lru", /*directory=*/true);
  for (uint64_t i = 0; i < 28; ++i) ASSERT_TRUE(Put(*pool, i, kMiB).ok());
  const PoolStats before = pool->Stats();
  pool->RecordLocalReads({Key(0), Key(999)}, 3);  // 999 is not stored: skipped
  const PoolStats after = pool->Stats();
  EXPECT_EQ(after.gets - before.gets, 5u);
  EXPECT_EQ(after.hits - before.hits, 2u);
  EXPECT_EQ(after.misses - before.misses, 3u);
  EXPECT_EQ(after.bytes_out - before.bytes_out, kMiB);
  for (uint64_t i = 100; i < 104; ++i) ASSERT_TRUE(Put(*pool, i, kMiB).ok());
  ASSERT_GT(pool->Stats().evictions, 0u);
  EXPECT_TRUE(pool->Contains(Key(0))) << "read through the directory: most recent";
  EXPECT_FALSE(pool->Contains(Key(1)));
}

TEST_F(PoolTest, APinIsNeitherCountedNorAUse) {
  // The node pins blocks it copies to their owners (migration): not a reader's get.
  auto pool = MakePool(16, "lru");
  for (uint64_t i = 0; i < 28; ++i) ASSERT_TRUE(Put(*pool, i, kMiB).ok());
  const PoolStats before = pool->Stats();
  {
    auto pin = pool->Pin(Key(0));
    ASSERT_TRUE(pin.ok()) << pin.status();
    EXPECT_EQ(pool->Stats().pinned_blocks, 1u);
    EXPECT_TRUE(Verify(pin->data(), kMiB, 0));
  }
  EXPECT_TRUE(absl::IsNotFound(pool->Pin(Key(999)).status()));
  const PoolStats after = pool->Stats();
  EXPECT_EQ(after.gets, before.gets);
  EXPECT_EQ(after.hits, before.hits);
  EXPECT_EQ(after.misses, before.misses);
  EXPECT_EQ(after.bytes_out, before.bytes_out);
  EXPECT_EQ(after.pinned_blocks, 0u);
  for (uint64_t i = 100; i < 104; ++i) ASSERT_TRUE(Put(*pool, i, kMiB).ok());
  ASSERT_GT(pool->Stats().evictions, 0u);
  EXPECT_FALSE(pool->Contains(Key(0))) << "pinned, not used: still the least recent";
}

TEST_F(PoolTest, KeysListsSealedBlocks) {
  auto pool = MakePool();
  for (uint64_t i = 0; i < 10; ++i) ASSERT_TRUE(Put(*pool, i, 4096).ok());
  auto w = pool->Allocate(Key(50), 4096);  // unsealed: not listed
  auto keys = pool->Keys(100);
  EXPECT_EQ(keys.size(), 10u);
  EXPECT_EQ(pool->Keys(3).size(), 3u);
}

TEST_F(PoolTest, PrefaultMakesEveryArenaPageResidentAndWithoutItNone) {
  // Pages are faulted in after the huge-page advice and the NUMA binding (which do not move
  // pages already there), so this checks that the prefault still happens.
  for (bool prefault : {true, false}) {
    SCOPED_TRACE(prefault);
    PoolOptions o;
    o.huge_page_num = 8;
    o.prefault = prefault;
    auto pool = Pool::Create(o);
    ASSERT_TRUE(pool.ok()) << pool.status();
    const long page = sysconf(_SC_PAGESIZE);
    const uint64_t pages = (*pool)->arena_bytes() / static_cast<uint64_t>(page);
    std::vector<unsigned char> resident(pages);
    ASSERT_EQ(mincore((*pool)->arena_base(), (*pool)->arena_bytes(), resident.data()), 0);
    uint64_t in = 0;
    for (unsigned char r : resident) in += r & 1;
    EXPECT_EQ(in, prefault ? pages : 0u);
  }
}

// A node told to stop while it faults in its arena stops within a step (ems-node asks
// whether SIGTERM is pending), frees what it mapped, and says how far it got.
TEST_F(PoolTest, APrefaultThatShouldStopStopsWithinAStep) {
  PoolOptions o;
  o.huge_page_num = 256;  // 512 MiB: two steps
  o.prefault = true;
  int asked = 0;
  o.keep_going_prefault = [&asked] { return ++asked < 2; };
  auto pool = Pool::Create(o);
  ASSERT_TRUE(absl::IsCancelled(pool.status())) << pool.status();
  EXPECT_EQ(asked, 2);
  EXPECT_NE(pool.status().message().find("after 256 of 512 MiB"), std::string::npos)
      << pool.status();
  // Asked, and told to go on, before each step: the arena is all there.
  asked = 0;
  o.huge_page_num = 8;
  o.keep_going_prefault = [&asked] { return ++asked > 0; };
  ASSERT_TRUE(Pool::Create(o).ok());
  EXPECT_EQ(asked, 1);
}

TEST_F(PoolTest, RemovedBlocksThatLeasesStillPinAreFreedWithThePool) {
  // A remote reader's lease pins a block that is then removed: the block is in no index, only
  // in the leases (twice here). LeakSanitizer (make test-asan) fails this test if the pool
  // does not free it when it goes.
  auto pool = MakePool(4);
  ASSERT_TRUE(Put(*pool, 1, 4096).ok());
  auto first = pool->AcquireRead(Key(1), absl::Seconds(30));
  auto second = pool->AcquireRead(Key(1), absl::Seconds(30));
  ASSERT_TRUE(first.ok() && second.ok());
  ASSERT_TRUE(pool->Remove(Key(1)).ok());
  EXPECT_FALSE(pool->Contains(Key(1)));
  EXPECT_EQ(pool->Stats().pinned_blocks, 2u);
  pool.reset();  // with both leases held
}

TEST_F(PoolTest, AScanOfKeyPagesSeesEveryKeyOnceWhileKeysBehindItAreRemoved) {
  auto pool = MakePool(64);  // 128 MiB: 3,000 blocks of 4 KiB, no eviction
  constexpr uint64_t kKeys = 3000;
  for (uint64_t i = 0; i < kKeys; ++i) ASSERT_TRUE(Put(*pool, i, 4096).ok());
  absl::flat_hash_set<BlockKey> seen;
  size_t pages = 0;
  for (size_t from = 0;;) {
    Pool::KeyScan page = pool->ScanKeys(from, 100);
    ++pages;
    for (const BlockKey& k : page.keys) {
      EXPECT_TRUE(seen.insert(k).second) << "seen twice: " << k.ToString();
      // What the migrator does: the keys just read leave the pool before the next page.
      EXPECT_TRUE(pool->Remove(k).ok());
    }
    if (page.done) break;
    ASSERT_GT(page.next, from);
    from = page.next;
  }
  EXPECT_EQ(seen.size(), kKeys);
  EXPECT_GT(pages, 10u);  // paged, not one page of everything
  EXPECT_EQ(pool->Stats().keys, 0u);
  EXPECT_TRUE(pool->ScanKeys(0, 100).done);
}

TEST_F(PoolTest, LeasesThatExpireAtOnceNeverHandOutAFreedBlock) {
  // A lease is visible to the sweeper from the moment it is added; the block's place must be
  // read before that (ASan caught a read of a block the sweeper had freed).
  auto pool = MakePool(4);
  ASSERT_TRUE(Put(*pool, 1, 4096).ok());
  std::atomic<bool> stop{false};
  std::thread sweeper([&] {
    while (!stop) {
      clock_.Advance(absl::Milliseconds(1));
      pool->ExpireLeases();
    }
  });
  const uint64_t arena = pool->arena_bytes();
  for (uint64_t i = 0; i < 20000; ++i) {
    auto w = pool->AcquireWrite(Key(100 + i), 4096, nullptr, absl::Nanoseconds(1));
    ASSERT_TRUE(w.ok()) << w.status();
    EXPECT_LE(w->second.offset + w->second.size, arena);
    pool->Release(w->first).IgnoreError();  // may be gone already: that is the point
    auto r = pool->AcquireRead(Key(1), absl::Nanoseconds(1));
    ASSERT_TRUE(r.ok()) << r.status();
    EXPECT_EQ(r->second.size, 4096u);
    pool->Release(r->first).IgnoreError();
  }
  stop = true;
  sweeper.join();
  clock_.Advance(absl::Seconds(1));
  pool->ExpireLeases();
  const PoolStats s = pool->Stats();
  EXPECT_EQ(s.pinned_blocks, 0u);
  EXPECT_EQ(s.unsealed_blocks, 0u);
  EXPECT_EQ(s.keys, 1u);
}

TEST_F(PoolTest, ABlockWhoseIdCollidesWithAFallbackIdIsStillEvicted) {
  // Ids derive from the key; a key whose id is taken by a live block (here a pinned, removed
  // one) gets a counter id instead, and a client can choose a digest whose derived id is
  // that counter's next value. Both blocks must stay evictable.
  auto pool = MakePool(4);  // 8 MiB
  auto key = [](uint64_t low, uint64_t high) {
    Digest d;
    std::memcpy(d.bytes.data(), &high, 8);
    std::memcpy(d.bytes.data() + 8, &low, 8);
    return BlockKey{"test/ns", d};
  };
  auto put = [&](const BlockKey& k, uint64_t size) -> absl::Status {
    auto h = pool->Allocate(k, size);
    if (!h.ok()) return h.status();
    Fill(h->data(), size, 7);
    return pool->Seal(*std::move(h));
  };
  // The first namespace interned has id 0: derived id = Low64 ^ 0x9e3779b97f4a7c15, here
  // 2^63 + 1, the first counter id.
  const BlockKey a = key((1ull << 63 | 1) ^ 0x9e3779b97f4a7c15ull, 7);
  const BlockKey b = key(12345, 99);
  ASSERT_TRUE(put(a, 4096).ok());
  ASSERT_TRUE(put(b, 4096).ok());
  {
    auto pinned = pool->Get(b);
    ASSERT_TRUE(pinned.ok());
    ASSERT_TRUE(pool->Remove(b).ok());
    ASSERT_TRUE(put(b, 4096).ok());  // the old b still holds its derived id: a counter id
  }
  for (uint64_t i = 0; i < 2000; ++i) ASSERT_TRUE(put(key(1000000 + i, i), 64 * 1024).ok());
  EXPECT_FALSE(pool->Contains(a));
  EXPECT_FALSE(pool->Contains(b)) << "b was left out of the policy: never evicted";
  uint64_t stored = 0;
  for (uint64_t i = 0; i < 2000; ++i) stored += pool->Contains(key(1000000 + i, i));
  EXPECT_EQ(pool->Stats().keys, stored);
}

TEST_F(PoolTest, ConcurrentPutGetRemoveWithEvictionKeepsEveryByteIntact) {
  for (const char* policy : {"lru", "s3fifo", "prefix"}) {
    SCOPED_TRACE(policy);
    auto pool = MakePool(8, policy);  // 16 MiB, far less than the working set
    std::atomic<uint64_t> verified{0}, corrupt{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < 4; ++t) {
      threads.emplace_back([&, t] {
        std::mt19937_64 rng(t);
        for (int op = 0; op < 3000; ++op) {
          const uint64_t i = rng() % 200;
          const uint64_t size = 4096 * (1 + i % 64);  // fixed per key
          switch (rng() % 4) {
            case 0:
            case 1: {
              auto s = Put(*pool, i, size);
              if (!s.ok() && !absl::IsAlreadyExists(s) && !absl::IsResourceExhausted(s)) {
                ADD_FAILURE() << s;
              }
              break;
            }
            case 2: {
              auto h = pool->Get(Key(i));
              if (h.ok()) {
                if (h->size() != size || !Verify(h->data(), h->size(), i)) ++corrupt;
                ++verified;
              }
              break;
            }
            default:
              pool->Remove(Key(i)).IgnoreError();
          }
        }
      });
    }
    for (auto& t : threads) t.join();
    EXPECT_EQ(corrupt.load(), 0u);
    EXPECT_GT(verified.load(), 0u);
    auto s = pool->Stats();
    EXPECT_EQ(s.pinned_blocks, 0u);
    EXPECT_EQ(s.unsealed_blocks, 0u);
    // Used bytes are exactly the sealed blocks' rounded sizes.
    uint64_t expect_used = 0;
    for (uint64_t i = 0; i < 200; ++i) {
      if (pool->Contains(Key(i))) expect_used += 4096 * (1 + i % 64);
    }
    EXPECT_EQ(s.used_bytes, expect_used);
  }
}

}  // namespace
}  // namespace ems::pool
