// Mutation fuzzing of the node's two hand-parsed data protocols, over real sockets to the
// node's own servers on a real pool: the bulk channel (bulk/wire.h, binary frames over TCP)
// and the local path (proto/ems/v1/local.proto, messages over a Unix socket).
//
// Each case opens a connection and sends a sequence of well-formed requests, usually with a
// few mutations: bytes overwritten, counts and sizes replaced by boundary values, the stream
// cut short, leases that were never granted. Whatever comes in, the servers must answer or
// close, never crash (the ASan build runs this too), hang, leak a pin or a write, or change a
// sealed block. After every case has closed, the test checks that: every connection ended,
// no block is pinned or left unsealed, every stored block still matches the checksum it was
// sealed with, and a well-behaved client still round-trips verified bytes.
//
// The sequence is deterministic: EMS_FUZZ_SEED and EMS_FUZZ_CASES change the seed and the
// number of cases (for a longer run by hand); a failure names the seed and the case.
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "bulk/wire.h"
#include "client/bulk_channel.h"
#include "client/local_channel.h"
#include "common/key_proto.h"
#include "common/logging.h"
#include "common/prefix_hash.h"
#include "ems/v1/local.pb.h"
#include "gtest/gtest.h"
#include "node/bulk_server.h"
#include "node/local_server.h"
#include "testing/blocks.h"
#include "testing/local_raw.h"

namespace ems {
namespace {

using testing::TestKey;
using testing::TestValue;

constexpr char kCdKey[] = "fuzz-secret";
// Few keys, so that puts, gets and seals of one case meet blocks other cases stored.
constexpr uint64_t kKeySpace = 24;

uint64_t EnvOr(const char* name, uint64_t fallback) {
  const char* v = std::getenv(name);
  uint64_t n = 0;
  return v != nullptr && absl::SimpleAtoi(v, &n) ? n : fallback;
}

class Fuzz {
 public:
  explicit Fuzz(uint64_t seed) : rng_(seed) {}
  uint64_t Below(uint64_t n) { return std::uniform_int_distribution<uint64_t>(0, n - 1)(rng_); }
  bool OneIn(uint64_t n) { return Below(n) == 0; }
  uint64_t Any() { return rng_(); }

  // Counts, lengths and sizes at the edges of what the readers accept.
  uint32_t EdgeU32() {
    static constexpr uint32_t kEdges[] = {0,
                                          1,
                                          2,
                                          0xff,
                                          0xffff,
                                          0x10000,
                                          bulk::kMaxItems,
                                          bulk::kMaxItems + 1,
                                          bulk::kMaxMessageBytes + 1,
                                          0x7fffffff,
                                          0x80000000,
                                          0xffffffff};
    return kEdges[Below(std::size(kEdges))];
  }
  uint64_t EdgeU64() {
    static constexpr uint64_t kEdges[] = {0,           1,          4096,       2ull << 20,
                                          64ull << 20, 1ull << 40, 1ull << 63, ~0ull};
    return kEdges[Below(std::size(kEdges))];
  }
  // A value size a well-formed put might send.
  uint64_t ValueSize() {
    static constexpr uint64_t kSizes[] = {1, 100, 4096, 65536, 300000};
    return kSizes[Below(std::size(kSizes))];
  }

  // Overwrites, boundary values, cuts and insertions at random places.
  void Mutate(std::string* bytes) {
    const uint64_t n = 1 + Below(4);
    for (uint64_t i = 0; i < n && !bytes->empty(); ++i) {
      const size_t at = Below(bytes->size());
      switch (Below(6)) {
        case 0:
          (*bytes)[at] = static_cast<char>(Any());
          break;
        case 1:
          (*bytes)[at] ^= static_cast<char>(1u << Below(8));
          break;
        case 2: {
          const uint32_t v = EdgeU32();
          bytes->replace(at, std::min<size_t>(4, bytes->size() - at),
                         reinterpret_cast<const char*>(&v),
                         std::min<size_t>(4, bytes->size() - at));
          break;
        }
        case 3: {
          const uint64_t v = EdgeU64();
          bytes->replace(at, std::min<size_t>(8, bytes->size() - at),
                         reinterpret_cast<const char*>(&v),
                         std::min<size_t>(8, bytes->size() - at));
          break;
        }
        case 4:
          bytes->resize(at);  // the peer stops mid-request
          break;
        default: {
          std::string junk(1 + Below(32), '\0');
          for (char& c : junk) c = static_cast<char>(Any());
          bytes->insert(at, junk);
          break;
        }
      }
    }
  }

