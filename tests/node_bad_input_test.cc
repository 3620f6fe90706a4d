// Bad input sent to a real ems-node process: each gets a clear error, and the node keeps
// serving with every other block intact.
#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>

#include <filesystem>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/match.h"
#include "absl/synchronization/notification.h"
#include "client/client.h"
#include "common/key_proto.h"
#include "ems/v1/data.grpc.pb.h"
#include "gtest/gtest.h"
#include "testing/blocks.h"
#include "testing/local_raw.h"
#include "testing/process.h"

namespace ems {
namespace {

using testing::TestKey;
using testing::TestValue;

class NodeBadInputTest : public ::testing::Test {
 protected:
  void SetUp() override {
    socket_ =
        (std::filesystem::temp_directory_path() / ("ems-bad-" + std::to_string(getpid()) + ".sock"))
            .string();
    // 16 MiB pool; values may be up to 32 MiB, so "larger than the pool" is reachable.
    auto node = testing::StartNode(
        {"--huge_page_num=8", "--max_value_bytes=33554432", "--local_socket=" + socket_});
    ASSERT_TRUE(node.ok()) << node.status();
    node_ = *std::move(node);
    address_ = node_->Value("LISTENING");
    auto client = Client::Connect({.address = address_, .use_local = false});
    ASSERT_TRUE(client.ok()) << client.status();
    client_ = *std::move(client);
    stub_ =
        v1::DataPlane::NewStub(grpc::CreateChannel(address_, grpc::InsecureChannelCredentials()));
    // A block that must survive everything below.
    keeper_ = TestValue(1, 100000);
    ASSERT_TRUE(client_->Put(TestKey(1), keeper_).ok());
  }
  void TearDown() override {
    // The node is SIGKILLed when the test ends, so it never removes its socket itself.
    absl::Cleanup remove_socket = [this] {
      std::error_code ignored;
      std::filesystem::remove(socket_, ignored);
    };
    // The node is alive and the keeper block is intact.
    std::vector<uint8_t> out(keeper_.size());
    auto n = client_->Get(TestKey(1), absl::MakeSpan(out));
    ASSERT_TRUE(n.ok()) << n.status();
    EXPECT_EQ(out, keeper_);
    EXPECT_TRUE(node_->running());
  }

  grpc::Status RawPut(const std::string& ns, const std::string& digest, const std::string& value,
                      v1::PutResponse* resp) {
    grpc::ClientContext ctx;
    v1::PutRequest req;
    req.mutable_key()->set_ns(ns);
    req.mutable_key()->set_digest(digest);
    req.set_value(value);
    return stub_->Put(&ctx, req, resp);
  }

