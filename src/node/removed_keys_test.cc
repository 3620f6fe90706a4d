#include "node/removed_keys.h"

#include <cstring>

#include "common/clock.h"
#include "gtest/gtest.h"

namespace ems::node {
namespace {

BlockKey Key(uint8_t i) {
  BlockKey k{"test/model", {}};
  k.digest.bytes[0] = i;
  return k;
}

std::unique_ptr<pool::Pool> SmallPool() {
  pool::PoolOptions o;
  o.huge_page_num = 1;
  o.prefault = false;
  auto p = pool::Pool::Create(o);
  EXPECT_TRUE(p.ok()) << p.status();
  return p.ok() ? *std::move(p) : nullptr;
}

absl::Status Put(pool::Pool& pool, const BlockKey& key) {
  auto h = pool.Allocate(key, 4096);
  if (!h.ok()) return h.status();
  std::memset(h->data(), 7, 4096);
  return pool.Seal(*std::move(h));
}

TEST(RemovedKeysTest, ARemoveIsRememberedUntilTheKeyIsPutAgainOrItsTimeIsUp) {
  FakeClock clock;
  RemovedKeys removed({.ttl = absl::Minutes(1), .clock = &clock});
  EXPECT_FALSE(removed.Contains(Key(1)));
  removed.Note(Key(1));
  removed.Note(Key(2));
  EXPECT_TRUE(removed.Contains(Key(1)));
  EXPECT_FALSE(removed.Contains(Key(3)));
  removed.Forget(Key(1));  // a client put it again
  EXPECT_FALSE(removed.Contains(Key(1)));
  EXPECT_TRUE(removed.Contains(Key(2)));
  clock.Advance(absl::Seconds(59));
  removed.Note(Key(1));  // removed again: remembered anew
  clock.Advance(absl::Seconds(2));
  EXPECT_FALSE(removed.Contains(Key(2))) << "past its ttl";
  EXPECT_TRUE(removed.Contains(Key(1)));
  EXPECT_EQ(removed.size(), 1u);
  EXPECT_EQ(removed.dropped(), 0u);
}

TEST(RemovedKeysTest, TheOldestGoFirstWhenFullAndAreCounted) {
  FakeClock clock;
  RemovedKeys removed({.capacity = 4, .clock = &clock});
  for (uint8_t i = 0; i < 6; ++i) removed.Note(Key(i));
  EXPECT_EQ(removed.size(), 4u);
  EXPECT_FALSE(removed.Contains(Key(0)));
  EXPECT_FALSE(removed.Contains(Key(1)));
  for (uint8_t i = 2; i < 6; ++i) EXPECT_TRUE(removed.Contains(Key(i))) << int{i};
  EXPECT_EQ(removed.dropped(), 2u);
  // Keys noted and put again many times leave no unbounded trail behind them.
  for (int n = 0; n < 1000; ++n) {
    removed.Note(Key(9));
    removed.Forget(Key(9));
  }
  EXPECT_LE(removed.size(), 4u);
}

TEST(RemovedKeysTest, APushStoredAfterARemoveIsUndoneButAClientsPutIsNot) {
  auto pool = SmallPool();
  ASSERT_NE(pool, nullptr);
  RemovedKeys removed;
  // The push sealed its copy after the client's remove had found nothing to remove.
  removed.Note(Key(1));
  ASSERT_TRUE(Put(*pool, Key(1)).ok());
  EXPECT_TRUE(removed.UndoIfNoted(Key(1), *pool));
  EXPECT_FALSE(pool->Contains(Key(1)));
  // The client put the key again after its remove: that block stays.
  removed.Note(Key(2));
  removed.Forget(Key(2));
  ASSERT_TRUE(Put(*pool, Key(2)).ok());
  EXPECT_FALSE(removed.UndoIfNoted(Key(2), *pool));
  EXPECT_TRUE(pool->Contains(Key(2)));
  // Nothing noted: nothing undone.
  ASSERT_TRUE(Put(*pool, Key(3)).ok());
  EXPECT_FALSE(removed.UndoIfNoted(Key(3), *pool));
  EXPECT_TRUE(pool->Contains(Key(3)));
}

}  // namespace
}  // namespace ems::node