 private:
  std::mt19937_64 rng_;
};

// Sends `bytes` on `fd` while draining whatever comes back (a node answering a batch of gets
// while the rest is still being sent must not deadlock the test), then half-closes and reads
// until the node closes or `linger` passes. Returns whether the node closed.
bool Exchange(int fd, const std::string& bytes, absl::Duration linger) {
  fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
  size_t sent = 0;
  bool half_closed = false;
  char sink[64 << 10];
  const absl::Time give_up = absl::Now() + absl::Seconds(20);
  absl::Time end = absl::InfiniteFuture();
  while (absl::Now() < std::min(end, give_up)) {
    if (!half_closed && sent == bytes.size()) {
      shutdown(fd, SHUT_WR);
      half_closed = true;
      end = absl::Now() + linger;
    }
    pollfd p{fd, static_cast<short>(POLLIN | (half_closed ? 0 : POLLOUT)), 0};
    if (poll(&p, 1, 10) <= 0) continue;
    if (p.revents & (POLLIN | POLLHUP | POLLERR)) {
      const ssize_t n = recv(fd, sink, sizeof(sink), 0);
      if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) return true;
    }
    if (!half_closed && (p.revents & POLLOUT)) {
      const ssize_t n = send(fd, bytes.data() + sent, bytes.size() - sent, MSG_NOSIGNAL);
      if (n > 0) sent += n;
      if (n < 0 && errno != EAGAIN && errno != EINTR) return true;  // reset by the node
    }
  }
  return false;
}

// Waits (bounded) until `count()` is 0.
template <typename Count>
bool DrainsToZero(Count count) {
  for (absl::Time end = absl::Now() + absl::Seconds(15); absl::Now() < end;) {
    if (count() == 0) return true;
    absl::SleepFor(absl::Milliseconds(20));
  }
  return false;
}

class ProtocolFuzzTest : public ::testing::Test {
 protected:
  void SetUp() override {
    pool::PoolOptions po;
    po.huge_page_num = 48;  // 96 MiB: a 64 MiB value fits
    po.prefault = false;
    auto pool = pool::Pool::Create(po);
    ASSERT_TRUE(pool.ok()) << pool.status();
    pool_ = *std::move(pool);
    // One line per ten seconds, not one per refused message with invalid UTF-8.
    RouteProtobufLogs();
    seed_ = EnvOr("EMS_FUZZ_SEED", 20261130);
    cases_ = EnvOr("EMS_FUZZ_CASES", 1500);
  }

  // A LocalServer over the pool on a socket in the temp directory (it removes the socket when
  // it stops); `tag` keeps the tests' paths apart.
  absl::StatusOr<std::unique_ptr<node::LocalServer>> StartLocalServer(const std::string& tag) {
    local_path_ =
        (std::filesystem::temp_directory_path() / absl::StrCat("ems-", tag, "-", getpid(), ".sock"))
            .string();
    return node::LocalServer::Start(pool_.get(), {.socket_path = local_path_, .node_id = "fuzz"});
  }

  // What must hold after any input: no pin, no write in progress, every sealed block of the
  // key space intact.
  void ExpectPoolIntact() {
    const pool::PoolStats s = pool_->Stats();
    EXPECT_EQ(s.pinned_blocks, 0u);
    EXPECT_EQ(s.unsealed_blocks, 0u);
    EXPECT_EQ(s.blank_blocks, 0u);
    for (uint64_t i = 0; i < kKeySpace; ++i) {
      auto pin = pool_->Get(TestKey(i));
      if (!pin.ok()) {
        EXPECT_TRUE(absl::IsNotFound(pin.status())) << pin.status();
        continue;
      }
      EXPECT_EQ(Checksum(pin->data(), pin->size()), pin->info().checksum)
          << "block " << i << " changed after it was sealed";
    }
    // The fuzz is blind if nothing it sent was ever well-formed enough to store. (What it
    // stored may be gone: a put of 64 MiB evicts most of the pool.)
    EXPECT_GT(s.puts, 0u);
  }

