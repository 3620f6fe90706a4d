// Key mirrors (ClientOptions::mirror_remote_keys) against real ems-node processes: a client
// with no node on its host answers lookups from mirrors of the nodes' keys, exactly as the
// nodes would over the wire once the mirrors have caught up, its own writes at once, and
// never from the mirror of a node that died or froze.
#include "client/key_mirror.h"

#include <signal.h>

#include "client/client.h"
#include "common/key_proto.h"
#include "ems/v1/local.pb.h"
#include "gtest/gtest.h"
#include "testing/blocks.h"
#include "testing/cluster.h"
#include "testing/cluster_client.h"
#include "testing/local_raw.h"

namespace ems {
namespace {

using testing::ClusterClient;
using testing::kBlockBytes;
using testing::PutAll;
using testing::TestKey;

std::vector<BlockKey> Prompt(int first, int count) {
  std::vector<BlockKey> prompt;
  for (int i = first; i < first + count; ++i) prompt.push_back(TestKey(i));
  return prompt;
}

// Looks `prompt` up; the answer, and whether it came with no round trip.
std::pair<size_t, bool> Lookup(Client& client, absl::Span<const BlockKey> prompt) {
  const uint64_t before = client.counters().lookups_without_round_trip;
  auto m = client.MatchPrefix(prompt);
  EXPECT_TRUE(m.ok()) << m.status();
  return {m.ok() ? *m : 0, client.counters().lookups_without_round_trip > before};
}

// Waits (bounded) until `client` answers `prompt` with `want` and no round trip.
bool Converges(Client& client, absl::Span<const BlockKey> prompt, size_t want) {
  const absl::Time deadline = absl::Now() + absl::Seconds(10);
  while (absl::Now() < deadline) {
    if (Lookup(client, prompt) == std::pair<size_t, bool>{want, true}) return true;
    absl::SleepFor(absl::Milliseconds(10));
  }
  return false;
}

TEST(KeyMirrorTest, RemoteClientsAnswerLookupsFromMirrorsExactlyAsOverTheWire) {
  auto cluster = testing::Cluster::Start({.nodes = 3});
  ASSERT_TRUE(cluster.ok()) << cluster.status();
  auto wire = ClusterClient(**cluster);
  auto mirrored = ClusterClient(**cluster, {.mirror_remote_keys = true});
  ASSERT_TRUE(wire && mirrored);
  // Another client's blocks reach the mirrors through the nodes' key streams.
  PutAll(*wire, 200);
  ASSERT_TRUE(Converges(*mirrored, Prompt(0, 200), 200));
  ASSERT_TRUE(wire->Remove({TestKey(40)}).ok());
  ASSERT_TRUE(Converges(*mirrored, Prompt(0, 200), 40)) << "a removal by another client";
  const std::vector<std::pair<int, int>> cases = {{0, 64}, {0, 200}, {30, 64}, {41, 120}, {199, 1}};
  for (auto [first, count] : cases) {
    std::vector<BlockKey> prompt = Prompt(first, count);
    prompt.push_back(TestKey(100000));  // absent: nothing after it counts
    prompt.push_back(TestKey(first));
    const size_t want = first <= 40 && 40 < first + count ? 40 - first : count;
    EXPECT_EQ(Lookup(*mirrored, prompt), std::make_pair(want, true)) << first << "+" << count;
    EXPECT_EQ(*wire->MatchPrefix(prompt), want) << first << "+" << count;
  }
  // Its own writes and removes, at once: no waiting for the stream.
  PutAll(*mirrored, 64, 1000);
  EXPECT_EQ(Lookup(*mirrored, Prompt(1000, 64)), std::make_pair(size_t{64}, true));
  ASSERT_TRUE(mirrored->Remove({TestKey(1010)}).ok());
  EXPECT_EQ(Lookup(*mirrored, Prompt(1000, 64)), std::make_pair(size_t{10}, true));
  // Evictions reach it too. Fill the cluster (3 × 64 MiB) several times over with 64 KiB
  // blocks: the early ones go.
  for (int round = 0; round < 4; ++round) PutAll(*wire, 1000, 2000 + round * 1000);
  std::vector<BlockKey> early = Prompt(2000, 64);
  const size_t over_wire = *wire->MatchPrefix(early);
  EXPECT_LT(over_wire, 64u) << "the fill evicted nothing";
  EXPECT_TRUE(Converges(*mirrored, early, over_wire));
}

TEST(KeyMirrorTest, AnOwnPutTheNodeNeverSealsIsNotClaimedForLong) {
  // A put of a block another writer is still writing is answered OK (a cache's put of it
  // counts as done), and this client's mirror took the key at once. If that writer gives up,
  // the block is never sealed, the stream never says so, and the mirror claimed it for good.
  auto cluster = testing::Cluster::Start({.nodes = 1, .local_sockets = true});
  ASSERT_TRUE(cluster.ok()) << cluster.status();
  auto mirrored = ClusterClient(**cluster, {.use_local = false, .mirror_remote_keys = true});
  ASSERT_NE(mirrored, nullptr);
  PutAll(*mirrored, 10);
  ASSERT_TRUE(Converges(*mirrored, Prompt(0, 10), 10));
  testing::RawLocal writer((*cluster)->local_socket(0));
  ASSERT_TRUE(writer.ok());
  v1::LocalRequest grant;
  v1::LocalWrite* w = grant.mutable_write()->add_items();
  ToProto(TestKey(500), w->mutable_key());
  w->set_size(kBlockBytes);
  v1::LocalResponse granted;
  ASSERT_TRUE(writer.Call(grant, &granted));
  ASSERT_EQ(granted.grants(0).code(), 0) << granted.grants(0).message();
  PutAll(*mirrored, 1, 500);  // answered OK: being written
  v1::LocalRequest release;
  release.mutable_release()->add_leases(granted.grants(0).lease());
  v1::LocalResponse released;
  ASSERT_TRUE(writer.Call(release, &released));  // the other writer gives up
  absl::SleepFor(client::KeyMirror::kStaleAfter + absl::Milliseconds(500));
  EXPECT_EQ(Lookup(*mirrored, Prompt(500, 1)), std::make_pair(size_t{0}, true));
  EXPECT_EQ(Lookup(*mirrored, Prompt(0, 10)), std::make_pair(size_t{10}, true));
}

TEST(KeyMirrorTest, TheMirrorOfADeadOrFrozenNodeIsNeverTrusted) {
  // A node frozen for a few seconds stays UP in the map: this is about the mirror alone.
  auto cluster = testing::Cluster::Start({.nodes = 3, .down_after_missed = 30});
  ASSERT_TRUE(cluster.ok()) << cluster.status();
  auto mirrored = ClusterClient(**cluster, {.mirror_remote_keys = true});
  ASSERT_TRUE(mirrored);
  PutAll(*mirrored, 200);
  const std::vector<BlockKey> prompt = Prompt(0, 200);
  ASSERT_TRUE(Converges(*mirrored, prompt, 200));
  // Frozen: its stream goes silent, and after KeyMirror::kStaleAfter its keys are asked for
  // over the wire (where they time out: a miss) instead of claimed.
  ASSERT_TRUE((*cluster)->node(2).Signal(SIGSTOP));
  absl::SleepFor(absl::Milliseconds(1500));
  auto [frozen, without_round_trip] = Lookup(*mirrored, prompt);
  ASSERT_TRUE((*cluster)->node(2).Signal(SIGCONT));
  EXPECT_FALSE(without_round_trip);
  EXPECT_LT(frozen, 200u);
  EXPECT_TRUE(Converges(*mirrored, prompt, 200)) << "back in step once it runs again";
  // Killed: its stream ends at once; nothing of it is claimed again.
  ASSERT_TRUE((*cluster)->node(1).Signal(SIGKILL));
  absl::SleepFor(absl::Milliseconds(100));
  const absl::Time deadline = absl::Now() + absl::Seconds(10);
  size_t after = 200;
  while (absl::Now() < deadline && (after = Lookup(*mirrored, prompt).first) == 200) {
    absl::SleepFor(absl::Milliseconds(20));
  }
  EXPECT_LT(after, 200u);
  for (int i = 0; i < 20; ++i) EXPECT_LT(Lookup(*mirrored, prompt).first, 200u) << i;
}

}  // namespace
}  // namespace ems
