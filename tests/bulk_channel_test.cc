// The bulk data channel end to end: the node's BulkServer over a real pool and loopback TCP,
// reached through the client's BulkChannel, plus a raw socket for bad and dying peers.
#include "client/bulk_channel.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <filesystem>
#include <string>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "bulk/wire.h"
#include "common/cluster_view.h"
#include "gtest/gtest.h"
#include "node/bulk_server.h"
#include "testing/blocks.h"

namespace ems {
namespace {

using client::BulkCall;
using client::BulkChannel;
using testing::TestKey;
using testing::TestValue;

constexpr char kCdKey[] = "cd-secret";

class BulkChannelTest : public ::testing::Test {
 protected:
  void SetUp() override {
    pool::PoolOptions po;
    po.huge_page_num = 48;  // 96 MiB: room for a 64 MiB value
    po.prefault = false;
    auto pool = pool::Pool::Create(po);
    ASSERT_TRUE(pool.ok()) << pool.status();
    pool_ = *std::move(pool);
    StartServer(absl::Seconds(30));
  }

  void StartServer(absl::Duration io_timeout, int max_connections = 1024) {
    server_.reset();
    node::BulkServerOptions o;
    o.max_connections = max_connections;
    o.host = "127.0.0.1";
    o.node_id = "n1";
    o.credential = std::make_shared<node::Credential>(kCdKey);
    o.io_timeout = io_timeout;
    o.view = [this] {
      absl::MutexLock lock(&mu_);
      return view_;
    };
    auto server = node::BulkServer::Start(pool_.get(), o);
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = *std::move(server);
  }

  std::unique_ptr<BulkChannel> Channel(const std::string& cd_key = kCdKey) {
    return std::make_unique<BulkChannel>(
        client::BulkChannelOptions{"127.0.0.1", server_->port(), cd_key, absl::Seconds(10), true});
  }

  // A raw connection that has passed HELLO.
  int RawConnection() {
    const int fd = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<uint16_t>(server_->port()));
    inet_pton(AF_INET, "127.0.0.1", &addr.sin_addr);
    EXPECT_EQ(connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
    bulk::TuneSocket(fd, absl::Seconds(10));
    return fd;
  }
  void Hello(int fd) {
    bulk::RequestHeader h;
    h.op = static_cast<uint8_t>(bulk::Op::kHello);
    h.count = sizeof(kCdKey) - 1;
    ASSERT_TRUE(bulk::WriteAll(fd, &h, sizeof(h)).ok());
    ASSERT_TRUE(bulk::WriteAll(fd, kCdKey, h.count).ok());
    bulk::ResponseHeader r;
    ASSERT_TRUE(bulk::ReadAll(fd, &r, sizeof(r)).ok());
    ASSERT_EQ(r.code, 0u);
  }
  // Reads an answer header and its message.
  std::pair<bulk::ResponseHeader, std::string> Answer(int fd) {
    bulk::ResponseHeader r;
    EXPECT_TRUE(bulk::ReadAll(fd, &r, sizeof(r)).ok());
    std::string message(r.message_bytes, '\0');
    EXPECT_TRUE(bulk::ReadAll(fd, message.data(), message.size()).ok());
    return {r, message};
  }
  // True once the pool holds no block and no write in progress (within 10 s).
  bool PoolReturnsToEmpty() {
    for (absl::Time end = absl::Now() + absl::Seconds(10); absl::Now() < end;) {
      pool::PoolStats s = pool_->Stats();
      if (s.used_bytes == 0 && s.unsealed_blocks == 0) return true;
      absl::SleepFor(absl::Milliseconds(20));
    }
    return false;
  }