  std::unique_ptr<pool::Pool> pool_;
  std::string local_path_;  // of the last StartLocalServer
  uint64_t seed_ = 0;
  uint64_t cases_ = 0;
};

// --- the bulk channel ---

std::string Frame(bulk::Op op, uint32_t count) {
  bulk::RequestHeader h;
  h.op = static_cast<uint8_t>(op);
  h.count = count;
  return std::string(reinterpret_cast<const char*>(&h), sizeof(h));
}

// One to four well-formed requests, most of them after a HELLO.
std::string BulkSequence(Fuzz& f) {
  std::string out;
  if (!f.OneIn(10)) {
    const std::string key = f.OneIn(20) ? "wrong" : kCdKey;
    out += Frame(bulk::Op::kHello, key.size()) + key;
  }
  for (uint64_t r = 0, n = 1 + f.Below(4); r < n; ++r) {
    const uint64_t kind = f.Below(10);
    const uint32_t count = 1 + f.Below(4);
    if (kind < 4) {  // PUT
      out += Frame(bulk::Op::kPut, count);
      for (uint32_t i = 0; i < count; ++i) {
        const uint64_t k = f.Below(kKeySpace);
        bulk::AppendKey(TestKey(k), &out);
        const std::vector<uint8_t> value = TestValue(k, f.ValueSize());
        bulk::PutItemHeader ph;
        ph.size = value.size();
        ph.checksum = f.OneIn(2) ? Checksum(value.data(), value.size()) : 0;
        ph.has_parent = f.OneIn(2);
        out.append(reinterpret_cast<const char*>(&ph), sizeof(ph));
        if (ph.has_parent) bulk::AppendKey(TestKey(f.Below(kKeySpace)), &out);
        out.append(reinterpret_cast<const char*>(value.data()), value.size());
      }
    } else if (kind < 9) {  // GET or MATCH_PREFIX
      out += Frame(kind < 7 ? bulk::Op::kGet : bulk::Op::kMatchPrefix, count);
      for (uint32_t i = 0; i < count; ++i) bulk::AppendKey(TestKey(f.Below(kKeySpace)), &out);
    } else {
      out += Frame(bulk::Op::kWatchKeys, 0);
    }
  }
  return out;
}

TEST_F(ProtocolFuzzTest, TheBulkChannelSurvivesMalformedStreams) {
  node::BulkServerOptions o;
  o.host = "127.0.0.1";
  o.node_id = "fuzz";
  o.credential = std::make_shared<node::Credential>(kCdKey);
  o.io_timeout = absl::Seconds(2);  // a case cut short mid-value ends by EOF, not by this
  auto server = node::BulkServer::Start(pool_.get(), o);
  ASSERT_TRUE(server.ok()) << server.status();

  Fuzz f(seed_);
  int closed = 0;
  for (uint64_t c = 0; c < cases_; ++c) {
    SCOPED_TRACE(absl::StrCat("EMS_FUZZ_SEED=", seed_, " case ", c));
    std::string bytes = BulkSequence(f);
    if (!f.OneIn(5)) f.Mutate(&bytes);
    const int fd = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<uint16_t>((*server)->port()));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ASSERT_EQ(connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0) << errno;
    // A watch stream stays open until the client leaves: do not wait long for its end.
    closed += Exchange(fd, bytes, absl::Milliseconds(300));
    close(fd);
  }
  const pool::PoolStats s = pool_->Stats();
  std::printf("bulk fuzz: %llu cases, the node closed %d of them itself; %llu puts, %llu gets\n",
              static_cast<unsigned long long>(cases_), closed,
              static_cast<unsigned long long>(s.puts), static_cast<unsigned long long>(s.gets));
  EXPECT_TRUE(DrainsToZero([&] { return (*server)->connections(); }))
      << (*server)->connections() << " connections still open";
  ExpectPoolIntact();

  // A well-behaved client is still served, byte for byte.
  client::BulkChannel channel({"127.0.0.1", (*server)->port(), kCdKey, absl::Seconds(10), true});
  const BlockKey key = TestKey(1000);
  const std::vector<uint8_t> value = TestValue(1000, 100000);
  client::BulkCall put(&channel, bulk::Op::kPut, 0);
  put.AddPut(&key, value, Checksum(value.data(), value.size()), nullptr);
  put.Send();
  put.Finish();
  ASSERT_TRUE(put.status().ok()) << put.status();
  ASSERT_TRUE(put.results()[0].ok()) << put.results()[0].status();
  std::vector<uint8_t> back(value.size());
  client::BulkCall get(&channel, bulk::Op::kGet, 0);
  get.AddGet(&key, absl::MakeSpan(back));
  get.Send();
  get.Finish();
  ASSERT_TRUE(get.status().ok()) << get.status();
  ASSERT_TRUE(get.results()[0].ok()) << get.results()[0].status();
  EXPECT_EQ(*get.results()[0], value.size());
  EXPECT_EQ(back, value);
}

// --- the local path ---

