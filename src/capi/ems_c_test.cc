// The C API against a real ems-node on loopback; every byte read back is verified.
#include "capi/ems_c.h"

#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "testing/blocks.h"
#include "testing/process.h"

namespace ems {
namespace {

constexpr char kNs[] = "capi/test";

ems_key CKey(uint64_t i) {
  const BlockKey k = testing::TestKey(i, kNs);
  ems_key out{kNs, std::strlen(kNs), {}};
  std::memcpy(out.digest, k.digest.bytes.data(), EMS_DIGEST_BYTES);
  return out;
}

// Takes ownership of an errmsg and returns it as a string.
std::string Take(char* err) {
  std::string s = err != nullptr ? err : "";
  ems_free(err);
  return s;
}

class CApiTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto node = testing::StartNode({"--huge_page_num=32"});  // 64 MiB
    ASSERT_TRUE(node.ok()) << node.status();
    node_ = *std::move(node);
    address_ = node_->Value("LISTENING");
    ems_client_options options;
    ems_client_options_init(&options);
    options.address = address_.c_str();
    char* err = nullptr;
    ASSERT_EQ(ems_client_connect(&options, &client_, &err), EMS_OK) << Take(err);
  }
  void TearDown() override { ems_client_destroy(client_); }

  std::unique_ptr<testing::Process> node_;
  std::string address_;
  ems_client* client_ = nullptr;
};

TEST_F(CApiTest, PutGetRoundTrip) {
  for (uint64_t i = 0; i < 4; ++i) {
    const auto value = testing::TestValue(i, (size_t{1} << 20) + i * 4097);
    const ems_key key = CKey(i);
    char* err = nullptr;
    ASSERT_EQ(ems_put(client_, &key, value.data(), value.size(), nullptr, &err), EMS_OK)
        << Take(err);
    std::vector<uint8_t> out(value.size() + 100, 0xee);
    size_t size = 0;
    ASSERT_EQ(ems_get(client_, &key, out.data(), out.size(), &size, &err), EMS_OK) << Take(err);
    ASSERT_EQ(size, value.size());
    out.resize(size);
    ASSERT_EQ(out, value);
  }
}

TEST_F(CApiTest, GetReportsMissAndSmallBuffer) {
  const ems_key key = CKey(7);
  std::vector<uint8_t> out(16);
  size_t size = 0;
  char* err = nullptr;
  EXPECT_EQ(ems_get(client_, &key, out.data(), out.size(), &size, &err), EMS_NOT_FOUND);
  Take(err);
  const auto value = testing::TestValue(7, 4096);
  ASSERT_EQ(ems_put(client_, &key, value.data(), value.size(), nullptr, nullptr), EMS_OK);
  err = nullptr;
  EXPECT_EQ(ems_get(client_, &key, out.data(), out.size(), &size, &err), EMS_OUT_OF_RANGE);
  const std::string msg = Take(err);
  EXPECT_NE(msg.find("4096"), std::string::npos) << msg;
}

TEST_F(CApiTest, BadArgumentsNameWhatWasWrong) {
  ems_key key = CKey(1);
  key.ns = "bad namespace";  // a space is not printable-non-blank ASCII
  key.ns_len = std::strlen(key.ns);
  char* err = nullptr;
  const uint8_t byte = 1;
  EXPECT_EQ(ems_put(client_, &key, &byte, 1, nullptr, &err), EMS_INVALID_ARGUMENT);
  EXPECT_NE(Take(err).find("key"), std::string::npos);
  err = nullptr;
  EXPECT_EQ(ems_put(client_, nullptr, &byte, 1, nullptr, &err), EMS_INVALID_ARGUMENT);
  EXPECT_NE(Take(err).find("`key` is NULL"), std::string::npos);
  err = nullptr;
  key = CKey(1);
  EXPECT_EQ(ems_put(client_, &key, nullptr, 10, nullptr, &err), EMS_INVALID_ARGUMENT);
  EXPECT_NE(Take(err).find("`value`"), std::string::npos);
  // A second put of the same key with another size.
  const auto v = testing::TestValue(1, 100);
  ASSERT_EQ(ems_put(client_, &key, v.data(), v.size(), nullptr, nullptr), EMS_OK);
  EXPECT_EQ(ems_put(client_, &key, v.data(), 50, nullptr, nullptr), EMS_ALREADY_EXISTS);
}

