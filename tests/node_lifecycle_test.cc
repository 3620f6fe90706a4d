// Process-level behaviour of ems-node: graceful SIGTERM, memory bounded under overfill.
#include <signal.h>
#include <stdlib.h>

#include <string>

#include "client/client.h"
#include "ems/v1/data.pb.h"
#include "gtest/gtest.h"
#include "testing/blocks.h"
#include "testing/process.h"

namespace ems {
namespace {

using testing::TestKey;
using testing::TestValue;

TEST(NodeLifecycleTest, SigtermExitsZero) {
  auto node = testing::StartNode({"--huge_page_num=16"});
  ASSERT_TRUE(node.ok()) << node.status();
  auto client = Client::Connect({.address = (*node)->Value("LISTENING")});
  ASSERT_TRUE(client.ok());
  ASSERT_TRUE((*client)->Put(TestKey(1), TestValue(1, 1 << 20)).ok());
  ASSERT_TRUE((*node)->Signal(SIGTERM));
  EXPECT_EQ((*node)->Wait(), 0);
}

TEST(NodeLifecycleTest, StartupRefusesImpossibleSizesWithAMessage) {
  auto node = testing::StartNode({"--huge_page_num=1000000000"});
  ASSERT_FALSE(node.ok()) << "a 2 PB arena must be refused";
}

// A port another node serves is refused at start-up, never shared. gRPC and httplib set
// SO_REUSEPORT by default, so a second node given the same --listen or --metrics_port (started
// by mistake, or by a supervisor beside a predecessor that hangs) started too: the kernel then
// spread new connections over both, each node with its own arena, and POST /drain (the
// DaemonSet's preStop hook) reached either of them.
TEST(NodeLifecycleTest, APortAnotherNodeServesIsRefusedNotShared) {
  auto first = testing::StartNode({"--huge_page_num=16"});
  ASSERT_TRUE(first.ok()) << first.status();
  const std::string address = (*first)->Value("LISTENING");
  const std::string metrics = (*first)->Value("METRICS");
  auto same_listen = testing::StartNode({"--huge_page_num=16", "--listen=" + address});
  EXPECT_FALSE(same_listen.ok()) << "a second node also serves gRPC on " << address;
  auto same_metrics = testing::StartNode({"--huge_page_num=16", "--metrics_port=" + metrics});
  EXPECT_FALSE(same_metrics.ok()) << "a second node also serves metrics on port " << metrics;
  // The first node is still the one serving both.
  auto client = Client::Connect({.address = address});
  ASSERT_TRUE(client.ok()) << client.status();
  EXPECT_TRUE((*client)->Put(TestKey(1), TestValue(1, 4096)).ok());
}

// Under AddressSanitizer the node's writes into the arena touch shadow memory worth 1/8 of it,
// which RSS counts too.
#if defined(__SANITIZE_ADDRESS__)
constexpr uint64_t kShadowEighths = 1;
#else
constexpr uint64_t kShadowEighths = 0;
#endif

// Under AddressSanitizer, freed heap memory (each 2 MiB gRPC message) waits in a quarantine of
// 256 MiB by default, which RSS would charge to the arena; the child node runs without one.
void DisableAsanQuarantineForChildren() {
#if defined(__SANITIZE_ADDRESS__)
  const char* current = getenv("ASAN_OPTIONS");
  std::string options = current == nullptr ? "" : std::string(current) + ":";
  options += "quarantine_size_mb=0";
  setenv("ASAN_OPTIONS", options.c_str(), 1);
#endif
}

// Filling a node to 3x its capacity with 2 MiB blocks keeps it serving (evicting), and its
// RSS stays within capacity + 10%. The RSS of the idle process (about 20 MiB, mostly shared
// library pages) is measured first and not charged to the arena.
TEST(NodeLifecycleTest, OverfillEvictsAndRssStaysWithinCapacity) {
  constexpr uint64_t kPages = 256;  // 512 MiB: a node's fixed overhead is small beside it
  constexpr uint64_t kCapacity = kPages * (2 << 20);
  DisableAsanQuarantineForChildren();
  // Without prefault the arena's pages come in as blocks are written, so RSS shows what the
  // overfill costs.
  auto node = testing::StartNode({"--huge_page_num=256", "--prefault=false"});
  ASSERT_TRUE(node.ok()) << node.status();
  auto client = Client::Connect({.address = (*node)->Value("LISTENING")});
  ASSERT_TRUE(client.ok());
  const uint64_t baseline = (*node)->RssBytes();
  constexpr int kBlocks = 3 * kPages;
  for (int i = 0; i < kBlocks; ++i) {
    ASSERT_TRUE((*client)->Put(TestKey(i), TestValue(i, 2 << 20)).ok()) << i;
  }
  auto stats = (*client)->Stats();
  ASSERT_TRUE(stats.ok());
  EXPECT_GT(stats->evictions(), 0u);
  EXPECT_LE(stats->used_bytes(), kCapacity);
  const uint64_t rss = (*node)->RssBytes();
  EXPECT_LE(rss - baseline, kCapacity * 11 / 10 + kCapacity * kShadowEighths / 8)
      << "RSS " << (rss >> 20) << " MiB, idle baseline " << (baseline >> 20) << " MiB";
  // Still serving: the newest blocks are there and intact.
  std::vector<uint8_t> out(2 << 20);
  for (int i = kBlocks - 10; i < kBlocks; ++i) {
    auto n = (*client)->Get(TestKey(i), absl::MakeSpan(out));
    ASSERT_TRUE(n.ok()) << i << ": " << n.status();
    ASSERT_EQ(out, TestValue(i, 2 << 20));
  }
}

}  // namespace
}  // namespace ems