  std::string socket_;
  std::string address_;
  std::unique_ptr<testing::Process> node_;
  std::unique_ptr<Client> client_;
  std::unique_ptr<v1::DataPlane::Stub> stub_;
  std::vector<uint8_t> keeper_;
};

TEST_F(NodeBadInputTest, MalformedKeysAreInvalidArgument) {
  v1::PutResponse resp;
  const std::string digest(16, 'd');
  grpc::Status s = RawPut("", digest, "v", &resp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_TRUE(absl::StrContains(s.error_message(), "namespace is empty")) << s.error_message();
  s = RawPut(std::string(257, 'n'), digest, "v", &resp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_TRUE(absl::StrContains(s.error_message(), "257")) << s.error_message();
  s = RawPut("ns", std::string(15, 'd'), "v", &resp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_TRUE(absl::StrContains(s.error_message(), "digest")) << s.error_message();
  s = RawPut("ns", "", "v", &resp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  s = RawPut("ns", digest, "", &resp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_TRUE(absl::StrContains(s.error_message(), "empty")) << s.error_message();

  grpc::ClientContext ctx;
  v1::MatchPrefixRequest mreq;
  mreq.add_keys()->set_ns("ok");
  mreq.mutable_keys(0)->set_digest(digest);
  mreq.add_keys()->set_ns("ok");  // keys[1] has no digest
  v1::MatchPrefixResponse mresp;
  s = stub_->MatchPrefix(&ctx, mreq, &mresp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_TRUE(absl::StrContains(s.error_message(), "keys[1]")) << s.error_message();
}

// A key with a namespace over 256 bytes is refused before anything is sent. Over 64 KiB its
// length does not fit the bulk channel's 16 bits: this one (65536 + 20 bytes) went out as a
// valid 20-byte namespace followed by 64 KiB that the node read as the next request, and the
// client's next call on that pooled connection got the answer to that garbage.
TEST_F(NodeBadInputTest, AnOverlongNamespaceIsRefusedBeforeItIsSent) {
  BlockKey bad = TestKey(5);
  bad.ns = std::string(65536 + 20, 'n');
  const auto value = TestValue(5, 1000);
  std::vector<uint8_t> out(value.size());
  // A message may quote the 64 KiB namespace: print its start only.
  auto head = [](const absl::Status& s) { return s.ToString().substr(0, 200); };

  auto got = client_->Get(bad, absl::MakeSpan(out));
  EXPECT_EQ(got.status().code(), absl::StatusCode::kInvalidArgument) << head(got.status());
  EXPECT_TRUE(absl::StrContains(got.status().message(), "namespace is 65556 bytes"))
      << head(got.status());
  auto matched = client_->MatchPrefix({TestKey(1), bad});
  EXPECT_EQ(matched.status().code(), absl::StatusCode::kInvalidArgument) << head(matched.status());
  EXPECT_TRUE(absl::StrContains(matched.status().message(), "keys[1]")) << head(matched.status());
  absl::Status put = client_->Put(bad, value);
  EXPECT_EQ(put.code(), absl::StatusCode::kInvalidArgument) << head(put);
  EXPECT_TRUE(absl::StrContains(put.message(), "namespace is 65556 bytes")) << head(put);
  put = client_->Put(TestKey(5), value, &bad);
  EXPECT_EQ(put.code(), absl::StatusCode::kInvalidArgument) << head(put);
  EXPECT_TRUE(absl::StrContains(put.message(), "parent")) << head(put);

  // The client's connections are in step: normal calls work (and TearDown reads the keeper).
  matched = client_->MatchPrefix({TestKey(1)});
  ASSERT_TRUE(matched.ok()) << head(matched.status());
  EXPECT_EQ(*matched, 1u);
  ASSERT_TRUE(client_->Put(TestKey(5), value).ok());
  got = client_->Get(TestKey(5), absl::MakeSpan(out));
  ASSERT_TRUE(got.ok()) << head(got.status());
  EXPECT_EQ(out, value);
}

// One key with a bad namespace byte in a BatchGet is that item's error, named, and no other
// item's: the node refuses a request holding such a key whole, and every block asked of it in
// the same request (here the keeper, stored and intact) came back INVALID_ARGUMENT too.
TEST_F(NodeBadInputTest, ABadKeyInABatchFailsOnlyItself) {
  BlockKey bad = TestKey(7);
  bad.ns = "test model";  // a space: not printable ASCII as namespaces must be
  for (bool bulk : {true, false}) {
    auto client = Client::Connect({.address = address_, .use_local = false, .use_bulk = bulk});
    ASSERT_TRUE(client.ok()) << client.status();
    std::vector<uint8_t> good(keeper_.size()), other(keeper_.size());
    std::vector<GetItem> items = {{TestKey(1), absl::MakeSpan(good)}, {bad, absl::MakeSpan(other)}};
    auto got = (*client)->BatchGet(items);
    ASSERT_EQ(got.size(), 2u);
    EXPECT_TRUE(got[0].ok()) << (bulk ? "bulk: " : "gRPC: ") << got[0].status();
    if (got[0].ok()) {
      EXPECT_EQ(good, keeper_);
    }
    EXPECT_EQ(got[1].status().code(), absl::StatusCode::kInvalidArgument) << got[1].status();
    EXPECT_TRUE(absl::StrContains(got[1].status().message(), "non-printable byte 0x20"))
        << got[1].status();

    // A BatchPut already kept them apart (the node checks each put's key): the good block is
    // stored, the bad one refused.
    const BlockKey fresh = TestKey(bulk ? 11 : 12);
    const std::vector<uint8_t> value(4096, bulk ? 'b' : 'g');
    std::vector<PutItem> puts = {{fresh, value, nullptr}, {bad, value, nullptr}};
    auto stored = (*client)->BatchPut(puts);
    ASSERT_EQ(stored.size(), 2u);
    EXPECT_TRUE(stored[0].ok()) << (bulk ? "bulk: " : "gRPC: ") << stored[0];
    EXPECT_EQ(stored[1].code(), absl::StatusCode::kInvalidArgument) << stored[1];
    std::vector<uint8_t> back(value.size());
    auto n = (*client)->Get(fresh, absl::MakeSpan(back));
    ASSERT_TRUE(n.ok()) << n.status();
    EXPECT_EQ(back, value);
  }
}

TEST_F(NodeBadInputTest, OversizeValuesAreRefused) {
  const std::vector<uint8_t> over_max(33554432 + 1, 'x');
  absl::Status s = client_->Put(TestKey(2), over_max);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
  EXPECT_TRUE(absl::StrContains(s.message(), "maximum")) << s;
  const std::vector<uint8_t> over_pool(20 << 20, 'y');  // within max, larger than the pool
  s = client_->Put(TestKey(3), over_pool);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
  EXPECT_TRUE(absl::StrContains(s.message(), "pool")) << s;
}

TEST_F(NodeBadInputTest, RePutWithAnotherSizeIsAlreadyExists) {
  absl::Status s = client_->Put(TestKey(1), TestValue(1, 5000));
  EXPECT_EQ(s.code(), absl::StatusCode::kAlreadyExists) << s;
  EXPECT_TRUE(absl::StrContains(s.message(), "100000")) << s;
  EXPECT_TRUE(client_->Put(TestKey(1), keeper_).ok()) << "same size: a no-op success";
}

TEST_F(NodeBadInputTest, GarbageBytesInsteadOfAMessageAreRejected) {
  auto channel = grpc::CreateChannel(address_, grpc::InsecureChannelCredentials());
  grpc::GenericStub generic(channel);
  const char garbage[] = "\xff\xff\xff\xff\x0f not a protobuf";
  grpc::Slice slice(garbage, sizeof(garbage) - 1);
  grpc::ByteBuffer request(&slice, 1);
  for (const char* method : {"/ems.v1.DataPlane/Put", "/ems.v1.DataPlane/BatchGet"}) {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    grpc::ByteBuffer response;
    grpc::Status status;
    absl::Notification done;
    generic.UnaryCall(&ctx, method, grpc::StubOptions(), &request, &response, [&](grpc::Status s) {
      status = std::move(s);
      done.Notify();
    });
    done.WaitForNotification();
    EXPECT_FALSE(status.ok()) << method;
    EXPECT_NE(status.error_code(), grpc::StatusCode::DEADLINE_EXCEEDED) << "never a hang";
  }
}

TEST_F(NodeBadInputTest, PoolFullOfPinnedBlocksIsResourceExhausted) {
  testing::RawLocal raw(socket_);
  ASSERT_TRUE(raw.ok());
  {  // Pin the keeper first so the fill below cannot evict it.
    v1::LocalRequest req;
    ToProto(TestKey(1), req.mutable_read()->add_keys());
    v1::LocalResponse resp;
    ASSERT_TRUE(raw.Call(req, &resp));
    ASSERT_EQ(resp.grants(0).code(), 0);
  }
  // Fill the pool, then pin every block through the local socket and hold the pins.
  std::vector<BlockKey> keys;
  for (int i = 10; i < 40; ++i) {
    absl::Status s = client_->Put(TestKey(i), TestValue(i, 1 << 20));
    if (s.ok()) keys.push_back(TestKey(i));
  }
  v1::LocalRequest req;
  for (const BlockKey& k : keys) ToProto(k, req.mutable_read()->add_keys());
  v1::LocalResponse resp;
  ASSERT_TRUE(raw.Call(req, &resp));
  int pinned = 0;
  for (const auto& g : resp.grants()) pinned += g.code() == 0;
  ASSERT_GE(pinned, 12) << "most of the 16 MiB pool is pinned";

  absl::Status s = client_->Put(TestKey(100), TestValue(100, 8 << 20));
  EXPECT_EQ(s.code(), absl::StatusCode::kResourceExhausted) << s;
  EXPECT_TRUE(absl::StrContains(s.message(), "evictable")) << s;
  // Pinned blocks are untouched and still readable.
  for (int i = 0; i < static_cast<int>(keys.size()); ++i) {
    if (resp.grants(i).code() != 0) continue;
    std::vector<uint8_t> out(1 << 20);
    ASSERT_TRUE(client_->Get(keys[i], absl::MakeSpan(out)).ok());
    uint64_t id = 0;
    for (int k = 10; k < 40; ++k) {
      if (TestKey(k) == keys[i]) id = k;
    }
    EXPECT_EQ(out, TestValue(id, 1 << 20));
  }
}

}  // namespace
}  // namespace ems