// ns_len is checked before the namespace is copied: a wrong one is an error naming the length,
// not a std::length_error thrown into a C caller (nor a read past the string).
TEST_F(CApiTest, NamespaceLengthIsCheckedBeforeTheCopy) {
  const std::string long_ns(300, 'n');
  for (size_t ns_len : {size_t{257}, SIZE_MAX}) {
    SCOPED_TRACE(ns_len);
    ems_key key = CKey(1);
    key.ns = long_ns.c_str();
    key.ns_len = ns_len;
    const uint8_t byte = 1;
    char* err = nullptr;
    EXPECT_EQ(ems_put(client_, &key, &byte, 1, nullptr, &err), EMS_INVALID_ARGUMENT);
    std::string msg = Take(err);
    EXPECT_NE(
        msg.find(absl::StrCat("key: key namespace is ", ns_len, " bytes; the maximum is 256")),
        std::string::npos)
        << msg;
    err = nullptr;
    size_t matched = 0;
    EXPECT_EQ(ems_match_prefix(client_, &key, 1, &matched, &err), EMS_INVALID_ARGUMENT);
    msg = Take(err);
    EXPECT_NE(msg.find("keys[0]"), std::string::npos) << msg;
  }
  // The client is unharmed.
  const ems_key key = CKey(1);
  const auto v = testing::TestValue(1, 100);
  EXPECT_EQ(ems_put(client_, &key, v.data(), v.size(), nullptr, nullptr), EMS_OK);
}

// No exception reaches a C caller (it would terminate the host): a batch larger than any
// container can hold is an error code.
TEST_F(CApiTest, AnExceptionBecomesAnErrorCode) {
  const auto v = testing::TestValue(2, 100);
  ems_put_item put{CKey(2), v.data(), v.size(), nullptr};
  char* err = nullptr;
  EXPECT_EQ(ems_batch_put(client_, &put, SIZE_MAX / 2, nullptr, &err), EMS_RESOURCE_EXHAUSTED);
  EXPECT_FALSE(Take(err).empty());
  std::vector<uint8_t> buf(100);
  ems_get_item get{CKey(2), buf.data(), buf.size(), 0, EMS_OK};
  err = nullptr;
  EXPECT_EQ(ems_batch_get(client_, &get, SIZE_MAX / 2, &err), EMS_RESOURCE_EXHAUSTED);
  EXPECT_FALSE(Take(err).empty());
  // The client is unharmed.
  ASSERT_EQ(ems_batch_put(client_, &put, 1, nullptr, nullptr), EMS_OK);
  ASSERT_EQ(ems_batch_get(client_, &get, 1, nullptr), EMS_OK);
  EXPECT_EQ(buf, v);
}

TEST_F(CApiTest, BatchPutGetMatchPrefixRemove) {
  constexpr size_t kN = 6;
  std::vector<std::vector<uint8_t>> values;
  std::vector<ems_key> keys;
  std::vector<ems_put_item> puts;
  for (size_t i = 0; i < kN; ++i) {
    values.push_back(testing::TestValue(100 + i, 65536 + i));
    keys.push_back(CKey(100 + i));
  }
  // Store only the first four, each naming its parent.
  for (size_t i = 0; i < 4; ++i) {
    puts.push_back({keys[i], values[i].data(), values[i].size(), i > 0 ? &keys[i - 1] : nullptr});
  }
  ems_code codes[4];
  char* err = nullptr;
  ASSERT_EQ(ems_batch_put(client_, puts.data(), puts.size(), codes, &err), EMS_OK) << Take(err);
  for (ems_code c : codes) EXPECT_EQ(c, EMS_OK);

  size_t matched = 0;
  ASSERT_EQ(ems_match_prefix(client_, keys.data(), kN, &matched, &err), EMS_OK) << Take(err);
  EXPECT_EQ(matched, 4u);

  std::vector<std::vector<uint8_t>> bufs(kN, std::vector<uint8_t>(70000));
  std::vector<ems_get_item> gets(kN);
  for (size_t i = 0; i < kN; ++i) gets[i] = {keys[i], bufs[i].data(), bufs[i].size(), 0, EMS_OK};
  ASSERT_EQ(ems_batch_get(client_, gets.data(), kN, &err), EMS_OK) << Take(err);
  for (size_t i = 0; i < kN; ++i) {
    SCOPED_TRACE(i);
    if (i < 4) {
      ASSERT_EQ(gets[i].code, EMS_OK);
      ASSERT_EQ(gets[i].size, values[i].size());
      bufs[i].resize(gets[i].size);
      EXPECT_EQ(bufs[i], values[i]);
    } else {
      EXPECT_EQ(gets[i].code, EMS_NOT_FOUND);
    }
  }

  size_t removed = 0;
  ASSERT_EQ(ems_remove(client_, keys.data(), 2, &removed, &err), EMS_OK) << Take(err);
  EXPECT_EQ(removed, 2u);
  ASSERT_EQ(ems_match_prefix(client_, keys.data(), kN, &matched, nullptr), EMS_OK);
  EXPECT_EQ(matched, 0u);
}

