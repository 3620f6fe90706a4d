#include "directory/directory.h"

#include <sys/mman.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <thread>
#include <vector>

#include "gtest/gtest.h"

namespace ems::directory {
namespace {

Digest D(uint64_t i) {
  Digest d;
  for (size_t b = 0; b < d.bytes.size(); ++b)
    d.bytes[b] = static_cast<uint8_t>((i * 131 + b) >> (b % 4));
  std::memcpy(d.bytes.data(), &i, sizeof(i));
  const uint64_t mixed = i * 0x9e3779b97f4a7c15ull;
  std::memcpy(d.bytes.data() + 8, &mixed, sizeof(mixed));
  return d;
}

TEST(DirectoryTest, SizeGrowsWithTheArenaAndIsCapped) {
  EXPECT_EQ(DirectoryBytes(64ull << 20), sizeof(Header) + (2ull << 20));  // 16 Ki blocks
  EXPECT_GT(DirectoryBytes(512ull << 20), DirectoryBytes(64ull << 20));
  // Capped at 64 MiB of slots (1 Mi of them, for 768 Ki blocks), whatever the arena.
  EXPECT_EQ(DirectoryBytes(1ull << 40), sizeof(Header) + (64ull << 20));
  EXPECT_EQ(DirectoryBytes(1ull << 50), sizeof(Header) + (64ull << 20));
  EXPECT_GE(DirectoryBytes(1), sizeof(Header) + kBucketSlots * sizeof(Slot));
}

TEST(DirectoryTest, PublishedBlocksAreFoundUntilUnpublished) {
  auto w = Writer::Create(64ull << 20);
  ASSERT_TRUE(w.ok()) << w.status();
  auto r = Reader::Map((*w)->fd(), (*w)->bytes());
  ASSERT_TRUE(r.ok()) << r.status();
  const uint64_t ns = NamespaceHash("model-a");
  for (uint64_t i = 0; i < 1000; ++i)
    ASSERT_TRUE((*w)->Publish(ns, D(i), i * 4096, 100 + i, i + 7));
  EXPECT_TRUE((*r)->complete());
  Hit hit;
  for (uint64_t i = 0; i < 1000; ++i) {
    ASSERT_TRUE((*r)->Find(ns, D(i), &hit)) << i;
    EXPECT_EQ(hit.offset, i * 4096);
    EXPECT_EQ(hit.size, 100 + i);
    EXPECT_EQ(hit.checksum, i + 7);
    EXPECT_TRUE(Reader::StillValid(hit));
  }
  // Same digest, other namespace: a different key.
  EXPECT_FALSE((*r)->Find(NamespaceHash("model-b"), D(1), &hit));
  EXPECT_FALSE((*r)->Find(ns, D(5000), &hit));

  ASSERT_TRUE((*r)->Find(ns, D(3), &hit));
  (*w)->Unpublish(ns, D(3), true);
  EXPECT_FALSE(Reader::StillValid(hit)) << "a hit taken before the unpublish must not vouch";
  EXPECT_FALSE((*r)->Find(ns, D(3), &hit));
  EXPECT_TRUE((*r)->Find(ns, D(4), &hit));
  // The slot is reused, and a hit on the new occupant is valid.
  ASSERT_TRUE((*w)->Publish(ns, D(3), 1 << 20, 9, 9));
  ASSERT_TRUE((*r)->Find(ns, D(3), &hit));
  EXPECT_EQ(hit.offset, 1u << 20);
}

TEST(DirectoryTest, AFullBucketPairCountsTheBlockAsUnpublished) {
  auto w = Writer::Create(1);  // the smallest directory: one bucket pair at most
  ASSERT_TRUE(w.ok());
  auto r = Reader::Map((*w)->fd(), (*w)->bytes());
  ASSERT_TRUE(r.ok());
  const uint64_t ns = NamespaceHash("n");
  const uint64_t slots = ((*w)->bytes() - sizeof(Header)) / sizeof(Slot);
  std::vector<bool> published;
  for (uint64_t i = 0; i < slots + 3; ++i) published.push_back((*w)->Publish(ns, D(i), i, 1, 1));
  EXPECT_FALSE((*r)->complete());
  size_t missing = 0;
  Hit hit;
  for (uint64_t i = 0; i < published.size(); ++i) {
    EXPECT_EQ((*r)->Find(ns, D(i), &hit), published[i]) << i;
    missing += !published[i];
  }
  EXPECT_GE(missing, 3u);
  for (uint64_t i = 0; i < published.size(); ++i) (*w)->Unpublish(ns, D(i), published[i]);
  EXPECT_TRUE((*r)->complete());
  for (uint64_t i = 0; i < published.size(); ++i) EXPECT_FALSE((*r)->Find(ns, D(i), &hit));
}

TEST(DirectoryTest, ReadersNeverSeeATornEntry) {
  auto w = Writer::Create(1 << 20);
  ASSERT_TRUE(w.ok());
  auto r = Reader::Map((*w)->fd(), (*w)->bytes());
  ASSERT_TRUE(r.ok());
  const uint64_t ns = NamespaceHash("n");
  // Every published entry of key i carries offset = gen * 4096 + i, size = gen, checksum =
  // gen ^ i: a torn read shows up as fields from two generations.
  std::atomic<bool> stop{false};
  std::atomic<uint64_t> found{0}, torn{0};
  std::vector<std::thread> readers;
  for (int t = 0; t < 2; ++t) {
    readers.emplace_back([&] {
      Hit hit;
      while (!stop.load()) {
        for (uint64_t i = 0; i < 64; ++i) {
          if (!(*r)->Find(ns, D(i), &hit)) continue;
          ++found;
          const uint64_t gen = hit.size;
          if (hit.offset != gen * 4096 + i || hit.checksum != (gen ^ i)) ++torn;
        }
      }
    });
  }
  for (uint64_t gen = 1; gen < 3000; ++gen) {
    for (uint64_t i = 0; i < 64; ++i) {
      if (gen > 1) (*w)->Unpublish(ns, D(i), true);
      ASSERT_TRUE((*w)->Publish(ns, D(i), gen * 4096 + i, gen, gen ^ i));
    }
  }
  stop = true;
  for (auto& t : readers) t.join();
  EXPECT_EQ(torn.load(), 0u);
  EXPECT_GT(found.load(), 0u);
}

TEST(DirectoryTest, AReaderRejectsWhatIsNotADirectory) {
  auto w = Writer::Create(64ull << 20);
  ASSERT_TRUE(w.ok());
  EXPECT_FALSE(Reader::Map((*w)->fd(), (*w)->bytes() / 2).ok()) << "size disagrees with header";
  EXPECT_FALSE(Reader::Map((*w)->fd(), 10).ok());
  const int fd = memfd_create("not-a-directory", MFD_CLOEXEC);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(ftruncate(fd, static_cast<off_t>((*w)->bytes())), 0);
  auto bad = Reader::Map(fd, (*w)->bytes());
  EXPECT_TRUE(absl::IsInvalidArgument(bad.status())) << bad.status();
  close(fd);
}

}  // namespace
}  // namespace ems::directory
