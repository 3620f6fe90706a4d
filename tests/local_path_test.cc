// The same-machine shared-memory path against a real ems-node process.
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <memory>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/time/clock.h"
#include "client/client.h"
#include "client/local_channel.h"
#include "common/key_proto.h"
#include "ems/v1/data.pb.h"
#include "gtest/gtest.h"
#include "testing/blocks.h"
#include "testing/local_raw.h"
#include "testing/process.h"

namespace ems {
namespace {

using testing::TestKey;
using testing::TestValue;

class LocalPathTest : public ::testing::Test {
 protected:
  void SetUp() override {
    socket_ = (std::filesystem::temp_directory_path() /
               ("ems-local-" + std::to_string(getpid()) + ".sock"))
                  .string();
    auto node = testing::StartNode({"--huge_page_num=32", "--local_socket=" + socket_});
    ASSERT_TRUE(node.ok()) << node.status();
    node_ = *std::move(node);
    auto remote = Client::Connect({.address = node_->Value("LISTENING"), .use_local = false});
    ASSERT_TRUE(remote.ok());
    remote_ = *std::move(remote);
  }

  // The node is SIGKILLed when the test ends, so it never removes its socket itself.
  void TearDown() override {
    std::error_code ignored;
    std::filesystem::remove(socket_, ignored);
  }

  v1::StatsResponse Stats() { return *remote_->Stats(); }

  // Waits (bounded) until `pred` holds for the node's stats.
  template <typename Pred>
  bool WaitForStats(Pred pred) {
    for (int i = 0; i < 500; ++i) {
      if (pred(Stats())) return true;
      absl::SleepFor(absl::Milliseconds(10));
    }
    return false;
  }

 public:
  // Kills the node and starts another on the same socket and port: a new arena behind the
  // same addresses, as when a DaemonSet pod restarts. remote_ is connected to the new one.
  void RestartOnTheSameSocket() {
    const std::string address = node_->Value("LISTENING");
    node_->Signal(SIGKILL);
    node_->Wait();
    auto again = testing::StartNode(
        {"--huge_page_num=32", "--local_socket=" + socket_, "--listen=" + address});
    ASSERT_TRUE(again.ok()) << again.status();
    node_ = *std::move(again);
    auto remote = Client::Connect({.address = address, .use_local = false});
    ASSERT_TRUE(remote.ok()) << remote.status();
    remote_ = *std::move(remote);
  }
  Client& remote() { return *remote_; }