  std::unique_ptr<pool::Pool> pool_;
  std::unique_ptr<node::BulkServer> server_;
  absl::Mutex mu_;
  std::shared_ptr<const ClusterView> view_ ABSL_GUARDED_BY(mu_);
};

TEST_F(BulkChannelTest, PutThenGetRoundTripsEverySize) {
  auto channel = Channel();
  const std::vector<size_t> sizes = {1, 4099, 64 << 10, 256 << 10, 2 << 20, 8 << 20, 64 << 20};
  std::vector<BlockKey> keys;
  std::vector<std::vector<uint8_t>> values;
  for (size_t i = 0; i < sizes.size(); ++i) {
    keys.push_back(TestKey(i));
    values.push_back(TestValue(i, sizes[i]));
  }
  for (size_t i = 0; i < sizes.size(); ++i) {  // one put each: 64 MiB fills most of the pool
    BulkCall put(channel.get(), bulk::Op::kPut, 0);
    put.AddPut(&keys[i], values[i], Checksum(values[i].data(), values[i].size()), nullptr);
    put.Send();
    put.Finish();
    ASSERT_TRUE(put.status().ok()) << put.status();
    ASSERT_TRUE(put.results()[0].ok()) << sizes[i] << ": " << put.results()[0].status();
    std::vector<uint8_t> out(sizes[i] + 7, 0xee);
    BulkCall get(channel.get(), bulk::Op::kGet, 0);
    get.AddGet(&keys[i], absl::MakeSpan(out));
    get.Send();
    get.Finish();
    ASSERT_TRUE(get.status().ok()) << get.status();
    ASSERT_TRUE(get.results()[0].ok()) << get.results()[0].status();
    EXPECT_EQ(*get.results()[0], sizes[i]);
    out.resize(sizes[i]);
    ASSERT_EQ(out, values[i]) << "size " << sizes[i];
    ASSERT_TRUE(pool_->Remove(keys[i]).ok());
  }
  EXPECT_EQ(server_->connections(), 1) << "the pooled connection serves every call";
}

TEST_F(BulkChannelTest, BatchesMissesAndShortBuffersKeepTheStreamInStep) {
  auto channel = Channel();
  std::vector<BlockKey> keys = {TestKey(1), TestKey(2), TestKey(3)};
  std::vector<std::vector<uint8_t>> values = {TestValue(1, 300000), TestValue(3, 5000)};
  BulkCall put(channel.get(), bulk::Op::kPut, 0);
  put.AddPut(&keys[0], values[0], 0, nullptr);
  put.AddPut(&keys[2], values[1], 0, &keys[0]);
  put.Send();
  put.Finish();
  ASSERT_TRUE(put.status().ok()) << put.status();
  for (const auto& r : put.results()) ASSERT_TRUE(r.ok()) << r.status();

  std::vector<uint8_t> a(300000), b(100), c(100);
  BulkCall get(channel.get(), bulk::Op::kGet, 0);
  get.AddGet(&keys[0], absl::MakeSpan(a));
  get.AddGet(&keys[1], absl::MakeSpan(b));  // absent
  get.AddGet(&keys[2], absl::MakeSpan(c));  // 5000 bytes into 100
  get.Send();
  get.Finish();
  ASSERT_TRUE(get.status().ok()) << get.status();
  ASSERT_TRUE(get.results()[0].ok());
  EXPECT_EQ(a, values[0]);
  EXPECT_TRUE(absl::IsNotFound(get.results()[1].status())) << get.results()[1].status();
  EXPECT_TRUE(absl::IsOutOfRange(get.results()[2].status())) << get.results()[2].status();
  EXPECT_NE(get.results()[2].status().message().find("5000"), std::string::npos);

  BulkCall empty(channel.get(), bulk::Op::kGet, 0);  // an empty batch is answered too
  empty.Send();
  empty.Finish();
  ASSERT_TRUE(empty.status().ok()) << empty.status();
  EXPECT_TRUE(empty.results().empty());

  BulkCall match(channel.get(), bulk::Op::kMatchPrefix, 0);
  for (const BlockKey& k : keys) match.AddKey(&k);
  match.Send();
  match.Finish();
  ASSERT_TRUE(match.status().ok()) << match.status();
  EXPECT_EQ(match.matched(), 1u) << "keys[1] is the first miss";

  // Storing the same key again with the same size is a no-op success; another size is not.
  std::vector<uint8_t> other = TestValue(9, 10);
  BulkCall again(channel.get(), bulk::Op::kPut, 0);
  again.AddPut(&keys[0], values[0], 0, nullptr);
  again.AddPut(&keys[2], other, 0, nullptr);
  again.Send();
  again.Finish();
  ASSERT_TRUE(again.status().ok()) << again.status();
  EXPECT_TRUE(again.results()[0].ok()) << again.results()[0].status();
  EXPECT_TRUE(absl::IsAlreadyExists(again.results()[1].status())) << again.results()[1].status();
}

TEST_F(BulkChannelTest, AWrongChecksumIsRefusedAndNothingIsStored) {
  auto channel = Channel();
  BlockKey key = TestKey(5);
  std::vector<uint8_t> value = TestValue(5, 1 << 20);
  BulkCall put(channel.get(), bulk::Op::kPut, 0);
  put.AddPut(&key, value, Checksum(value.data(), value.size()) ^ 1, nullptr);
  put.Send();
  put.Finish();
  ASSERT_TRUE(put.status().ok()) << put.status();
  EXPECT_TRUE(absl::IsDataLoss(put.results()[0].status())) << put.results()[0].status();
  EXPECT_FALSE(pool_->Contains(key));
  EXPECT_TRUE(PoolReturnsToEmpty());
}

TEST_F(BulkChannelTest, AWrongCdKeyIsUnauthenticated) {
  auto channel = Channel("not-the-key");
  BlockKey key = TestKey(1);
  BulkCall match(channel.get(), bulk::Op::kMatchPrefix, 0);
  match.AddKey(&key);
  match.Send();
  match.Finish();
  EXPECT_TRUE(absl::IsUnauthenticated(match.status())) << match.status();
  EXPECT_NE(match.status().message().find("cdKey"), std::string::npos) << match.status();
}

TEST_F(BulkChannelTest, AStaleMapIsToldTheNodesEpoch) {
  v1::ClusterMap map;
  map.set_epoch(7);
  for (const char* id : {"n1", "n2"}) {
    v1::NodeInfo* n = map.add_nodes();
    n->set_id(id);
    n->set_address(std::string(id) + ":1");
    n->set_state(v1::UP);
    n->set_capacity_bytes(1 << 30);
  }
  auto view = ClusterView::Build(map);
  ASSERT_TRUE(view.ok()) << view.status();
  {
    absl::MutexLock lock(&mu_);
    view_ = *view;
  }
  // A key n2 owns, asked of n1 by a caller whose map is older.
  BlockKey foreign;
  for (uint64_t i = 0;; ++i) {
    foreign = TestKey(i);
    if (!(*view)->Owns("n1", foreign)) break;
  }
  auto channel = Channel();
  std::vector<uint8_t> out(16);
  BulkCall get(channel.get(), bulk::Op::kGet, 6);
  get.AddGet(&foreign, absl::MakeSpan(out));
  get.Send();
  get.Finish();
  EXPECT_TRUE(absl::IsFailedPrecondition(get.status())) << get.status();
  EXPECT_EQ(get.node_epoch(), 7u);
  // The same call with the current epoch is served (a miss here).
  BulkCall current(channel.get(), bulk::Op::kGet, 7);
  current.AddGet(&foreign, absl::MakeSpan(out));
  current.Send();
  current.Finish();
  ASSERT_TRUE(current.status().ok()) << current.status();
  EXPECT_TRUE(absl::IsNotFound(current.results()[0].status()));
}

TEST_F(BulkChannelTest, GarbageAndOutOfOrderRequestsGetAnErrorNotACrash) {
  {
    const int fd = RawConnection();
    const std::string junk(24, 'x');
    ASSERT_TRUE(bulk::WriteAll(fd, junk.data(), junk.size()).ok());
    auto [h, message] = Answer(fd);
    EXPECT_EQ(h.code, static_cast<uint32_t>(absl::StatusCode::kFailedPrecondition));
    EXPECT_NE(message.find("not an EMS bulk request"), std::string::npos) << message;
    char byte;
    EXPECT_EQ(recv(fd, &byte, 1, 0), 0) << "the node closes the connection";
    close(fd);
  }
  {
    const int fd = RawConnection();
    bulk::RequestHeader h;
    h.op = static_cast<uint8_t>(bulk::Op::kGet);
    ASSERT_TRUE(bulk::WriteAll(fd, &h, sizeof(h)).ok());
    auto [r, message] = Answer(fd);
    EXPECT_EQ(r.code, static_cast<uint32_t>(absl::StatusCode::kFailedPrecondition));
    EXPECT_NE(message.find("HELLO"), std::string::npos) << message;
    close(fd);
  }
  {
    const int fd = RawConnection();
    Hello(fd);
    bulk::RequestHeader h;
    h.op = static_cast<uint8_t>(bulk::Op::kMatchPrefix);
    h.count = 2;
    std::string body;
    bulk::AppendKey(TestKey(1), &body);
    const uint16_t empty_ns = 0;  // keys[1]: an empty namespace
    body.append(reinterpret_cast<const char*>(&empty_ns), sizeof(empty_ns));
    body.append(kDigestBytes, '\0');
    ASSERT_TRUE(bulk::WriteAll(fd, &h, sizeof(h)).ok());
    ASSERT_TRUE(bulk::WriteAll(fd, body.data(), body.size()).ok());
    auto [r, message] = Answer(fd);
    EXPECT_EQ(r.code, static_cast<uint32_t>(absl::StatusCode::kInvalidArgument));
    EXPECT_NE(message.find("keys[1]"), std::string::npos) << message;
    // The stream is still in step: an unknown operation is named.
    h.op = 99;
    h.count = 0;
    ASSERT_TRUE(bulk::WriteAll(fd, &h, sizeof(h)).ok());
    auto [u, unknown] = Answer(fd);
    EXPECT_EQ(u.code, static_cast<uint32_t>(absl::StatusCode::kInvalidArgument));
    EXPECT_NE(unknown.find("unknown operation 99"), std::string::npos) << unknown;
    close(fd);
  }
  {
    const int fd = RawConnection();
    Hello(fd);
    bulk::RequestHeader h;
    h.op = static_cast<uint8_t>(bulk::Op::kGet);
    h.count = bulk::kMaxItems + 1;
    ASSERT_TRUE(bulk::WriteAll(fd, &h, sizeof(h)).ok());
    auto [r, message] = Answer(fd);
    EXPECT_EQ(r.code, static_cast<uint32_t>(absl::StatusCode::kInvalidArgument));
    close(fd);
  }
  // The server still serves well-formed clients.
  auto channel = Channel();
  BlockKey key = TestKey(3);
  BulkCall match(channel.get(), bulk::Op::kMatchPrefix, 0);
  match.AddKey(&key);
  match.Send();
  match.Finish();
  EXPECT_TRUE(match.status().ok()) << match.status();
}

// Starts a 2 MiB put and sends half of its value.
void StartHalfAPut(int fd, const BlockKey& key) {
  bulk::RequestHeader h;
  h.op = static_cast<uint8_t>(bulk::Op::kPut);
  h.count = 1;
  std::string meta(reinterpret_cast<const char*>(&h), sizeof(h));
  bulk::AppendKey(key, &meta);
  bulk::PutItemHeader ph;
  ph.size = 2 << 20;
  meta.append(reinterpret_cast<const char*>(&ph), sizeof(ph));
  ASSERT_TRUE(bulk::WriteAll(fd, meta.data(), meta.size()).ok());
  std::vector<uint8_t> half = TestValue(1, 1 << 20);
  ASSERT_TRUE(bulk::WriteAll(fd, half.data(), half.size()).ok());
}

TEST_F(BulkChannelTest, AClientKilledMidPutLeaksNothing) {
  const int fd = RawConnection();
  Hello(fd);
  StartHalfAPut(fd, TestKey(1));
  close(fd);  // what the kernel does for a killed process
  EXPECT_TRUE(PoolReturnsToEmpty()) << "used " << pool_->Stats().used_bytes;
  EXPECT_FALSE(pool_->Contains(TestKey(1)));
}

TEST_F(BulkChannelTest, AClientKilledMidGetLeavesNoPin) {
  auto channel = Channel();
  BlockKey key = TestKey(8);
  std::vector<uint8_t> value = TestValue(8, 32 << 20);  // more than the socket buffers hold
  BulkCall put(channel.get(), bulk::Op::kPut, 0);
  put.AddPut(&key, value, 0, nullptr);
  put.Send();
  put.Finish();
  ASSERT_TRUE(put.status().ok() && put.results()[0].ok());
  const int fd = RawConnection();
  Hello(fd);
  bulk::RequestHeader h;
  h.op = static_cast<uint8_t>(bulk::Op::kGet);
  h.count = 1;
  std::string body(reinterpret_cast<const char*>(&h), sizeof(h));
  bulk::AppendKey(key, &body);
  ASSERT_TRUE(bulk::WriteAll(fd, body.data(), body.size()).ok());
  bulk::ResponseHeader r;
  ASSERT_TRUE(bulk::ReadAll(fd, &r, sizeof(r)).ok());
  ASSERT_EQ(pool_->Stats().pinned_blocks, 1u) << "the node sends from the pinned block";
  close(fd);  // gone mid-read
  bool unpinned = false;
  for (absl::Time end = absl::Now() + absl::Seconds(10); !unpinned && absl::Now() < end;) {
    unpinned = pool_->Stats().pinned_blocks == 0;
    absl::SleepFor(absl::Milliseconds(20));
  }
  EXPECT_TRUE(unpinned);
  EXPECT_TRUE(pool_->Remove(key).ok());
  EXPECT_TRUE(PoolReturnsToEmpty());
}

TEST_F(BulkChannelTest, AStalledWriterLosesItsBlockAfterTheTimeout) {
  StartServer(absl::Milliseconds(200));
  const int fd = RawConnection();
  Hello(fd);
  StartHalfAPut(fd, TestKey(1));
  // The connection stays open but sends nothing more.
  EXPECT_TRUE(PoolReturnsToEmpty()) << "used " << pool_->Stats().used_bytes;
  EXPECT_FALSE(pool_->Contains(TestKey(1)));
  close(fd);
}

// A peer without the key that connects and says nothing held its connection slot for good:
// a few idle sockets (1024 by default) shut the channel to every client. A connection must say
// HELLO within the I/O timeout; only one that has may idle like a pooled connection.
TEST_F(BulkChannelTest, ConnectionsThatNeverSayHelloDoNotHoldTheChannel) {
  StartServer(absl::Milliseconds(300), /*max_connections=*/4);
  std::vector<int> squatters;
  for (int i = 0; i < 4; ++i) squatters.push_back(RawConnection());
  absl::SleepFor(absl::Milliseconds(100));  // all accepted

  auto channel = Channel();
  const BlockKey key = TestKey(1);
  const std::vector<uint8_t> value = TestValue(1, 4096);
  absl::Status last;
  bool stored = false;
  for (const absl::Time give_up = absl::Now() + absl::Seconds(3);
       !stored && absl::Now() < give_up;) {
    BulkCall put(channel.get(), bulk::Op::kPut, 0);
    put.AddPut(&key, value, Checksum(value.data(), value.size()), nullptr);
    put.Send();
    put.Finish();
    last = put.status();
    stored = last.ok() && put.results()[0].ok();
    if (!stored) absl::SleepFor(absl::Milliseconds(50));
  }
  EXPECT_TRUE(stored) << "4 silent connections shut out a client with the key: " << last;
  EXPECT_TRUE(pool_->Contains(key));
  for (int fd : squatters) close(fd);
}

// Sockets this process has open (the server's ends are in it too).
int OpenSockets() {
  int n = 0;
  for (const auto& e : std::filesystem::directory_iterator("/proc/self/fd")) {
    std::error_code ec;
    n += std::filesystem::read_symlink(e.path(), ec).string().rfind("socket:", 0) == 0;
  }
  return n;
}

TEST_F(BulkChannelTest, ABurstOfParallelCallsLeavesAtMostKMaxIdleConnectionsOpen) {
  // Each call in flight takes its own connection; all of them went back to the pool, and the
  // node kept a thread and one of its slots for each, for the client's whole life.
  auto channel = Channel();
  const int before = OpenSockets();
  constexpr int kCalls = 40;
  std::vector<BlockKey> keys;
  for (int i = 0; i < kCalls; ++i) keys.push_back(TestKey(i));
  std::vector<std::unique_ptr<BulkCall>> calls;
  for (int i = 0; i < kCalls; ++i) {
    calls.push_back(std::make_unique<BulkCall>(channel.get(), bulk::Op::kMatchPrefix, 0));
    calls.back()->AddKey(&keys[i]);
    calls.back()->Send();
  }
  for (auto& c : calls) {
    c->Finish();
    ASSERT_TRUE(c->status().ok()) << c->status();
  }
  calls.clear();
  // Kept connections count twice (both ends are here); the closed ones' server ends go as
  // their threads see the close.
  int open = OpenSockets();
  for (absl::Time end = absl::Now() + absl::Seconds(10);
       open > before + 2 * static_cast<int>(BulkChannel::kMaxIdle) && absl::Now() < end;) {
    absl::SleepFor(absl::Milliseconds(20));
    open = OpenSockets();
  }
  EXPECT_EQ(open, before + 2 * static_cast<int>(BulkChannel::kMaxIdle));
}

TEST_F(BulkChannelTest, APooledConnectionToARestartedServerIsReplacedOnce) {
  auto channel = Channel();
  BlockKey key = TestKey(4);
  std::vector<uint8_t> value = TestValue(4, 70000);
  auto put = [&] {
    BulkCall call(channel.get(), bulk::Op::kPut, 0);
    call.AddPut(&key, value, 0, nullptr);
    call.Send();
    call.Finish();
    return call.status();
  };
  ASSERT_TRUE(put().ok());
  const int port = server_->port();
  server_.reset();  // closes the pooled connection's far end
  node::BulkServerOptions o;
  o.host = "127.0.0.1";
  o.port = port;
  o.node_id = "n1";
  o.credential = std::make_shared<node::Credential>(kCdKey);
  auto server = node::BulkServer::Start(pool_.get(), o);
  ASSERT_TRUE(server.ok()) << server.status();
  server_ = *std::move(server);
  absl::Status s = put();
  EXPECT_TRUE(s.ok()) << s;
}

}  // namespace
}  // namespace ems
