#include "common/hash_ring.h"

#include <random>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"

namespace ems {
namespace {

std::vector<RingNode> EqualNodes(int n) {
  std::vector<RingNode> nodes;
  for (int i = 0; i < n; ++i) nodes.push_back({absl::StrCat("node-", i), 1 << 20, ""});
  return nodes;
}

std::vector<uint64_t> RandomPositions(size_t count, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<uint64_t> out(count);
  for (auto& p : out) {
    Digest d;
    for (size_t i = 0; i < kDigestBytes; i += 8) {
      uint64_t v = rng();
      std::memcpy(d.bytes.data() + i, &v, 8);
    }
    p = HashRing::Position(HashRing::NamespaceSeed("llama3-8b"), d);
  }
  return out;
}

// Issue #3: with 1M random keys and 3..64 nodes, max/mean load <= 1.10.
TEST(HashRingTest, LoadIsBalancedWithinTenPercent) {
  const auto keys = RandomPositions(1'000'000, 42);
  for (int n : {3, 4, 8, 16, 32, 64}) {
    auto ring = HashRing::Build(EqualNodes(n));
    ASSERT_TRUE(ring.ok()) << ring.status();
    std::vector<uint64_t> load(n, 0);
    for (uint64_t k : keys) ++load[ring->Owner(k)];
    const double mean = static_cast<double>(keys.size()) / n;
    const double max = *std::max_element(load.begin(), load.end());
    EXPECT_LE(max / mean, 1.10) << n << " nodes";
    RecordProperty(absl::StrCat("max_over_mean_", n), absl::StrCat(max / mean));
  }
}

// Issue #3: adding a node to N moves at most 1.1/(N+1) of the keys, and only to the new node.
TEST(HashRingTest, AddingANodeMovesOnlyItsShare) {
  const auto keys = RandomPositions(1'000'000, 7);
  for (int n : {3, 8, 63}) {
    auto before = HashRing::Build(EqualNodes(n));
    auto after = HashRing::Build(EqualNodes(n + 1));
    ASSERT_TRUE(before.ok() && after.ok());
    size_t moved = 0;
    for (uint64_t k : keys) {
      const std::string& from = before->nodes()[before->Owner(k)].id;
      const std::string& to = after->nodes()[after->Owner(k)].id;
      if (from != to) {
        ++moved;
        ASSERT_EQ(to, absl::StrCat("node-", n)) << "a key moved between two old nodes";
      }
    }
    EXPECT_LE(static_cast<double>(moved) / keys.size(), 1.1 / (n + 1)) << n << " nodes";
    RecordProperty(absl::StrCat("moved_fraction_", n, "_to_", n + 1),
                   absl::StrCat(static_cast<double>(moved) / keys.size()));
  }
}

TEST(HashRingTest, CapacityWeightsTheShare) {
  auto ring = HashRing::Build({{"big", 3000, ""}, {"small", 1000, ""}});
  ASSERT_TRUE(ring.ok());
  const auto keys = RandomPositions(200'000, 3);
  size_t big = 0;
  for (uint64_t k : keys) big += ring->nodes()[ring->Owner(k)].id == "big";
  EXPECT_NEAR(static_cast<double>(big) / keys.size(), 0.75, 0.03);
}

TEST(HashRingTest, IsDeterministicWhateverTheInputOrder) {
  auto nodes = EqualNodes(5);
  auto a = HashRing::Build(nodes);
  std::reverse(nodes.begin(), nodes.end());
  auto b = HashRing::Build(nodes);
  ASSERT_TRUE(a.ok() && b.ok());
  for (uint64_t k : RandomPositions(10'000, 9)) {
    EXPECT_EQ(a->nodes()[a->Owner(k)].id, b->nodes()[b->Owner(k)].id);
  }
}

TEST(HashRingTest, ReplicasAreDistinctAndPreferDistinctZones) {
  auto ring = HashRing::Build({{"a1", 1, "a"}, {"a2", 1, "a"}, {"b1", 1, "b"}, {"c1", 1, "c"}});
  ASSERT_TRUE(ring.ok());
  for (uint64_t k : RandomPositions(2'000, 11)) {
    auto owners = ring->Owners(k, 3);
    ASSERT_EQ(owners.size(), 3u);
    EXPECT_EQ(owners[0], ring->Owner(k));
    std::set<std::string> zones;
    for (int o : owners) zones.insert(ring->nodes()[o].zone);
    EXPECT_EQ(zones.size(), 3u) << "three zones exist, so three replicas use all three";
  }
  EXPECT_EQ(ring->Owners(123, 10).size(), 4u) << "never more owners than nodes";
}

TEST(HashRingTest, RejectsBadNodes) {
  EXPECT_EQ(HashRing::Build({{"", 1, ""}}).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(HashRing::Build({{"a", 0, ""}}).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(HashRing::Build({{"a", 1, ""}, {"a", 1, ""}}).status().code(),
            absl::StatusCode::kInvalidArgument);
  auto empty = HashRing::Build({});
  ASSERT_TRUE(empty.ok());
  EXPECT_EQ(empty->Owner(5), -1);
}

}  // namespace
}  // namespace ems