// A key, or now and then one the node must refuse: no namespace, one too long or not
// printable, a digest of the wrong length.
void FuzzKey(Fuzz& f, v1::Key* out) {
  ToProto(TestKey(f.Below(kKeySpace)), out);
  if (!f.OneIn(8)) return;
  switch (f.Below(4)) {
    case 0:
      out->clear_ns();
      break;
    case 1:
      out->set_ns(std::string(kMaxNamespaceBytes + 1, 'n'));
      break;
    case 2:
      out->set_ns("bad\nns");
      break;
    default:
      out->set_digest(std::string(f.Below(40), 'd'));
      break;
  }
}

// A lease: mostly one this connection was granted, else one granted elsewhere or made up.
uint64_t FuzzLease(Fuzz& f, const std::vector<uint64_t>& mine, const std::vector<uint64_t>& all) {
  if (!mine.empty() && !f.OneIn(4)) return mine[f.Below(mine.size())];
  if (!all.empty() && f.OneIn(2)) return all[f.Below(all.size())];
  return f.OneIn(2) ? f.EdgeU64() : f.Any();
}

v1::LocalRequest LocalStep(Fuzz& f, const std::vector<uint64_t>& mine,
                           const std::vector<uint64_t>& all) {
  v1::LocalRequest req;
  req.set_id(f.Any());
  if (f.OneIn(10)) {
    for (uint64_t i = 0, n = f.Below(4); i < n; ++i) FuzzKey(f, req.mutable_report()->add_hits());
    req.mutable_report()->set_misses(f.EdgeU64());
  }
  const uint64_t kind = f.Below(100);
  if (kind < 8) {
    req.mutable_hello()->set_cd_key(f.OneIn(2) ? kCdKey : "");
  } else if (kind < 30) {
    for (uint64_t i = 0, n = 1 + f.Below(4); i < n; ++i) {
      v1::LocalWrite* w = req.mutable_write()->add_items();
      FuzzKey(f, w->mutable_key());
      w->set_size(f.OneIn(4) ? f.EdgeU64() : f.ValueSize());
      if (f.OneIn(2)) FuzzKey(f, w->mutable_parent());
    }
    req.mutable_write()->set_lease_ms(f.EdgeU32());
  } else if (kind < 55) {
    v1::LocalSeal* seal = req.mutable_seal();
    const uint64_t n = f.Below(5);
    const bool blanks = f.OneIn(3);
    for (uint64_t i = 0; i < n; ++i) {
      seal->add_leases(FuzzLease(f, mine, all));
      if (f.OneIn(2)) seal->add_checksums(f.OneIn(2) ? 0 : f.Any());
      if (blanks) {
        v1::LocalWrite* w = seal->add_keys();
        FuzzKey(f, w->mutable_key());
        w->set_size(f.ValueSize());
        if (f.OneIn(2)) FuzzKey(f, w->mutable_parent());
      }
    }
    if (blanks && f.OneIn(8)) FuzzKey(f, seal->add_keys()->mutable_key());  // one key too many
    if (f.OneIn(2)) {
      seal->set_blanks(f.OneIn(4) ? f.EdgeU32() : 1 + f.Below(4));
      seal->set_blank_size(f.OneIn(4) ? f.EdgeU64() : f.ValueSize());
    }
  } else if (kind < 70) {
    for (uint64_t i = 0, n = 1 + f.Below(4); i < n; ++i) FuzzKey(f, req.mutable_read()->add_keys());
  } else if (kind < 85) {
    for (uint64_t i = 0, n = f.Below(4); i < n; ++i) {
      req.mutable_release()->add_leases(FuzzLease(f, mine, all));
    }
    req.mutable_release()->set_no_reply(f.OneIn(2));
  } else if (kind < 95) {
    for (uint64_t i = 0, n = f.Below(7); i < n; ++i) {
      FuzzKey(f, req.mutable_match_prefix()->add_keys());
    }
  } else {
    for (uint64_t i = 0, n = f.Below(4); i < n; ++i) {
      FuzzKey(f, req.mutable_read_report()->add_hits());
    }
  }
  return req;
}

