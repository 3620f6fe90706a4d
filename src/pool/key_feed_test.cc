#include "pool/key_feed.h"

#include <string>
#include <thread>

#include "gtest/gtest.h"

namespace ems::pool {
namespace {

// The pool names namespaces by interned id; two are enough here.
std::string Name(uint32_t ns) { return ns == 0 ? "ns" : "other"; }
constexpr uint32_t kNs = 0, kOther = 1;

Digest D(uint8_t i) {
  Digest d;
  d.bytes[0] = i;
  return d;
}

TEST(KeyFeedTest, ReadsEventsInOrderFromAnyPositionItStillKeeps) {
  KeyFeed feed(4, Name);
  EXPECT_EQ(feed.next(), 0u);
  for (uint8_t i = 0; i < 3; ++i) feed.Append(i != 1, kNs, D(i));
  auto all = feed.Read(0, 10, absl::ZeroDuration());
  ASSERT_TRUE(all.ok()) << all.status();
  ASSERT_EQ(all->size(), 3u);
  for (uint8_t i = 0; i < 3; ++i) {
    EXPECT_EQ((*all)[i].seq, i);
    EXPECT_EQ((*all)[i].present, i != 1);
    EXPECT_EQ((*all)[i].key, (BlockKey{"ns", D(i)}));
  }
  auto two = feed.Read(1, 1, absl::ZeroDuration());
  ASSERT_TRUE(two.ok());
  ASSERT_EQ(two->size(), 1u);
  EXPECT_EQ((*two)[0].seq, 1u);
}

TEST(KeyFeedTest, AReaderFurtherBehindThanTheRingIsToldToStartOver) {
  KeyFeed feed(4, Name);
  for (uint8_t i = 0; i < 6; ++i) feed.Append(true, kNs, D(i));
  EXPECT_EQ(feed.Read(1, 10, absl::ZeroDuration()).status().code(), absl::StatusCode::kOutOfRange);
  auto kept = feed.Read(2, 10, absl::ZeroDuration());
  ASSERT_TRUE(kept.ok()) << kept.status();
  ASSERT_EQ(kept->size(), 4u);
  EXPECT_EQ(kept->front().key.digest, D(2));
  EXPECT_EQ(kept->back().key.digest, D(5));
}

TEST(KeyFeedTest, AWaitingReaderWakesForTheNextEventOrReturnsEmpty) {
  KeyFeed feed(4, Name);
  auto none = feed.Read(0, 10, absl::Milliseconds(20));
  ASSERT_TRUE(none.ok());
  EXPECT_TRUE(none->empty());
  std::thread writer([&] {
    absl::SleepFor(absl::Milliseconds(50));
    feed.Append(false, kOther, D(7));
  });
  auto got = feed.Read(0, 10, absl::Seconds(30));
  writer.join();
  ASSERT_TRUE(got.ok());
  ASSERT_EQ(got->size(), 1u);
  EXPECT_EQ((*got)[0].key, (BlockKey{"other", D(7)}));
  EXPECT_FALSE((*got)[0].present);
}

}  // namespace
}  // namespace ems::pool
