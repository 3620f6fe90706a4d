// The client under faults and at its limits, against real ems-node / ems-controller processes:
// stalled nodes (SIGSTOP) cost a caller one timeout, nodes that left the map release what the
// client held for them, batches larger than one gRPC message, Remove with replicas. Each test
// failed on the client of d411048 (2026-11-30 review).
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <future>
#include <string>
#include <thread>
#include <vector>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/match.h"
#include "absl/time/clock.h"
#include "client/client.h"
#include "common/cluster_view.h"
#include "common/key_proto.h"
#include "ems/v1/data.pb.h"
#include "gtest/gtest.h"
#include "testing/blocks.h"
#include "testing/cluster.h"
#include "testing/cluster_client.h"
#include "testing/local_raw.h"
#include "testing/process.h"

namespace ems {
namespace {

using testing::kBlockBytes;
using testing::PutAll;
using testing::TestKey;
using testing::TestValue;

std::string TempSocket(const std::string& tag) {
  return (std::filesystem::temp_directory_path() /
          ("ems-faults-" + tag + "-" + std::to_string(getpid()) + ".sock"))
      .string();
}

// Lines of /proc/self/maps that map a node's arena (memfd "ems-arena").
int ArenaMappings() {
  std::ifstream maps("/proc/self/maps");
  int n = 0;
  for (std::string line; std::getline(maps, line);) n += absl::StrContains(line, "ems-arena");
  return n;
}

// Puts blocks 0..n-1 (PutAll) and returns their keys, in prompt order.
std::vector<BlockKey> PutPrompt(Client& client, int n) {
  PutAll(client, n);
  std::vector<BlockKey> keys;
  for (int i = 0; i < n; ++i) keys.push_back(TestKey(i));
  return keys;
}

// SIGSTOPs `p` and waits until every one of its threads is stopped: kill() returns before they
// are, and a thread that is serving a request may still answer it.
void Stop(testing::Process& p) {
  p.Signal(SIGSTOP);
  const std::string dir = "/proc/" + std::to_string(p.pid()) + "/task";
  for (int i = 0; i < 200; ++i) {
    bool all = true;
    for (const auto& t : std::filesystem::directory_iterator(dir)) {
      std::ifstream stat(t.path() / "stat");
      std::string line;
      std::getline(stat, line);
      const size_t paren = line.rfind(')');
      if (paren == std::string::npos || paren + 2 >= line.size() || line[paren + 2] != 'T') {
        all = false;
      }
    }
    if (all) return;
    absl::SleepFor(absl::Milliseconds(5));
  }
}

// 1. The shared-memory path has no deadline: a stalled node hangs a Put forever.
TEST(ClientFaultsTest, LocalPutToAStalledNodeReturnsWithinTheTimeout) {
  const std::string socket = TempSocket("stall");
  absl::Cleanup remove_socket = [&] {
    std::error_code ignored;
    std::filesystem::remove(socket, ignored);
  };
  auto node = testing::StartNode({"--huge_page_num=32", "--local_socket=" + socket});
  ASSERT_TRUE(node.ok()) << node.status();
  auto client = Client::Connect({.address = (*node)->Value("LISTENING"),
                                 .timeout = absl::Seconds(1),
                                 .local_socket = socket});
  ASSERT_TRUE(client.ok()) << client.status();
  const std::vector<uint8_t> v = TestValue(1, kBlockBytes);
  ASSERT_TRUE((*client)->Put(TestKey(1), v).ok());

  Stop(**node);  // the node stalls (a long GC-like pause, a stuck thread, a freeze)
  const std::vector<uint8_t> w = TestValue(2, kBlockBytes);
  const absl::Time start = absl::Now();
  auto put = std::async(std::launch::async, [&] { return (*client)->Put(TestKey(2), w); });
  const bool returned = put.wait_for(std::chrono::seconds(5)) == std::future_status::ready;
  const absl::Duration took = absl::Now() - start;
  (*node)->Signal(SIGCONT);  // lets a hung call finish so the test can end
  const absl::Status s = put.get();
  EXPECT_TRUE(returned) << "Put through shared memory did not return within 5 s of a 1 s timeout "
                        << "(it returned " << s << " only after the node was resumed)";
  if (returned) {
    EXPECT_LT(took, absl::Seconds(3)) << s;
  }
}

// 2. A standalone Get from a stalled node should take one timeout. Over gRPC it takes two (after
//    the failure the caller also waits for a Health probe, RecheckSingle); over the bulk
//    channel three (the timed-out call is also retried on a fresh connection, then the probe).
TEST(ClientFaultsTest, BulkGetFromAStalledNodeTakesOneTimeoutNotTwo) {
  auto node = testing::StartNode({"--huge_page_num=32"});
  ASSERT_TRUE(node.ok()) << node.status();
  const absl::Duration timeout = absl::Seconds(2);
  for (bool bulk : {false, true}) {
    auto client = Client::Connect({.address = (*node)->Value("LISTENING"),
                                   .timeout = timeout,
                                   .use_local = false,
                                   .use_bulk = bulk});
    ASSERT_TRUE(client.ok()) << client.status();
    const std::vector<uint8_t> v = TestValue(1, kBlockBytes);
    ASSERT_TRUE((*client)->Put(TestKey(1), v).ok());  // leaves a pooled bulk connection
    std::vector<uint8_t> out(kBlockBytes);
    Stop(**node);
    const absl::Time start = absl::Now();
    auto got = (*client)->Get(TestKey(1), absl::MakeSpan(out));
    const absl::Duration took = absl::Now() - start;
    (*node)->Signal(SIGCONT);
    EXPECT_FALSE(got.ok());
    EXPECT_LT(took, timeout * 1.5)
        << (bulk ? "bulk" : "gRPC") << " Get took " << took << " with a timeout of " << timeout;
    absl::SleepFor(absl::Milliseconds(200));
  }
}

// 2b. And in a cluster the bulk requests are finished one node after the other, so a BatchGet
//     over N stalled nodes takes N x 2 x timeout (the gRPC path waits for all in parallel).
//     (ClusterClient's timeout is 2 s.)
TEST(ClientFaultsTest, ClusterBulkBatchGetOverStalledNodesTakesOneTimeout) {
  auto cluster = testing::Cluster::Start({.nodes = 3});
  ASSERT_TRUE(cluster.ok()) << cluster.status();
  auto client = testing::ClusterClient(**cluster);  // timeout 2 s
  ASSERT_NE(client, nullptr);
  PutAll(*client, 30);
  std::vector<std::vector<uint8_t>> bufs(30, std::vector<uint8_t>(kBlockBytes));
  std::vector<GetItem> items;
  for (int i = 0; i < 30; ++i) items.push_back({TestKey(i), absl::MakeSpan(bufs[i])});
  for (int n = 0; n < 3; ++n) Stop((*cluster)->node(n));
  const absl::Time start = absl::Now();
  auto got = client->BatchGet(items);
  const absl::Duration took = absl::Now() - start;
  for (int n = 0; n < 3; ++n) (*cluster)->node(n).Signal(SIGCONT);
  for (auto& g : got) EXPECT_TRUE(absl::IsNotFound(g.status())) << g.status();
  EXPECT_LT(took, absl::Seconds(4))
      << "BatchGet over 3 stalled nodes with a 2 s timeout took " << took;
}

// 2c. The requests themselves went out one node after the other, each with a whole timeout of
//     its own: a client's first call to a node waits for the node's HELLO answer, and a put
//     larger than the socket buffers waits for the node to read it. A fresh client's BatchGet
//     over N stalled nodes, or a BatchPut of large values, took N timeouts.
// 2d. Stats asked the nodes one after the other (a stalled node cost a timeout each) and, when
//     none could be reached, reported a pool of zeros as OK. Now in parallel; a node that
//     cannot be reached is left out of the sums, and none reached is an error.
TEST(ClientFaultsTest, ClusterStatsLeavesOutStalledNodesAndNoneReachedIsAnError) {
  auto cluster = testing::Cluster::Start({.nodes = 3, .down_after_missed = 100});
  ASSERT_TRUE(cluster.ok()) << cluster.status();
  auto client = testing::ClusterClient(**cluster);  // timeout 2 s
  ASSERT_NE(client, nullptr);
  auto all = client->Stats();
  ASSERT_TRUE(all.ok()) << all.status();
  const uint64_t per_node = all->capacity_bytes() / 3;
  ASSERT_GT(per_node, 0u);

  Stop((*cluster)->node(0));
  auto two = client->Stats();
  ASSERT_TRUE(two.ok()) << two.status();
  EXPECT_EQ(two->capacity_bytes(), 2 * per_node) << "the stalled node is left out";

  Stop((*cluster)->node(1));
  Stop((*cluster)->node(2));
  const absl::Time start = absl::Now();
  auto none = client->Stats();
  const absl::Duration took = absl::Now() - start;
  for (int n = 0; n < 3; ++n) (*cluster)->node(n).Signal(SIGCONT);
  ASSERT_FALSE(none.ok()) << "capacity " << none->capacity_bytes() << " from no node";
  EXPECT_TRUE(absl::IsDeadlineExceeded(none.status()) || absl::IsUnavailable(none.status()))
      << none.status();
  EXPECT_LT(took, absl::Seconds(4)) << "Stats of 3 stalled nodes with a 2 s timeout took " << took;
}

TEST(ClientFaultsTest, ClusterBulkRequestsToStalledNodesTakeOneTimeout) {
  // Stalled for seconds, but never marked DOWN: the clients keep routing to them.
  auto cluster = testing::Cluster::Start({.nodes = 3, .down_after_missed = 100});
  ASSERT_TRUE(cluster.ok()) << cluster.status();
  auto writer = testing::ClusterClient(**cluster);  // timeout 2 s
  ASSERT_NE(writer, nullptr);
  PutAll(*writer, 30);                             // leaves a pooled bulk connection to each node
  auto fresh = testing::ClusterClient(**cluster);  // has no connection to any node yet
  ASSERT_NE(fresh, nullptr);
  constexpr size_t kLarge = 1 << 20;
  constexpr int kLargeBlocks = 120;  // 40 MiB a node: more than its socket buffers take
  std::vector<std::vector<uint8_t>> values;
  std::vector<PutItem> puts;
  for (int i = 0; i < kLargeBlocks; ++i) values.push_back(TestValue(1000 + i, kLarge));
  for (int i = 0; i < kLargeBlocks; ++i) puts.push_back({TestKey(1000 + i), values[i], nullptr});
  std::vector<std::vector<uint8_t>> bufs(30, std::vector<uint8_t>(kBlockBytes));
  std::vector<GetItem> gets;
  for (int i = 0; i < 30; ++i) gets.push_back({TestKey(i), absl::MakeSpan(bufs[i])});

  for (int n = 0; n < 3; ++n) Stop((*cluster)->node(n));
  absl::Time start = absl::Now();
  auto got = fresh->BatchGet(gets);
  const absl::Duration get_took = absl::Now() - start;
  start = absl::Now();
  auto put = writer->BatchPut(puts);
  const absl::Duration put_took = absl::Now() - start;
  for (int n = 0; n < 3; ++n) (*cluster)->node(n).Signal(SIGCONT);
  for (auto& g : got) EXPECT_TRUE(absl::IsNotFound(g.status())) << g.status();
  EXPECT_LT(get_took, absl::Seconds(4))
      << "a new client's BatchGet over 3 stalled nodes with a 2 s timeout took " << get_took;
  EXPECT_LT(put_took, absl::Seconds(4))
      << "a BatchPut of 120 MiB over 3 stalled nodes with a 2 s timeout took " << put_took;
}

// 3. Remove counts copies, not keys: with replication_factor 2 every key counts twice.
TEST(ClientFaultsTest, RemoveReturnsTheNumberOfKeysWithReplication) {
  auto cluster = testing::Cluster::Start({.nodes = 3, .replication_factor = 2});
  ASSERT_TRUE(cluster.ok()) << cluster.status();
  auto client = testing::ClusterClient(**cluster);
  ASSERT_NE(client, nullptr);
  PutAll(*client, 10);
  std::vector<BlockKey> keys;
  for (int i = 0; i < 10; ++i) keys.push_back(TestKey(i));
  auto removed = client->Remove(keys);
  ASSERT_TRUE(removed.ok()) << removed.status();
  EXPECT_EQ(*removed, 10u) << "Remove of 10 stored keys";
  EXPECT_EQ(*client->MatchPrefix(keys), 0u);
}

// 3b. With replication a node that dies loses no block: Get reads each from its replica. A
//     lookup asked only each key's first owner, and until the controller marked the dead one
//     DOWN it matched none of a prompt from the first block that node owned.
TEST(ClientFaultsTest, ALookupFindsTheReplicasOfADeadNodesBlocks) {
  // DOWN only after 20 missed heartbeats (6 s): the client keeps the map naming the dead node.
  auto cluster =
      testing::Cluster::Start({.nodes = 3, .replication_factor = 2, .down_after_missed = 20});
  ASSERT_TRUE(cluster.ok()) << cluster.status();
  auto client = testing::ClusterClient(**cluster);
  ASSERT_NE(client, nullptr);
  constexpr int kBlocks = 60;
  const std::vector<BlockKey> keys = PutPrompt(*client, kBlocks);
  ASSERT_EQ(*client->MatchPrefix(keys), static_cast<size_t>(kBlocks));

  const uint64_t before = client->epoch();
  (*cluster)->node(0).Signal(SIGKILL);
  (*cluster)->node(0).Wait();
  EXPECT_EQ(testing::CountReadable(*client, kBlocks), kBlocks);
  auto matched = client->MatchPrefix(keys);
  ASSERT_EQ(client->epoch(), before) << "node-0 was marked DOWN already: the test proves nothing";
  ASSERT_TRUE(matched.ok()) << matched.status();
  EXPECT_EQ(*matched, static_cast<size_t>(kBlocks)) << "every block is still readable";
}

// 4. A timeout of absl::InfiniteDuration() ("no deadline") overflows the gRPC deadline: the
//    deadline lands in the past and every call fails.
TEST(ClientFaultsTest, AnInfiniteTimeoutMeansNoDeadline) {
  auto node = testing::StartNode({"--huge_page_num=32"});
  ASSERT_TRUE(node.ok()) << node.status();
  auto client = Client::Connect(
      {.address = (*node)->Value("LISTENING"), .timeout = absl::InfiniteDuration()});
  ASSERT_TRUE(client.ok()) << client.status();
  const std::vector<uint8_t> v = TestValue(1, kBlockBytes);
  EXPECT_TRUE((*client)->Put(TestKey(1), v).ok());
  std::vector<uint8_t> out(kBlockBytes);
  auto got = (*client)->Get(TestKey(1), absl::MakeSpan(out));
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(out, v);
  // No timeout at all is a mistake, named (zero meant "fail at once" on gRPC and "wait
  // forever" on the bulk channel).
  for (absl::Duration bad : {absl::ZeroDuration(), absl::Seconds(-1)}) {
    auto refused = Client::Connect({.address = (*node)->Value("LISTENING"), .timeout = bad});
    EXPECT_TRUE(absl::IsInvalidArgument(refused.status())) << refused.status();
    EXPECT_TRUE(absl::StrContains(refused.status().message(), "timeout must be positive"))
        << refused.status();
  }
}

// 5. Connections to nodes that left the map are never dropped: the client keeps a dead node's
//    whole arena mapped (and resident) for its life.
TEST(ClientFaultsTest, TheArenaOfANodeThatLeftTheMapIsUnmapped) {
  auto cluster = testing::Cluster::Start({.nodes = 2, .local_sockets = true});
  ASSERT_TRUE(cluster.ok()) << cluster.status();
  const int before = ArenaMappings();
  auto client = testing::ClusterClient(**cluster);
  ASSERT_NE(client, nullptr);
  PutAll(*client, 64);  // both nodes get blocks: the client maps both arenas
  ASSERT_EQ(ArenaMappings(), before + 2);
  (*cluster)->node(1).Signal(SIGKILL);
  (*cluster)->node(1).Wait();
  // The controller marks it DOWN; the client adopts that map.
  bool down = false;
  for (int i = 0; i < 100 && !down; ++i) {
    absl::SleepFor(absl::Milliseconds(100));
    down = (*cluster)->CountState(v1::DOWN) == 1;
  }
  ASSERT_TRUE(down);
  absl::SleepFor(absl::Seconds(1));  // several map refreshes
  PutAll(*client, 64, 1000);         // the client keeps working with node-0
  EXPECT_EQ(ArenaMappings(), before + 1)
      << "the client still maps the arena of node-1, DOWN and gone";
}

// 6. gRPC batches are not split by bytes: a BatchGet whose values add up to more than the
//    80 MiB message limit fails for every item, though each block is valid and readable.
TEST(ClientFaultsTest, ALargeBatchGetOverGrpcReturnsEveryBlock) {
  auto node = testing::StartNode({"--huge_page_num=96"});  // 192 MiB
  ASSERT_TRUE(node.ok()) << node.status();
  auto client = Client::Connect(
      {.address = (*node)->Value("LISTENING"), .use_local = false, .use_bulk = false});
  ASSERT_TRUE(client.ok()) << client.status();
  constexpr int kBlocks = 48;
  constexpr size_t kSize = 2 << 20;  // 48 x 2 MiB = 96 MiB
  std::vector<std::vector<uint8_t>> values, bufs;
  std::vector<GetItem> items;
  for (int i = 0; i < kBlocks; ++i) values.push_back(TestValue(i, kSize));
  for (int i = 0; i < kBlocks; ++i) {
    ASSERT_TRUE((*client)->Put(TestKey(i), values[i]).ok()) << i;
    bufs.emplace_back(kSize);
  }
  for (int i = 0; i < kBlocks; ++i) items.push_back({TestKey(i), absl::MakeSpan(bufs[i])});
  auto got = (*client)->BatchGet(items);
  int ok = 0;
  for (int i = 0; i < kBlocks; ++i) {
    if (got[i].ok() && bufs[i] == values[i]) ++ok;
  }
  EXPECT_EQ(ok, kBlocks) << "first result: " << got[0].status();
  // And the same for puts.
  std::vector<PutItem> puts;
  for (int i = 0; i < kBlocks; ++i) puts.push_back({TestKey(1000 + i), values[i], nullptr});
  auto put = (*client)->BatchPut(puts);
  EXPECT_TRUE(put[0].ok()) << put[0];
}

// A node on this host that stalls before the client ever used it: the first call to it waits
// for its hello (up to the timeout) while connecting. Calls to other nodes must not wait with
// it: the connection used to be built under the client's one lock, so every call of the
// client, to any node, waited for the stalled node's timeout.
TEST(ClientFaultsTest, ConnectingToAStalledNodeDoesNotHoldUpCallsToOthers) {
  auto cluster = testing::Cluster::Start({.nodes = 2, .local_sockets = true});
  ASSERT_TRUE(cluster.ok()) << cluster.status();
  auto view = (*cluster)->View();
  ASSERT_TRUE(view.ok()) << view.status();
  int on[2] = {-1, -1};  // a key owned by node-0, and one by node-1
  for (int i = 0; on[0] < 0 || on[1] < 0; ++i) {
    const std::string owner = (*view)->WriteOwners(TestKey(i))[0]->id();
    on[owner == "node-0" ? 0 : 1] = i;
  }
  auto client = Client::Connect({.controller = (*cluster)->controller_address(),
                                 .cluster = "test",
                                 .timeout = absl::Seconds(5)});
  ASSERT_TRUE(client.ok()) << client.status();
  const std::vector<uint8_t> v = TestValue(on[0], kBlockBytes);
  ASSERT_TRUE((*client)->Put(TestKey(on[0]), v).ok());  // connects to node-0 only

  Stop((*cluster)->node(1));
  std::vector<uint8_t> stalled_out(kBlockBytes);
  auto stalled = std::async(std::launch::async, [&] {
    return (*client)->Get(TestKey(on[1]), absl::MakeSpan(stalled_out));
  });
  absl::SleepFor(absl::Milliseconds(300));  // the call above is connecting to node-1
  std::vector<uint8_t> out(kBlockBytes);
  const absl::Time start = absl::Now();
  auto got = (*client)->Get(TestKey(on[0]), absl::MakeSpan(out));
  const absl::Duration took = absl::Now() - start;
  (*cluster)->node(1).Signal(SIGCONT);
  stalled.get().status().IgnoreError();  // a miss: the key was never stored
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(out, v);
  EXPECT_LT(took, absl::Seconds(2))
      << "a Get from node-0 waited " << took << " for the client to connect to stalled node-1";
}

// While a node drains (here slowly, as with --migration_mbps), the blocks it has not pushed
// yet are still readable from it, and a lookup must say so: it asked only each key's new
// owner, and matched 1 of 60 blocks that all read back.
TEST(ClientFaultsTest, ALookupWhileANodeDrainsFindsTheBlocksItStillHolds) {
  auto cluster = testing::Cluster::Start({.nodes = 3, .node_flags = {"--migration_mbps=0.001"}});
  ASSERT_TRUE(cluster.ok()) << cluster.status();
  auto client = testing::ClusterClient(**cluster);
  ASSERT_NE(client, nullptr);
  constexpr int kBlocks = 60;
  const std::vector<BlockKey> keys = PutPrompt(*client, kBlocks);
  ASSERT_EQ(*client->MatchPrefix(keys), static_cast<size_t>(kBlocks));

  const uint64_t before = client->epoch();
  ASSERT_TRUE((*cluster)->SetState("node-0", v1::DRAINING).ok());
  for (int i = 0; i < 250 && client->epoch() == before; ++i) absl::SleepFor(absl::Milliseconds(20));
  ASSERT_GT(client->epoch(), before) << "the client never saw the drain";
  EXPECT_EQ(testing::CountReadable(*client, kBlocks), kBlocks);
  auto matched = client->MatchPrefix(keys);
  ASSERT_TRUE(matched.ok()) << matched.status();
  EXPECT_EQ(*matched, static_cast<size_t>(kBlocks)) << "every block is still readable";
  // Exists too: it asked only each key's new owner, and said "absent" of 14 of the 60.
  auto exists = client->Exists(keys);
  ASSERT_TRUE(exists.ok()) << exists.status();
  EXPECT_EQ(std::count(exists->begin(), exists->end(), true), kBlocks)
      << "every block is still readable";
}

// A drained node reports DOWN and leaves only when nothing more can be stored on it: a write
// granted before the drain and sealed after the last pass was sealed on the node after it had
// told the controller it held nothing, its writer was told it was stored, and it went with the
// node.
TEST(ClientFaultsTest, ADrainWaitsForWritesInFlightAndMovesThem) {
  auto cluster = testing::Cluster::Start({.nodes = 2, .local_sockets = true});
  ASSERT_TRUE(cluster.ok()) << cluster.status();
  auto view = (*cluster)->View();
  ASSERT_TRUE(view.ok()) << view.status();
  uint64_t k = 0;
  while (!(*view)->Owns("node-1", TestKey(k))) ++k;

  // A writer on node-1's shared-memory path holds a grant for one of its blocks.
  testing::RawLocal raw((*cluster)->local_socket(1));
  ASSERT_TRUE(raw.ok());
  uint8_t* arena = raw.MapArena();
  ASSERT_NE(arena, nullptr);
  v1::LocalRequest write;
  auto* item = write.mutable_write()->add_items();
  ToProto(TestKey(k), item->mutable_key());
  item->set_size(kBlockBytes);
  v1::LocalResponse granted;
  ASSERT_TRUE(raw.Call(write, &granted));
  ASSERT_EQ(granted.grants(0).code(), 0) << granted.grants(0).message();

  ASSERT_TRUE((*cluster)->SetState("node-1", v1::DRAINING).ok());
  absl::SleepFor(absl::Seconds(2));  // several migration periods: a drain with nothing to move
  const std::vector<uint8_t> value = TestValue(k, kBlockBytes);
  std::memcpy(arena + granted.grants(0).offset(), value.data(), value.size());
  v1::LocalRequest seal;
  seal.mutable_seal()->add_leases(granted.grants(0).lease());
  v1::LocalResponse sealed;
  ASSERT_TRUE(raw.Call(seal, &sealed));
  ASSERT_EQ(sealed.grants(0).code(), 0) << sealed.grants(0).message();

  // The drain ends, and node-1 leaves as its pod would.
  ASSERT_TRUE((*cluster)->WaitForState(v1::DOWN, 1, absl::Seconds(10)))
      << "node-1 never finished its drain";
  (*cluster)->node(1).Signal(SIGTERM);
  (*cluster)->node(1).Wait();
  auto reader = testing::ClusterClient(**cluster);
  ASSERT_NE(reader, nullptr);
  EXPECT_EQ(testing::CountReadable(*reader, static_cast<int>(k) + 1), 1)
      << "the block sealed on node-1 during its drain was lost with it";
}

// A client whose map is older than the node's is refused on every path, so it refreshes and
// puts the block where the current map reads it. The shared-memory path took such writes
// without a question: a client that had not yet seen a drain put blocks into the drained node,
// was told they were stored, and they were gone when the node left (37 of 64 here).
TEST(ClientFaultsTest, ALocalPutUnderAnOlderMapGoesToTheCurrentOwner) {
  auto cluster = testing::Cluster::Start({.nodes = 2, .local_sockets = true});
  ASSERT_TRUE(cluster.ok()) << cluster.status();
  // A writer that has not refreshed its map since before the drain (its next refresh is far off).
  auto writer = Client::Connect({.controller = (*cluster)->controller_address(),
                                 .cluster = "test",
                                 .timeout = absl::Seconds(2),
                                 .map_refresh = absl::Hours(1)});
  ASSERT_TRUE(writer.ok()) << writer.status();
  const uint64_t stale = (*writer)->epoch();
  ASSERT_TRUE((*cluster)->SetState("node-1", v1::DRAINING).ok());
  ASSERT_TRUE((*cluster)->WaitForState(v1::DOWN, 1, absl::Seconds(10)))
      << "node-1 never finished its drain";
  ASSERT_EQ((*writer)->epoch(), stale);

  constexpr int kBlocks = 64;
  PutAll(**writer, kBlocks);
  // Drained and DOWN, node-1 leaves (its pod ends after the preStop drain).
  (*cluster)->node(1).Signal(SIGTERM);
  (*cluster)->node(1).Wait();
  auto reader = testing::ClusterClient(**cluster);
  ASSERT_NE(reader, nullptr);
  EXPECT_EQ(testing::CountReadable(*reader, kBlocks), kBlocks)
      << "blocks put through shared memory under an older map were lost with the drained node";
}

}  // namespace
}  // namespace ems
