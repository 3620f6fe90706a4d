#include "common/key.h"

#include "common/key_proto.h"
#include "gtest/gtest.h"

namespace ems {
namespace {

TEST(KeyTest, DigestHexRoundTrip) {
  auto d = Digest::FromHex("000102030405060708090a0b0c0d0e0f");
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_EQ(d->bytes[15], 0x0f);
  EXPECT_EQ(d->ToHex(), "000102030405060708090a0b0c0d0e0f");
}

TEST(KeyTest, RejectsBadDigests) {
  EXPECT_EQ(Digest::FromHex("abc").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Digest::FromHex("zz0102030405060708090a0b0c0d0e0f").status().code(),
            absl::StatusCode::kInvalidArgument);
  auto short_digest = MakeKey("model", std::string(15, 'a'));
  ASSERT_FALSE(short_digest.ok());
  EXPECT_NE(short_digest.status().message().find("15"), std::string::npos);
}

TEST(KeyTest, WireFormRoundTripsAndNamesWhatIsWrong) {
  auto d = Digest::FromHex("00112233445566778899aabbccddeeff");
  ASSERT_TRUE(d.ok()) << d.status();
  const BlockKey key{"llama3-8b/bf16/tp1", *d};
  v1::Key wire;
  ToProto(key, &wire);
  EXPECT_EQ(wire.ns(), "llama3-8b/bf16/tp1");
  ASSERT_EQ(wire.digest().size(), kDigestBytes);
  EXPECT_EQ(static_cast<uint8_t>(wire.digest()[15]), 0xff);
  auto back = FromProto(wire);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(*back, key);

  wire.mutable_digest()->pop_back();
  auto short_digest = FromProto(wire);
  EXPECT_EQ(short_digest.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(short_digest.status().message().find("15"), std::string::npos);
  wire.set_digest(std::string(kDigestBytes, 'a'));
  wire.set_ns("has space");
  EXPECT_EQ(FromProto(wire).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(KeyTest, ValidatesNamespace) {
  EXPECT_TRUE(ValidateNamespace("llama3-8b/bf16/tp1").ok());
  EXPECT_EQ(ValidateNamespace("").code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ValidateNamespace(std::string(257, 'a')).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(ValidateNamespace(std::string(256, 'a')).ok());
  EXPECT_EQ(ValidateNamespace("has space").code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ValidateNamespace(std::string("nul\0x", 5)).code(), absl::StatusCode::kInvalidArgument);
}

TEST(KeyTest, KeysHashAndCompareByNamespaceAndDigest) {
  auto a = MakeKey("m", std::string(16, 'a'));
  auto b = MakeKey("n", std::string(16, 'a'));
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_FALSE(*a == *b);
  EXPECT_EQ(absl::HashOf(*a), absl::HashOf(*MakeKey("m", std::string(16, 'a'))));
  EXPECT_EQ(a->ToString(), "m/61616161616161616161616161616161");
}

}  // namespace
}  // namespace ems