TEST_F(ProtocolFuzzTest, TheLocalPathSurvivesMalformedAndHostileRequests) {
  auto server = StartLocalServer("fuzz");
  ASSERT_TRUE(server.ok()) << server.status();
  const std::string& path = local_path_;

  Fuzz f(seed_);
  std::vector<uint64_t> all;  // every lease granted to any connection
  // Connections kept open (holding their leases) across cases.
  std::vector<std::unique_ptr<testing::RawLocal>> held;
  uint64_t answered = 0, granted = 0;
  for (uint64_t c = 0; c < cases_; ++c) {
    SCOPED_TRACE(absl::StrCat("EMS_FUZZ_SEED=", seed_, " case ", c));
    auto raw = std::make_unique<testing::RawLocal>(path);
    ASSERT_TRUE(raw->ok()) << errno;
    std::vector<uint64_t> mine;
    for (uint64_t step = 0, n = 1 + f.Below(8); step < n; ++step) {
      const v1::LocalRequest req = LocalStep(f, mine, all);
      std::string bytes = req.SerializeAsString();
      const bool mutated = f.OneIn(8);
      if (mutated) f.Mutate(&bytes);
      if (!raw->SendBytes(bytes)) break;
      // A zero-length packet reads as the end of the connection on SOCK_SEQPACKET (recv
      // returns 0 for both): the node ends it, and answers nothing after it.
      if (bytes.empty()) break;
      // A well-formed request is answered unless it asked for no answer; a mutated one may
      // have turned into anything, so it gets a short wait.
      const bool silent = req.has_read_report() || (req.has_release() && req.release().no_reply());
      // A well-formed request that asks for an answer gets one, with its id (answers to
      // mutated requests before it may come first); a mutated one may have turned into
      // anything, so its answer, if any, is only collected.
      const bool expected = !mutated && !silent;
      v1::LocalResponse resp;
      bool got = false;
      while (raw->Receive(&resp, nullptr, expected ? 10000 : 2)) {
        got = !expected || resp.id() == req.id();
        if (got) break;
      }
      if (!got) {
        EXPECT_FALSE(expected) << "no answer to " << req.ShortDebugString();
        continue;
      }
      ++answered;
      for (const auto& grants : {resp.grants(), resp.blanks()}) {
        for (const v1::LocalGrant& g : grants) {
          if (g.code() != 0 || g.lease() == 0) continue;
          ++granted;
          mine.push_back(g.lease());
          all.push_back(g.lease());
        }
      }
    }
    if (f.OneIn(5)) {
      held.push_back(std::move(raw));  // dies later, holding what it was granted
      if (held.size() > 3) held.erase(held.begin());
    }
  }
  held.clear();
  std::printf("local fuzz: %llu cases, %llu answers, %llu leases granted\n",
              static_cast<unsigned long long>(cases_), static_cast<unsigned long long>(answered),
              static_cast<unsigned long long>(granted));
  EXPECT_GT(granted, 0u);
  EXPECT_TRUE(DrainsToZero([&] { return (*server)->connections(); }))
      << (*server)->connections() << " connections still open";
  // Closing a connection ends its leases on the server's thread: wait for the last of them.
  EXPECT_TRUE(DrainsToZero([&] {
    const pool::PoolStats s = pool_->Stats();
    return s.pinned_blocks + s.unsealed_blocks + s.blank_blocks;
  }));
  ExpectPoolIntact();

  // A well-behaved client is still served, byte for byte.
  auto channel = client::LocalChannel::Connect({.socket_path = path, .verify_checksums = true});
  ASSERT_TRUE(channel.ok()) << channel.status();
  const BlockKey key = TestKey(1000);
  const std::vector<uint8_t> value = TestValue(1000, 100000);
  ASSERT_TRUE((*channel)->Put(key, value).ok());
  std::vector<uint8_t> back(value.size());
  auto got = (*channel)->Get(key, absl::MakeSpan(back));
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(*got, value.size());
  EXPECT_EQ(back, value);
}

// An answer is never an empty packet: a request with id 0 whose answer says nothing else
// (no keys matched) got a zero-length reply, which the client reads like a closed socket. The
// fuzz found it under ThreadSanitizer's timing.
TEST_F(ProtocolFuzzTest, AnAnswerWithNothingToSayIsStillAPacketWithContent) {
  auto server = StartLocalServer("empty");
  ASSERT_TRUE(server.ok()) << server.status();
  testing::RawLocal raw(local_path_);
  ASSERT_TRUE(raw.ok());
  v1::LocalRequest nothing;  // id 0, no keys: matched 0, code OK
  nothing.mutable_match_prefix();
  v1::LocalResponse resp;
  ASSERT_TRUE(raw.Send(nothing));
  ASSERT_TRUE(raw.Receive(&resp, nullptr, 10000)) << "a zero-length answer reads as the end";
  EXPECT_TRUE(resp.has_id());
  EXPECT_EQ(resp.id(), 0u);
  EXPECT_EQ(resp.matched(), 0u);
  // And the connection still serves.
  nothing.set_id(5);
  ASSERT_TRUE(raw.Call(nothing, &resp));
  EXPECT_EQ(resp.id(), 5u);
}

}  // namespace
}  // namespace ems
