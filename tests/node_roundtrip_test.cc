// Round trips through a real ems-node process with ems::Client, over the bulk data channel and
// over gRPC messages; every byte is verified.
#include "absl/strings/numbers.h"
#include "bulk/wire.h"
#include "client/client.h"
#include "ems/v1/data.pb.h"
#include "gtest/gtest.h"
#include "httplib.h"
#include "testing/blocks.h"
#include "testing/process.h"

namespace ems {
namespace {

using testing::TestKey;
using testing::TestValue;

// The parameter: whether the client may use the node's bulk channel.
class NodeRoundTripTest : public ::testing::TestWithParam<bool> {
 protected:
  void SetUp() override {
    auto node = testing::StartNode({"--huge_page_num=100"});  // 200 MiB
    ASSERT_TRUE(node.ok()) << node.status();
    node_ = *std::move(node);
    auto client = Client::Connect({.address = node_->Value("LISTENING"), .use_bulk = GetParam()});
    ASSERT_TRUE(client.ok()) << client.status();
    client_ = *std::move(client);
  }

  std::unique_ptr<testing::Process> node_;
  std::unique_ptr<Client> client_;
};

TEST_P(NodeRoundTripTest, EverySizeUpToTheMaximum) {
  const size_t sizes[] = {1, 4095, 4096, 65536, 256 << 10, 2 << 20, 8 << 20, 64 << 20};
  for (size_t k = 0; k < std::size(sizes); ++k) {
    SCOPED_TRACE(sizes[k]);
    const auto value = TestValue(k, sizes[k]);
    ASSERT_TRUE(client_->Put(TestKey(k), value).ok());
    std::vector<uint8_t> out(sizes[k]);
    auto n = client_->Get(TestKey(k), absl::MakeSpan(out));
    ASSERT_TRUE(n.ok()) << n.status();
    ASSERT_EQ(*n, sizes[k]);
    ASSERT_EQ(out, value);
  }
}

TEST_P(NodeRoundTripTest, BatchesMatchPrefixExistsRemoveAndStats) {
  constexpr int kBlocks = 16;
  std::vector<std::vector<uint8_t>> values;
  std::vector<BlockKey> keys;
  std::vector<PutItem> puts;
  for (int i = 0; i < kBlocks; ++i) {
    values.push_back(TestValue(100 + i, 64 << 10));
    keys.push_back(TestKey(100 + i));
  }
  for (int i = 0; i < kBlocks; ++i) {
    puts.push_back({keys[i], values[i], i > 0 ? &keys[i - 1] : nullptr});
  }
  for (const absl::Status& s : client_->BatchPut(puts)) ASSERT_TRUE(s.ok()) << s;

  std::vector<std::vector<uint8_t>> bufs(kBlocks + 1, std::vector<uint8_t>(64 << 10));
  std::vector<GetItem> gets;
  for (int i = 0; i < kBlocks; ++i) gets.push_back({keys[i], absl::MakeSpan(bufs[i])});
  gets.push_back({TestKey(999), absl::MakeSpan(bufs[kBlocks])});
  auto got = client_->BatchGet(gets);
  for (int i = 0; i < kBlocks; ++i) {
    ASSERT_TRUE(got[i].ok()) << got[i].status();
    EXPECT_EQ(bufs[i], values[i]) << i;
  }
  EXPECT_EQ(got[kBlocks].status().code(), absl::StatusCode::kNotFound);

  std::vector<BlockKey> prompt(keys.begin(), keys.begin() + 10);
  prompt.push_back(TestKey(999));
  prompt.push_back(keys[11]);
  auto matched = client_->MatchPrefix(prompt);
  ASSERT_TRUE(matched.ok()) << matched.status();
  EXPECT_EQ(*matched, 10u);

  auto exists = client_->Exists({keys[0], TestKey(999)});
  ASSERT_TRUE(exists.ok());
  EXPECT_EQ(*exists, (std::vector<bool>{true, false}));

  auto removed = client_->Remove({keys[0], keys[1], TestKey(999)});
  ASSERT_TRUE(removed.ok());
  EXPECT_EQ(*removed, 2u);
  EXPECT_EQ(*client_->MatchPrefix(keys), 0u);

  auto stats = client_->Stats();
  ASSERT_TRUE(stats.ok());
  EXPECT_EQ(stats->keys(), kBlocks - 2u);
  EXPECT_EQ(stats->put_count(), static_cast<uint64_t>(kBlocks));
  EXPECT_GE(stats->hit_count(), static_cast<uint64_t>(kBlocks));
  // hugetlb when the machine has 100 free 2 MB pages reserved, the THP fallback otherwise:
  // either way the node serves, and the field names the one it got (both ways are tested in
  // PoolTest).
  EXPECT_EQ(stats->capacity_bytes(), 200u << 20);
}

TEST_P(NodeRoundTripTest, SamePutTwiceIsANoOpAndSmallBufferIsOutOfRange) {
  const auto value = TestValue(7, 10000);
  ASSERT_TRUE(client_->Put(TestKey(7), value).ok());
  ASSERT_TRUE(client_->Put(TestKey(7), value).ok());
  std::vector<uint8_t> small(100);
  auto n = client_->Get(TestKey(7), absl::MakeSpan(small));
  EXPECT_EQ(n.status().code(), absl::StatusCode::kOutOfRange);
  EXPECT_NE(n.status().message().find("10000"), std::string::npos);
}

// The values went where the parameter says: the node counts open bulk connections.
TEST_P(NodeRoundTripTest, ValuesTravelOverTheChosenTransport) {
  const auto value = TestValue(7, 1 << 20);
  ASSERT_TRUE(client_->Put(TestKey(7), value).ok());
  std::vector<uint8_t> out(value.size());
  ASSERT_TRUE(client_->Get(TestKey(7), absl::MakeSpan(out)).ok());
  ASSERT_EQ(out, value);
  int port = 0;
  ASSERT_TRUE(absl::SimpleAtoi(node_->Value("METRICS"), &port));
  httplib::Client http("127.0.0.1", port);
  auto res = http.Get("/metrics");
  ASSERT_TRUE(res) << "metrics endpoint unreachable";
  const std::string expected =
      GetParam() ? "\nems_bulk_connections 1\n" : "\nems_bulk_connections 0\n";
  EXPECT_NE(res->body.find(expected), std::string::npos) << res->body;
}

// A node reads at most bulk::kMaxItems items in one request; a bigger batch to one node goes
// as several. Sent whole, the node refused it and closed the connection without reading it,
// and the client reported a transport failure for every item (in a cluster, silently dropped
// puts).
TEST(NodeBulkBatchTest, ABatchOverTheItemLimitIsSplit) {
  // 64-byte values in 4 KiB granules: 70,000 blocks take 274 MiB of arena.
  auto node = testing::StartNode({"--huge_page_num=160"});
  ASSERT_TRUE(node.ok()) << node.status();
  auto client = Client::Connect(
      {.address = (*node)->Value("LISTENING"), .use_local = false, .use_bulk = true});
  ASSERT_TRUE(client.ok()) << client.status();
  constexpr size_t kBlocks = 70000;
  static_assert(kBlocks > bulk::kMaxItems);
  std::vector<BlockKey> keys;
  std::vector<std::vector<uint8_t>> values;
  std::vector<PutItem> puts;
  for (size_t i = 0; i < kBlocks; ++i) {
    keys.push_back(TestKey(i));
    values.push_back(TestValue(i, 64));
  }
  for (size_t i = 0; i < kBlocks; ++i) puts.push_back({keys[i], values[i], nullptr});
  std::vector<absl::Status> put = (*client)->BatchPut(puts);
  for (size_t i = 0; i < kBlocks; ++i) ASSERT_TRUE(put[i].ok()) << i << ": " << put[i];

  std::vector<std::vector<uint8_t>> bufs(kBlocks, std::vector<uint8_t>(64));
  std::vector<GetItem> gets;
  for (size_t i = 0; i < kBlocks; ++i) gets.push_back({keys[i], absl::MakeSpan(bufs[i])});
  auto got = (*client)->BatchGet(gets);
  for (size_t i = 0; i < kBlocks; ++i) {
    ASSERT_TRUE(got[i].ok()) << i << ": " << got[i].status();
    ASSERT_EQ(*got[i], 64u) << i;
    ASSERT_EQ(bufs[i], values[i]) << i;
  }
  auto matched = (*client)->MatchPrefix(keys);
  ASSERT_TRUE(matched.ok()) << matched.status();
  EXPECT_EQ(*matched, kBlocks);
}

INSTANTIATE_TEST_SUITE_P(Transports, NodeRoundTripTest, ::testing::Bool(),
                         [](const ::testing::TestParamInfo<bool>& p) {
                           return p.param ? "BulkChannel" : "Grpc";
                         });

}  // namespace
}  // namespace ems