TEST_F(CApiTest, BatchPutReportsTheFirstFailedItem) {
  const auto v = testing::TestValue(3, 1000);
  ems_key bad = CKey(3);
  bad.ns_len = 0;  // empty namespace
  ems_put_item items[2] = {{CKey(2), v.data(), v.size(), nullptr}, {bad, v.data(), 10, nullptr}};
  char* err = nullptr;
  EXPECT_EQ(ems_batch_put(client_, items, 2, nullptr, &err), EMS_INVALID_ARGUMENT);
  EXPECT_NE(Take(err).find("items[1].key"), std::string::npos);
}

// A bad item is one failed item: codes[i] and items[i].code say what became of every item (a
// caller that trusts codes[0] == EMS_OK must find items[0] stored, or read).
TEST_F(CApiTest, ABadItemFailsAloneAndEveryItemGetsItsCode) {
  const auto v = testing::TestValue(4, 1000);
  ems_key bad = CKey(5);
  bad.ns_len = 0;  // empty namespace
  ems_put_item puts[3] = {{CKey(4), v.data(), v.size(), nullptr},
                          {bad, v.data(), v.size(), nullptr},
                          {CKey(6), v.data(), v.size(), nullptr}};
  ems_code codes[3] = {EMS_OK, EMS_OK, EMS_OK};  // as calloc leaves them
  char* err = nullptr;
  EXPECT_EQ(ems_batch_put(client_, puts, 3, codes, &err), EMS_INVALID_ARGUMENT);
  EXPECT_NE(Take(err).find("items[1].key"), std::string::npos);
  EXPECT_EQ(codes[1], EMS_INVALID_ARGUMENT);
  for (int i : {0, 2}) {
    SCOPED_TRACE(i);
    ASSERT_EQ(codes[i], EMS_OK);
    std::vector<uint8_t> out(v.size());
    size_t got = 0;
    ASSERT_EQ(ems_get(client_, &puts[i].key, out.data(), out.size(), &got, &err), EMS_OK)
        << Take(err);
    EXPECT_EQ(out, v);
  }

  // Items reused from an earlier batch: their code and size must not survive.
  std::vector<std::vector<uint8_t>> bufs(3, std::vector<uint8_t>(v.size(), 0xee));
  ems_get_item gets[3];
  for (int i = 0; i < 3; ++i) gets[i] = {puts[i].key, bufs[i].data(), v.size(), v.size(), EMS_OK};
  err = nullptr;
  EXPECT_EQ(ems_batch_get(client_, gets, 3, &err), EMS_INVALID_ARGUMENT);
  EXPECT_NE(Take(err).find("items[1].key"), std::string::npos);
  EXPECT_EQ(gets[1].code, EMS_INVALID_ARGUMENT);
  EXPECT_EQ(gets[1].size, 0u);
  for (int i : {0, 2}) {
    SCOPED_TRACE(i);
    ASSERT_EQ(gets[i].code, EMS_OK);
    ASSERT_EQ(gets[i].size, v.size());
    EXPECT_EQ(bufs[i], v);
  }
}

TEST(CApiHashTest, MatchesTheCppHasher) {
  std::vector<uint32_t> tokens(4096);
  for (size_t i = 0; i < tokens.size(); ++i) tokens[i] = static_cast<uint32_t>(i * 2654435761u);
  for (ems_hash_algorithm algo : {EMS_HASH_XXH3_128, EMS_HASH_SHA256}) {
    PrefixHasher hasher(
        256, algo == EMS_HASH_SHA256 ? HashAlgorithm::kSha256 : HashAlgorithm::kXxh3_128);
    const std::vector<Digest> want = hasher.Hash(tokens, "extra");
    std::vector<uint8_t> got(want.size() * EMS_DIGEST_BYTES);
    size_t n = 0;
    ASSERT_EQ(ems_prefix_hash(algo, 256, nullptr, tokens.data(), tokens.size() + 0, "extra", 5,
                              got.data(), want.size(), &n, nullptr),
              EMS_OK);
    ASSERT_EQ(n, want.size());
    for (size_t i = 0; i < n; ++i) {
      EXPECT_EQ(std::memcmp(got.data() + i * EMS_DIGEST_BYTES, want[i].bytes.data(), 16), 0);
    }
  }
}

}  // namespace
}  // namespace ems