 protected:
  std::string socket_;
  std::unique_ptr<testing::Process> node_;
  std::unique_ptr<Client> remote_;
};

TEST_F(LocalPathTest, RoundTripsAtEverySizeThroughSharedMemory) {
  auto local = client::LocalChannel::Connect({socket_, /*verify_checksums=*/true});
  ASSERT_TRUE(local.ok()) << local.status();
  EXPECT_EQ((*local)->arena_bytes(), 64u << 20);
  const size_t sizes[] = {1, 4096, 64 << 10, 256 << 10, 2 << 20, 8 << 20};
  for (size_t k = 0; k < std::size(sizes); ++k) {
    const auto value = TestValue(k, sizes[k]);
    ASSERT_TRUE((*local)->Put(TestKey(k), value).ok()) << sizes[k];
    std::vector<uint8_t> out(sizes[k]);
    auto n = (*local)->Get(TestKey(k), absl::MakeSpan(out));
    ASSERT_TRUE(n.ok()) << n.status();
    ASSERT_EQ(out, value);
    // And the remote path sees the same bytes.
    std::vector<uint8_t> remote_out(sizes[k]);
    ASSERT_TRUE(remote_->Get(TestKey(k), absl::MakeSpan(remote_out)).ok());
    ASSERT_EQ(remote_out, value);
  }
  EXPECT_EQ(*(*local)->MatchPrefix({TestKey(0), TestKey(1), TestKey(77)}), 2u);
}

TEST_F(LocalPathTest, LookupsAndReadsGoThroughTheDirectoryWithoutARoundTrip) {
  for (uint64_t k = 300; k < 320; ++k) {
    ASSERT_TRUE(remote_->Put(TestKey(k), TestValue(k, (256 << 10) + k)).ok());
  }
  auto local = client::LocalChannel::Connect({socket_, /*verify_checksums=*/true});
  ASSERT_TRUE(local.ok()) << local.status();
  ASSERT_TRUE((*local)->has_directory());
  const v1::StatsResponse before = Stats();
  std::vector<BlockKey> prompt;
  for (uint64_t k = 300; k < 320; ++k) prompt.push_back(TestKey(k));
  prompt.push_back(TestKey(399));
  prompt.push_back(TestKey(300));  // after the first miss: not counted
  EXPECT_EQ(*(*local)->MatchPrefix(prompt), 20u);
  std::vector<std::vector<uint8_t>> bufs(21, std::vector<uint8_t>(300 << 10));
  std::vector<absl::Span<uint8_t>> spans;
  for (auto& b : bufs) spans.push_back(absl::MakeSpan(b));
  auto got = (*local)->BatchGet(absl::MakeConstSpan(prompt).first(21), spans);
  for (uint64_t k = 300; k < 320; ++k) {
    const auto want = TestValue(k, (256 << 10) + k);
    ASSERT_TRUE(got[k - 300].ok()) << got[k - 300].status();
    ASSERT_EQ(*got[k - 300], want.size());
    EXPECT_TRUE(std::equal(want.begin(), want.end(), bufs[k - 300].begin())) << k;
  }
  EXPECT_TRUE(absl::IsNotFound(got[20].status())) << got[20].status();
  const auto c = (*local)->counters();
  EXPECT_EQ(c.round_trips, 0u) << "the node was asked";
  EXPECT_EQ(c.directory_reads, 21u);
  EXPECT_EQ(c.leased_reads, 0u);
  // The node learns of the reads from the report that follows them.
  EXPECT_TRUE(WaitForStats([&](const v1::StatsResponse& s) {
    return s.hit_count() - before.hit_count() == 20 && s.miss_count() - before.miss_count() == 1;
  })) << Stats().hit_count() - before.hit_count()
      << " hits reported";
  // A buffer too small is reported like the leased path does, without touching the buffer's end.
  std::vector<uint8_t> small(1000, 0xab);
  auto short_read = (*local)->Get(TestKey(300), absl::MakeSpan(small).first(999));
  EXPECT_TRUE(absl::IsOutOfRange(short_read.status())) << short_read.status();
  EXPECT_EQ(small[999], 0xab);
}

// A long prompt's blocks read in one batch through the directory are all reported to the node.
// The report went out as one socket message, and a SOCK_SEQPACKET message larger than the
// sender's buffer (208 KiB by default) is refused whole: the node saw none of these 4,096
// reads, and its eviction policy took the prompt's blocks for cold.
TEST_F(LocalPathTest, EveryReadOfALargeBatchThroughTheDirectoryIsReported) {
  const std::string ns = "tenant-0042/meta-llama/Llama-3.1-70B-Instruct/kv-bf16/tp8-pp1/block16/v2";
  constexpr int kBlocks = 4096;  // a 64k-token prompt in blocks of 16 tokens
  constexpr size_t kSize = 4096;
  auto local = client::LocalChannel::Connect({socket_, /*verify_checksums=*/true});
  ASSERT_TRUE(local.ok()) << local.status();
  ASSERT_TRUE((*local)->has_directory());
  std::vector<BlockKey> keys;
  std::vector<std::vector<uint8_t>> values;
  std::vector<client::LocalPutItem> items;
  for (int k = 0; k < kBlocks; ++k) {
    keys.push_back(TestKey(k, ns));
    values.push_back(TestValue(k, kSize));
  }
  for (int k = 0; k < kBlocks; ++k) items.push_back({keys[k], values[k]});
  for (const absl::Status& s : (*local)->BatchPut(items)) ASSERT_TRUE(s.ok()) << s;
  const uint64_t hits = Stats().hit_count();

  std::vector<std::vector<uint8_t>> bufs(kBlocks, std::vector<uint8_t>(kSize));
  std::vector<absl::Span<uint8_t>> spans;
  for (auto& b : bufs) spans.push_back(absl::MakeSpan(b));
  auto got = (*local)->BatchGet(keys, spans);
  for (int k = 0; k < kBlocks; ++k) {
    ASSERT_TRUE(got[k].ok()) << k << ": " << got[k].status();
    ASSERT_EQ(bufs[k], values[k]) << k;
  }
  EXPECT_EQ((*local)->counters().directory_reads, static_cast<uint64_t>(kBlocks));
  EXPECT_TRUE(WaitForStats([&](const v1::StatsResponse& s) {
    return s.hit_count() - hits == static_cast<uint64_t>(kBlocks);
  })) << Stats().hit_count() - hits
      << " of " << kBlocks << " reads reported";
}

TEST_F(LocalPathTest, WithoutTheDirectoryEveryReadAsksTheNode) {
  ASSERT_TRUE(remote_->Put(TestKey(330), TestValue(330, 8192)).ok());
  auto local = client::LocalChannel::Connect(
      {.socket_path = socket_, .verify_checksums = true, .use_directory = false});
  ASSERT_TRUE(local.ok());
  EXPECT_FALSE((*local)->has_directory());
  std::vector<uint8_t> out(8192);
  ASSERT_TRUE((*local)->Get(TestKey(330), absl::MakeSpan(out)).ok());
  EXPECT_EQ(out, TestValue(330, 8192));
  EXPECT_EQ(*(*local)->MatchPrefix({TestKey(330), TestKey(331)}), 1u);
  EXPECT_EQ((*local)->counters().round_trips, 2u);
  EXPECT_EQ((*local)->counters().leased_reads, 1u);
}

TEST_F(LocalPathTest, ReadsThroughTheDirectoryKeepBlocksRecentForEviction) {
  // 64 MiB node: 28 blocks of 2 MiB stay under the 95% watermark.
  for (uint64_t k = 0; k < 28; ++k)
    ASSERT_TRUE(remote_->Put(TestKey(k), TestValue(k, 2 << 20)).ok());
  auto local = client::LocalChannel::Connect({socket_, false});
  ASSERT_TRUE(local.ok());
  const uint64_t hits = Stats().hit_count();
  std::vector<uint8_t> out(2 << 20);
  ASSERT_TRUE((*local)->Get(TestKey(0), absl::MakeSpan(out)).ok());  // the oldest block
  ASSERT_EQ((*local)->counters().directory_reads, 1u);
  ASSERT_TRUE(WaitForStats([&](const v1::StatsResponse& s) { return s.hit_count() > hits; }));
  for (uint64_t k = 100; k < 104; ++k) {
    ASSERT_TRUE(remote_->Put(TestKey(k), TestValue(k, 2 << 20)).ok());
  }
  ASSERT_GT(Stats().evictions(), 0u);
  EXPECT_EQ(*remote_->MatchPrefix({TestKey(0)}), 1u) << "read through the directory: kept";
  EXPECT_EQ(*remote_->MatchPrefix({TestKey(1)}), 0u) << "the least recent goes first";
  EXPECT_EQ(*(*local)->MatchPrefix({TestKey(1)}), 0u) << "and leaves the directory with it";
}

TEST_F(LocalPathTest, AClientsUnreportedReadsReachTheNodeAheadOfItsNextWrite) {
  for (uint64_t k = 0; k < 28; ++k)
    ASSERT_TRUE(remote_->Put(TestKey(k), TestValue(k, 2 << 20)).ok());
  auto local = client::LocalChannel::Connect({socket_, false});
  ASSERT_TRUE(local.ok());
  std::vector<uint8_t> out(2 << 20);
  ASSERT_TRUE((*local)->Get(TestKey(0), absl::MakeSpan(out)).ok());  // the oldest block
  // At once, well inside the report delay: the write itself carries the read.
  std::vector<std::vector<uint8_t>> values;
  std::vector<client::LocalPutItem> items;
  for (uint64_t k = 100; k < 104; ++k) values.push_back(TestValue(k, 2 << 20));
  for (uint64_t k = 100; k < 104; ++k) items.push_back({TestKey(k), values[k - 100]});
  for (const absl::Status& s : (*local)->BatchPut(items)) ASSERT_TRUE(s.ok()) << s;
  ASSERT_GT(Stats().evictions(), 0u);
  EXPECT_EQ(*remote_->MatchPrefix({TestKey(0)}), 1u) << "its read was not counted before eviction";
  EXPECT_EQ(*remote_->MatchPrefix({TestKey(1)}), 0u);
}

TEST_F(LocalPathTest, ADeadNodesDirectoryIsNeverTrusted) {
  ASSERT_TRUE(remote_->Put(TestKey(60), TestValue(60, 8192)).ok());
  auto local = client::LocalChannel::Connect({socket_, false});
  ASSERT_TRUE(local.ok());
  std::vector<uint8_t> out(8192);
  ASSERT_TRUE((*local)->Get(TestKey(60), absl::MakeSpan(out)).ok());
  ASSERT_TRUE((*local)->node_alive());
  node_->Signal(SIGKILL);
  node_->Wait(absl::Seconds(10));
  // The mapping outlives the node; what it says must not be served as the node's answer.
  for (int i = 0; i < 500 && (*local)->node_alive(); ++i) absl::SleepFor(absl::Milliseconds(10));
  ASSERT_FALSE((*local)->node_alive());
  EXPECT_FALSE((*local)->Contains(TestKey(60)).has_value());
  auto got = (*local)->Get(TestKey(60), absl::MakeSpan(out));
  EXPECT_TRUE(absl::IsUnavailable(got.status())) << got.status();
  EXPECT_FALSE((*local)->MatchPrefix({TestKey(60)}).ok());
}

TEST_F(LocalPathTest, ASocketAnotherNodeServesIsNeitherTakenOverNorRemoved) {
  // Start unlinked whatever was at the path, so a second node given this socket took it over
  // (new local clients reached its arena, not this node's), and a node that stopped unlinked
  // the path even when another node served it by then, whose local clients could no longer
  // connect at all.
  auto second = testing::StartNode({"--huge_page_num=16", "--local_socket=" + socket_});
  EXPECT_FALSE(second.ok()) << "a second node took over the socket " << socket_;
  {
    auto local = client::LocalChannel::Connect({socket_, /*verify_checksums=*/true});
    ASSERT_TRUE(local.ok()) << local.status();
    EXPECT_EQ((*local)->arena_bytes(), 64u << 20) << "the socket leads to another node's arena";
  }
  // A successor that serves the path before this node is gone (here: the path was moved
  // aside) keeps it when this node stops.
  if (second.ok()) second->reset();  // SIGKILL: its socket file stays behind
  const std::string aside = socket_ + ".old";
  ASSERT_EQ(rename(socket_.c_str(), aside.c_str()), 0);
  auto successor = testing::StartNode({"--huge_page_num=16", "--local_socket=" + socket_});
  ASSERT_TRUE(successor.ok()) << successor.status();
  ASSERT_TRUE(node_->Signal(SIGTERM));
  EXPECT_EQ(node_->Wait(), 0);
  unlink(aside.c_str());
  auto local = client::LocalChannel::Connect({socket_, /*verify_checksums=*/true});
  ASSERT_TRUE(local.ok()) << "the stopped node removed its successor's socket: " << local.status();
  EXPECT_EQ((*local)->arena_bytes(), 32u << 20);
}

TEST_F(LocalPathTest, ClientUsesTheLocalSocketWhenGivenOne) {
  auto c = Client::Connect({.address = node_->Value("LISTENING"), .local_socket = socket_});
  ASSERT_TRUE(c.ok());
  const auto value = TestValue(5, 1 << 20);
  ASSERT_TRUE((*c)->Put(TestKey(5), value).ok());
  std::vector<uint8_t> out(value.size());
  ASSERT_TRUE((*c)->Get(TestKey(5), absl::MakeSpan(out)).ok());
  EXPECT_EQ(out, value);
}

// Hands the socket of `raw` to a child process that does nothing but hold it, closes this
// process's copy, and SIGKILLs the child: the node sees exactly what a client killed while
// holding leases looks like. The child runs no library code after fork.
void KillHolderOf(testing::RawLocal& raw) {
  pid_t pid = fork();
  if (pid == 0) {
    for (;;) pause();
  }
  raw.CloseLocalCopy();
  kill(pid, SIGKILL);
  waitpid(pid, nullptr, 0);
}

TEST_F(LocalPathTest, ClientKilledMidWriteLeaksNothing) {
  const uint64_t baseline = Stats().used_bytes();
  testing::RawLocal raw(socket_);
  ASSERT_TRUE(raw.ok());
  v1::LocalRequest req;
  auto* w = req.mutable_write()->add_items();
  ToProto(TestKey(42), w->mutable_key());
  w->set_size(4 << 20);
  v1::LocalResponse resp;
  ASSERT_TRUE(raw.Call(req, &resp));
  ASSERT_EQ(resp.grants(0).code(), 0) << resp.grants(0).message();
  EXPECT_EQ(Stats().unsealed_blocks(), 1u);
  KillHolderOf(raw);  // dies holding the write lease, before sealing
  EXPECT_TRUE(WaitForStats([&](const v1::StatsResponse& s) {
    return s.used_bytes() == baseline && s.unsealed_blocks() == 0;
  })) << "used "
      << Stats().used_bytes() << " vs baseline " << baseline;
  EXPECT_GE(Stats().reclaimed_writes(), 1u);
  // The key is free for a real writer.
  EXPECT_TRUE(remote_->Put(TestKey(42), TestValue(42, 4 << 20)).ok());
}

TEST_F(LocalPathTest, AStalledClientNeverWritesIntoAnotherBlock) {
  // A client holding a grant can be stopped for any time (paused, swapping) and then copy
  // into it: the space must still be its own. With a deadline on the lease (30 s by default,
  // here asked for 200 ms), the node freed the space, gave it to other blocks, and the client
  // wrote over them.
  testing::RawLocal raw(socket_);
  ASSERT_TRUE(raw.ok());
  uint8_t* arena = raw.MapArena();
  ASSERT_NE(arena, nullptr);
  constexpr size_t kStalled = 1 << 20, kOther = 2 << 20;
  v1::LocalRequest write;
  write.mutable_write()->set_lease_ms(200);
  auto* item = write.mutable_write()->add_items();
  ToProto(TestKey(500), item->mutable_key());
  item->set_size(kStalled);
  v1::LocalResponse granted;
  ASSERT_TRUE(raw.Call(write, &granted));
  ASSERT_EQ(granted.grants(0).code(), 0) << granted.grants(0).message();

  absl::SleepFor(absl::Milliseconds(1500));  // the client stalls past the lease it asked for
  constexpr int kOthers = 60;                // 120 MiB through a 64 MiB arena: space is reused
  for (int k = 600; k < 600 + kOthers; ++k) {
    ASSERT_TRUE(remote_->Put(TestKey(k), TestValue(k, kOther)).ok()) << k;
  }
  const std::vector<uint8_t> mine = TestValue(500, kStalled);  // and now it copies
  std::memcpy(arena + granted.grants(0).offset(), mine.data(), kStalled);
  v1::LocalRequest seal;
  seal.mutable_seal()->add_leases(granted.grants(0).lease());
  v1::LocalResponse sealed;
  ASSERT_TRUE(raw.Call(seal, &sealed));
  EXPECT_EQ(sealed.grants(0).code(), 0) << sealed.grants(0).message();

  std::vector<uint8_t> out(kOther);
  auto got = remote_->Get(TestKey(500), absl::MakeSpan(out));
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_TRUE(std::equal(mine.begin(), mine.end(), out.begin()));
  int intact = 0;
  for (int k = 600; k < 600 + kOthers; ++k) {
    auto other = remote_->Get(TestKey(k), absl::MakeSpan(out));
    if (absl::IsNotFound(other.status())) continue;  // evicted
    ASSERT_TRUE(other.ok()) << k << ": " << other.status();
    ASSERT_EQ(out, TestValue(k, kOther)) << "block " << k << " was written over";
    ++intact;
  }
  EXPECT_GT(intact, 10);
}

TEST_F(LocalPathTest, ClientKilledMidReadLeaksNothing) {
  ASSERT_TRUE(remote_->Put(TestKey(7), TestValue(7, 2 << 20)).ok());
  const uint64_t with_block = Stats().used_bytes();
  testing::RawLocal raw(socket_);
  ASSERT_TRUE(raw.ok());
  v1::LocalRequest req;
  ToProto(TestKey(7), req.mutable_read()->add_keys());
  v1::LocalResponse resp;
  ASSERT_TRUE(raw.Call(req, &resp));
  ASSERT_EQ(resp.grants(0).code(), 0);
  ASSERT_TRUE(remote_->Remove({TestKey(7)}).ok());
  EXPECT_EQ(Stats().used_bytes(), with_block) << "pinned: hidden but not yet freed";
  KillHolderOf(raw);  // dies holding the read pin
  EXPECT_TRUE(WaitForStats([&](const v1::StatsResponse& s) {
    return s.used_bytes() == with_block - (2 << 20) && s.pinned_blocks() == 0;
  })) << "the dead reader's pin was never dropped";
}

TEST_F(LocalPathTest, AConnectionCannotTouchLeasesItWasNotGranted) {
  testing::RawLocal a(socket_), b(socket_);
  ASSERT_TRUE(a.ok() && b.ok());
  v1::LocalRequest req;
  auto* w = req.mutable_write()->add_items();
  ToProto(TestKey(9), w->mutable_key());
  w->set_size(8192);
  v1::LocalResponse granted;
  ASSERT_TRUE(a.Call(req, &granted));
  ASSERT_EQ(granted.grants(0).code(), 0);
  const uint64_t lease = granted.grants(0).lease();

  for (bool seal : {true, false}) {
    v1::LocalRequest steal;
    if (seal) {
      steal.mutable_seal()->add_leases(lease);
    } else {
      steal.mutable_release()->add_leases(lease);
    }
    v1::LocalResponse resp;
    ASSERT_TRUE(b.Call(steal, &resp));
    EXPECT_EQ(resp.grants(0).code(), static_cast<int>(absl::StatusCode::kNotFound));
    EXPECT_TRUE(absl::StrContains(resp.grants(0).message(), "not granted on this connection"));
  }
  EXPECT_FALSE(*remote_->MatchPrefix({TestKey(9)})) << "nobody sealed it";
}

TEST_F(LocalPathTest, PeersThatNeverSpeakDoNotHoldTheSocket) {
  // A client that said hello may then idle as long as it likes (clients pool connections).
  testing::RawLocal idle(socket_);
  v1::LocalRequest hello;
  hello.mutable_hello();
  v1::LocalResponse welcome;
  ASSERT_TRUE(idle.Call(hello, &welcome)) << "the node answers a hello";
  // Peers that connect and say nothing take every other slot of the node's 256.
  std::vector<std::unique_ptr<testing::RawLocal>> silent;
  for (int i = 0; i < 255; ++i) {
    silent.push_back(std::make_unique<testing::RawLocal>(socket_));
    ASSERT_TRUE(silent.back()->ok()) << "connection " << i;
  }
  // A new client gets in once the silent peers' wait for a first request ran out; before,
  // each new connection was refused for as long as they stayed.
  bool served = false;
  for (const absl::Time give_up = absl::Now() + absl::Seconds(20);
       !served && absl::Now() < give_up;) {
    testing::RawLocal fresh(socket_);
    v1::LocalResponse resp;
    served = fresh.ok() && fresh.Send(hello) && fresh.Receive(&resp, nullptr, 1000) &&
             resp.code() == 0 && resp.arena_bytes() > 0;
    if (!served) absl::SleepFor(absl::Milliseconds(200));
  }
  EXPECT_TRUE(served) << "255 silent peers shut a client out of the local socket";
  EXPECT_EQ(recv(silent.front()->fd(), nullptr, 0, MSG_DONTWAIT), 0)
      << "the node closed a silent peer";

  // The client that said hello first idled through the same wait and is still served.
  v1::LocalRequest match;
  ToProto(TestKey(1), match.mutable_match_prefix()->add_keys());
  v1::LocalResponse matched;
  ASSERT_TRUE(idle.Call(match, &matched)) << "an admitted connection idled past the wait";
  EXPECT_EQ(matched.code(), 0) << matched.message();
  EXPECT_EQ(matched.matched(), 0u);
}

TEST_F(LocalPathTest, ConcurrentReadersWhileEvictionRunsSeeOnlyWholeBlocks) {
  auto local = client::LocalChannel::Connect({socket_, false});
  ASSERT_TRUE(local.ok());
  std::atomic<bool> stop{false};
  std::atomic<int> verified{0}, wrong{0};
  std::atomic<int> written{-1};  // the last block put
  std::thread writer([&] {
    for (int i = 0; i < 200 && !stop; ++i) {  // 200 MiB through a 64 MiB pool
      (*local)->Put(TestKey(1000 + i), TestValue(1000 + i, 1 << 20)).IgnoreError();
      written = i;
    }
    stop = true;
  });
  std::vector<std::thread> readers;
  for (int t = 0; t < 3; ++t) {
    readers.emplace_back([&, t] {
      std::vector<uint8_t> out(1 << 20);
      // Blocks from just written to about to be evicted (the pool holds about 60), whatever
      // the relative speed of writer and readers (a sanitizer build slows them unevenly).
      for (int k = t; !stop; k = (k + 7) % 64) {
        const int i = written.load() - k;
        if (i < 0) {
          std::this_thread::yield();
          continue;
        }
        auto n = (*local)->Get(TestKey(1000 + i), absl::MakeSpan(out));
        if (!n.ok()) continue;
        if (out == TestValue(1000 + i, 1 << 20)) {
          ++verified;
        } else {
          ++wrong;
        }
      }
    });
  }
  writer.join();
  for (auto& r : readers) r.join();
  EXPECT_EQ(wrong.load(), 0);
  EXPECT_GT(verified.load(), 0);
  EXPECT_GT(Stats().evictions(), 0u);
  EXPECT_GT((*local)->counters().directory_reads, 0u) << "reads raced eviction unchecked";
}

TEST_F(LocalPathTest, ConcurrentCallsShareABoundedPoolOfConnectionsAndDropEveryPin) {
  auto local = client::LocalChannel::Connect(
      {.socket_path = socket_, .verify_checksums = true, .max_connections = 3});
  ASSERT_TRUE(local.ok()) << local.status();
  std::atomic<int> verified{0}, wrong{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&, t] {
      std::vector<uint8_t> out(256 << 10);
      for (int i = 0; i < 20; ++i) {
        const uint64_t k = 2000 + t * 100 + i;
        const auto value = TestValue(k, 256 << 10);
        if (!(*local)->Put(TestKey(k), value).ok()) continue;
        auto n = (*local)->Get(TestKey(k), absl::MakeSpan(out));
        (n.ok() && *n == value.size() && out == value ? verified : wrong)++;
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(wrong.load(), 0);
  EXPECT_EQ(verified.load(), 160);  // 40 MiB fits the 64 MiB pool: nothing evicted
  EXPECT_GE((*local)->open_connections(), 1);
  EXPECT_LE((*local)->open_connections(), 3);
  // Reads release their pins without waiting for an answer; the node still drops every one.
  EXPECT_TRUE(WaitForStats([](const v1::StatsResponse& s) { return s.pinned_blocks() == 0; }))
      << Stats().pinned_blocks() << " blocks still pinned";
}

TEST_F(LocalPathTest, AReleaseAskingForNoReplyGetsNoneAndTheNextCallIsAnsweredInOrder) {
  ASSERT_TRUE(remote_->Put(TestKey(11), TestValue(11, 4096)).ok());
  testing::RawLocal raw(socket_);
  ASSERT_TRUE(raw.ok());
  v1::LocalRequest read;
  ToProto(TestKey(11), read.mutable_read()->add_keys());
  v1::LocalResponse granted;
  ASSERT_TRUE(raw.Call(read, &granted));
  ASSERT_EQ(granted.grants(0).code(), 0);
  EXPECT_EQ(Stats().pinned_blocks(), 1u);
  v1::LocalRequest release;
  release.set_id(41);
  release.mutable_release()->add_leases(granted.grants(0).lease());
  release.mutable_release()->set_no_reply(true);
  ASSERT_TRUE(raw.Send(release));
  // The next answer on the connection is the next request's, not the release's.
  v1::LocalRequest match;
  match.set_id(42);
  ToProto(TestKey(11), match.mutable_match_prefix()->add_keys());
  v1::LocalResponse matched;
  ASSERT_TRUE(raw.Call(match, &matched));
  EXPECT_EQ(matched.id(), 42u);
  EXPECT_EQ(matched.matched(), 1u);
  EXPECT_EQ(Stats().pinned_blocks(), 0u) << "the release came before the match on one socket";
}

TEST_F(LocalPathTest, PutsOfNewBlocksTakeOneRoundTripIntoBlanksGrantedAhead) {
  auto local = client::LocalChannel::Connect(
      {.socket_path = socket_, .verify_checksums = true, .max_connections = 1});
  ASSERT_TRUE(local.ok()) << local.status();
  constexpr size_t kSize = 256 << 10;  // the 64 MiB arena's share per connection: 4 blanks
  // The first put asks for its block, seals it and, with the seal, blanks for the next ones.
  ASSERT_TRUE((*local)->Put(TestKey(500), TestValue(500, kSize)).ok());
  EXPECT_EQ((*local)->counters().round_trips, 2u);
  EXPECT_EQ(Stats().blank_blocks(), 4u);
  for (uint64_t k = 501; k <= 540; ++k) {  // then one round trip each, topping the blanks up
    const BlockKey parent = TestKey(k - 1);
    ASSERT_TRUE((*local)->Put(TestKey(k), TestValue(k, kSize), &parent).ok()) << k;
  }
  EXPECT_EQ((*local)->counters().round_trips, 2u + 40u);
  EXPECT_EQ((*local)->counters().blank_puts, 40u);
  // A batch larger than the blanks held goes the long way.
  std::vector<std::vector<uint8_t>> values;
  std::vector<client::LocalPutItem> batch;
  for (uint64_t k = 541; k <= 546; ++k) values.push_back(TestValue(k, kSize));
  for (uint64_t k = 541; k <= 546; ++k) batch.push_back({TestKey(k), values[k - 541]});
  for (const absl::Status& s : (*local)->BatchPut(batch)) ASSERT_TRUE(s.ok()) << s;
  EXPECT_EQ((*local)->counters().round_trips, 2u + 40u + 2u);
  // Every block reads back whole, through shared memory and remotely.
  std::vector<uint8_t> out(kSize);
  for (uint64_t k = 500; k <= 546; ++k) {
    auto n = (*local)->Get(TestKey(k), absl::MakeSpan(out));
    ASSERT_TRUE(n.ok()) << k << ": " << n.status();
    ASSERT_EQ(out, TestValue(k, kSize)) << k;
    ASSERT_TRUE(remote_->Get(TestKey(k), absl::MakeSpan(out)).ok());
    ASSERT_EQ(out, TestValue(k, kSize)) << k;
  }
  auto s = Stats();
  EXPECT_EQ(s.keys(), 47u);
  EXPECT_EQ(s.blank_blocks(), 4u);
  EXPECT_EQ(s.used_bytes(), (47u + 4u) * kSize) << "the blanks hold their space";
  // A block of another size gives the blanks back and takes new ones of its size.
  ASSERT_TRUE((*local)->Put(TestKey(600), TestValue(600, 64 << 10)).ok());
  EXPECT_TRUE(WaitForStats([](const v1::StatsResponse& st) {
    return st.blank_blocks() == 16 && st.used_bytes() == 47u * (256 << 10) + 17u * (64 << 10);
  })) << Stats().blank_blocks()
      << " blanks, " << Stats().used_bytes() << " bytes used";
  // The client going away gives every blank back.
  local->reset();
  EXPECT_TRUE(WaitForStats([](const v1::StatsResponse& st) {
    return st.blank_blocks() == 0 && st.used_bytes() == 47u * (256 << 10) + (64 << 10);
  })) << Stats().blank_blocks()
      << " blanks still held";
}

// Blanks are arena space held for a connection's next puts; a client that stops putting gives
// them back. They were given back only at that connection's next put, so an idle client (and
// every connection a burst of parallel puts opened) held its share of the arena for good:
// still 4 blanks and 1 MiB here after 20 s.
TEST_F(LocalPathTest, BlanksAnIdleClientHoldsAreGivenBack) {
  auto local = client::LocalChannel::Connect({.socket_path = socket_, .max_connections = 1});
  ASSERT_TRUE(local.ok()) << local.status();
  constexpr size_t kSize = 256 << 10;  // the 64 MiB arena's share per connection: 4 blanks
  ASSERT_TRUE((*local)->Put(TestKey(800), TestValue(800, kSize)).ok());
  ASSERT_EQ(Stats().blank_blocks(), 4u);
  // Idle past the 10 s a blank is kept unused, then given back within a few seconds more.
  const absl::Time deadline = absl::Now() + absl::Seconds(20);
  while (absl::Now() < deadline && Stats().blank_blocks() > 0) {
    absl::SleepFor(absl::Milliseconds(200));
  }
  auto s = Stats();
  EXPECT_EQ(s.blank_blocks(), 0u);
  EXPECT_EQ(s.used_bytes(), kSize) << "only the stored block holds space";
  // The channel goes on putting (into new blanks) and every block reads back.
  for (uint64_t k = 801; k <= 804; ++k) {
    ASSERT_TRUE((*local)->Put(TestKey(k), TestValue(k, kSize)).ok()) << k;
  }
  std::vector<uint8_t> out(kSize);
  for (uint64_t k = 800; k <= 804; ++k) {
    ASSERT_TRUE(remote_->Get(TestKey(k), absl::MakeSpan(out)).ok()) << k;
    ASSERT_EQ(out, TestValue(k, kSize)) << k;
  }
}

TEST_F(LocalPathTest, ABlockAlreadyStoredIsNotCopiedIntoABlankAndABlankForOneIsGivenBack) {
  auto local = client::LocalChannel::Connect({.socket_path = socket_, .max_connections = 1});
  ASSERT_TRUE(local.ok());
  constexpr size_t kSize = 64 << 10;
  ASSERT_TRUE((*local)->Put(TestKey(700), TestValue(700, kSize)).ok());
  const uint64_t trips = (*local)->counters().round_trips;
  // The directory says it is stored: the long way, which answers `existed` before any copy.
  ASSERT_TRUE((*local)->Put(TestKey(700), TestValue(700, kSize)).ok());
  EXPECT_EQ((*local)->counters().round_trips, trips + 1);
  EXPECT_EQ((*local)->counters().blank_puts, 0u);
  // Stored by someone else since the directory was read: the blank is sealed as `existed` and
  // freed, and the stored bytes are kept.
  ASSERT_TRUE(remote_->Put(TestKey(701), TestValue(701, kSize)).ok());
  testing::RawLocal raw(socket_);
  ASSERT_TRUE(raw.ok());
  v1::LocalRequest ask;
  ask.mutable_seal()->set_blanks(1);
  ask.mutable_seal()->set_blank_size(kSize);
  v1::LocalResponse granted;
  ASSERT_TRUE(raw.Call(ask, &granted));
  ASSERT_EQ(granted.blanks_size(), 1);
  const uint64_t held = Stats().blank_blocks();
  v1::LocalRequest bind;
  bind.mutable_seal()->add_leases(granted.blanks(0).lease());
  ToProto(TestKey(701), bind.mutable_seal()->add_keys()->mutable_key());
  v1::LocalResponse bound;
  ASSERT_TRUE(raw.Call(bind, &bound));
  EXPECT_EQ(bound.grants(0).code(), 0) << bound.grants(0).message();
  EXPECT_TRUE(bound.grants(0).existed());
  EXPECT_EQ(Stats().blank_blocks(), held - 1);
  std::vector<uint8_t> out(kSize);
  ASSERT_TRUE(remote_->Get(TestKey(701), absl::MakeSpan(out)).ok());
  EXPECT_EQ(out, TestValue(701, kSize));
}

TEST_F(LocalPathTest, MalformedBlankSealsAreRefusedAndLeakNothing) {
  const uint64_t baseline = Stats().used_bytes();
  testing::RawLocal raw(socket_);
  ASSERT_TRUE(raw.ok());
  auto call = [&](const v1::LocalRequest& req) {
    v1::LocalResponse resp;
    EXPECT_TRUE(raw.Call(req, &resp));
    return resp;
  };
  v1::LocalRequest greedy;  // more blanks than one seal may ask for
  greedy.mutable_seal()->set_blanks(65);
  greedy.mutable_seal()->set_blank_size(4096);
  v1::LocalResponse resp = call(greedy);
  EXPECT_EQ(resp.code(), static_cast<int>(absl::StatusCode::kInvalidArgument));
  EXPECT_TRUE(absl::StrContains(resp.message(), "at most 64")) << resp.message();
  v1::LocalRequest some;
  some.mutable_seal()->set_blanks(3);
  some.mutable_seal()->set_blank_size(4096);
  resp = call(some);
  ASSERT_EQ(resp.blanks_size(), 3);
  EXPECT_EQ(Stats().blank_blocks(), 3u);
  v1::LocalRequest uneven;  // two blanks, one key
  uneven.mutable_seal()->add_leases(resp.blanks(0).lease());
  uneven.mutable_seal()->add_leases(resp.blanks(1).lease());
  ToProto(TestKey(800), uneven.mutable_seal()->add_keys()->mutable_key());
  v1::LocalResponse refused = call(uneven);
  EXPECT_EQ(refused.code(), static_cast<int>(absl::StatusCode::kInvalidArgument));
  EXPECT_TRUE(absl::StrContains(refused.message(), "1 keys for 2 blanks")) << refused.message();
  v1::LocalRequest bad_key;  // a key with no namespace: the blank goes back
  bad_key.mutable_seal()->add_leases(resp.blanks(0).lease());
  bad_key.mutable_seal()->add_keys()->mutable_key()->set_digest(std::string(16, 'x'));
  refused = call(bad_key);
  EXPECT_EQ(refused.grants(0).code(), static_cast<int>(absl::StatusCode::kInvalidArgument));
  EXPECT_EQ(Stats().blank_blocks(), 2u);
  // A blank sealed without a key is refused, and stays the connection's.
  v1::LocalRequest keyless;
  keyless.mutable_seal()->add_leases(resp.blanks(1).lease());
  refused = call(keyless);
  EXPECT_EQ(refused.grants(0).code(), static_cast<int>(absl::StatusCode::kFailedPrecondition));
  EXPECT_EQ(Stats().blank_blocks(), 2u);
  KillHolderOf(raw);  // dies holding two blanks
  EXPECT_TRUE(WaitForStats([&](const v1::StatsResponse& s) {
    return s.blank_blocks() == 0 && s.used_bytes() == baseline;
  })) << Stats().blank_blocks()
      << " blanks still held";
}

TEST_F(LocalPathTest, AChannelNeverWritesOrReadsTheArenaOfANodeThatRestarted) {
  // Without a directory there is no watcher: only the next connection's hello can tell that
  // the node behind the socket is another one. Grants from it name offsets in its new arena.
  auto local = client::LocalChannel::Connect({.socket_path = socket_, .use_directory = false});
  ASSERT_TRUE(local.ok()) << local.status();
  ASSERT_TRUE((*local)->Put(TestKey(1), TestValue(1, 8192)).ok());
  RestartOnTheSameSocket();
  for (int attempt = 0; attempt < 3; ++attempt) {
    absl::Status put = (*local)->Put(TestKey(2), TestValue(2, 8192));
    EXPECT_TRUE(absl::IsUnavailable(put)) << put;  // never OK: the bytes would land nowhere
  }
  EXPECT_FALSE((*local)->node_alive());
  ASSERT_TRUE(remote_->Put(TestKey(3), TestValue(3, 8192)).ok());
  std::vector<uint8_t> out(8192);
  EXPECT_TRUE(absl::IsUnavailable((*local)->Get(TestKey(3), absl::MakeSpan(out)).status()));
  EXPECT_TRUE(absl::IsNotFound(remote_->Get(TestKey(2), absl::MakeSpan(out)).status()));
}

// Connects a client with `options`, restarts the node under it, and checks that the client
// stores and reads again within a few seconds, every byte right. The first call may fail: the
// old connections are gone.
void ExpectAClientToRecoverFromARestart(LocalPathTest& t, ClientOptions options, uint64_t k) {
  auto client = Client::Connect(options);
  ASSERT_TRUE(client.ok()) << client.status();
  ASSERT_TRUE((*client)->Put(TestKey(k), TestValue(k, 8192)).ok());
  t.RestartOnTheSameSocket();
  ASSERT_TRUE(t.remote().Put(TestKey(k + 1), TestValue(k + 1, 8192)).ok());
  // A client with the local path must get it back, not stay on the network: a lookup it
  // answers from the new node's directory shows the new channel is mapped.
  const bool local = options.use_local && !options.local_socket.empty();
  bool stored = false, read = false, local_again = !local;
  for (int attempt = 0; attempt < 40 && !(stored && read && local_again); ++attempt) {
    stored = stored || (*client)->Put(TestKey(k + 2), TestValue(k + 2, 8192)).ok();
    std::vector<uint8_t> out(8192);
    if ((*client)->Get(TestKey(k + 1), absl::MakeSpan(out)).ok()) {
      ASSERT_EQ(out, TestValue(k + 1, 8192));
      read = true;
    }
    const uint64_t before = (*client)->counters().lookups_without_round_trip;
    auto matched = (*client)->MatchPrefix({TestKey(k + 1)});
    local_again = local_again || (matched.ok() && *matched == 1 &&
                                  (*client)->counters().lookups_without_round_trip > before);
    absl::SleepFor(absl::Milliseconds(100));
  }
  EXPECT_TRUE(stored);
  EXPECT_TRUE(read);
  EXPECT_TRUE(local_again);
  std::vector<uint8_t> out(8192);
  ASSERT_TRUE(t.remote().Get(TestKey(k + 2), absl::MakeSpan(out)).ok());  // stored means stored
  EXPECT_EQ(out, TestValue(k + 2, 8192));
  EXPECT_EQ(*(*client)->MatchPrefix({TestKey(k + 1), TestKey(k + 2), TestKey(k)}), 2u);
}

TEST_F(LocalPathTest, TheClientReconnectsItsLocalPathToANodeThatRestarted) {
  ExpectAClientToRecoverFromARestart(
      *this, {.address = node_->Value("LISTENING"), .local_socket = socket_}, 10);
}

TEST_F(LocalPathTest, TheLocalPathComesBackWhileTheNetworkPathStillWorks) {
  // Without the bulk channel no call fails after the restart (gRPC reaches the new node), so
  // only the lost local path can bring the client back to shared memory.
  ExpectAClientToRecoverFromARestart(
      *this, {.address = node_->Value("LISTENING"), .local_socket = socket_, .use_bulk = false},
      30);
}

TEST_F(LocalPathTest, AStandaloneClientFindsTheBulkChannelOfANodeThatRestarted) {
  // --bulk_port=0 gives a restarted node another bulk port: the client connected before kept
  // calling the old one, and every call failed in transport for good.
  ExpectAClientToRecoverFromARestart(
      *this, {.address = node_->Value("LISTENING"), .use_local = false}, 20);
}

TEST_F(LocalPathTest, BatchesLargerThanOneSocketMessageAreSplitNotDropped) {
  // A SOCK_SEQPACKET message must fit the sender's socket buffer (about 208 KiB): 4,096 misses
  // answered at once, or 3,000 puts with parents asked at once, did not, and the connection
  // dropped (every item UNAVAILABLE).
  auto local = client::LocalChannel::Connect({.socket_path = socket_, .use_directory = false});
  ASSERT_TRUE(local.ok()) << local.status();
  constexpr int kItems = 4096;
  std::vector<BlockKey> keys;
  std::vector<std::vector<uint8_t>> bufs(kItems, std::vector<uint8_t>(4096));
  std::vector<absl::Span<uint8_t>> spans;
  for (int i = 0; i < kItems; ++i) {
    keys.push_back(TestKey(900000 + i));
    spans.push_back(absl::MakeSpan(bufs[i]));
  }
  for (const auto& got : (*local)->BatchGet(keys, spans)) {
    EXPECT_TRUE(absl::IsNotFound(got.status())) << got.status();
  }
  constexpr int kPuts = 3000;
  std::vector<std::vector<uint8_t>> values;
  for (int i = 0; i < kPuts; ++i) values.push_back(TestValue(900000 + i, 4096));
  std::vector<client::LocalPutItem> items;
  for (int i = 0; i < kPuts; ++i) {
    items.push_back({keys[i], values[i], i > 0 ? &keys[i - 1] : nullptr});
  }
  for (const absl::Status& s : (*local)->BatchPut(items)) ASSERT_TRUE(s.ok()) << s;
  for (int i = 0; i < kPuts; ++i) {
    auto got = (*local)->BatchGet({keys[i]}, {spans[i]})[0];
    ASSERT_TRUE(got.ok()) << got.status();
    ASSERT_EQ(bufs[i], values[i]);
  }
  EXPECT_EQ(*(*local)->MatchPrefix(keys), static_cast<size_t>(kPuts));
  EXPECT_TRUE(WaitForStats([](const v1::StatsResponse& s) { return s.pinned_blocks() == 0; }));
}

TEST_F(LocalPathTest, MoreWriteAheadThanTheNodeGrantsIsTakenAsItsLimit) {
  // The node grants at most 64 blanks per seal and refuses a seal asking for more: with 100,
  // every put failed, and its write lease kept the key "being written", so a retried put was
  // told the key was stored when it was not.
  auto local = client::LocalChannel::Connect(
      {.socket_path = socket_, .max_connections = 1, .write_ahead_blocks = 100});
  ASSERT_TRUE(local.ok()) << local.status();
  for (uint64_t k = 700; k < 710; ++k) {
    ASSERT_TRUE((*local)->Put(TestKey(k), TestValue(k, 4096)).ok());
    std::vector<uint8_t> out(4096);
    ASSERT_TRUE(remote_->Get(TestKey(k), absl::MakeSpan(out)).ok()) << k;
    ASSERT_EQ(out, TestValue(k, 4096));
  }
  EXPECT_EQ(Stats().unsealed_blocks(), 0u);
}

}  // namespace
}  // namespace ems
