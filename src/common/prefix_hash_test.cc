#include "common/prefix_hash.h"

#include <numeric>
#include <vector>

#include "gtest/gtest.h"

namespace ems {
namespace {

// Vectors computed outside this code: the encoded bytes of prefix_hash.h piped through
// `xxhsum -H2` and `sha256sum` (see docs/hashing.md for the recipe).
struct Vector {
  HashAlgorithm algo;
  const char* block0;        // tokens 0,1,2,3
  const char* block1;        // then tokens 4,5,6,7
  const char* block0_extra;  // tokens 0,1,2,3 with extra "lora:7"
  const char* big_tokens;    // tokens 100000..100015 (one 16-token block)
};

constexpr Vector kVectors[] = {
    {HashAlgorithm::kXxh3_128, "1aa8129ad491cc9cf217621c76a973c9",
     "912daf48f0d1780cf55f8884bd59037c", "b5efe061c425f013147e850296b44fe7",
     "2a13ffb106a2af52b0ceef64e045cdac"},
    {HashAlgorithm::kSha256, "2284f9b2b8f60c51cedaec6132552e2c", "b7b5b0fe229213be9339bfdf8a5fbc5a",
     "e7d9ab80cfdc4150cfadbdd3a68c29a1", "1c9e405837eecbb795dfeb12282ff227"},
};

TEST(PrefixHashTest, MatchesPublishedVectors) {
  for (const Vector& v : kVectors) {
    SCOPED_TRACE(HashAlgorithmName(v.algo));
    PrefixHasher hasher(4, v.algo);
    std::vector<uint32_t> tokens = {0, 1, 2, 3, 4, 5, 6, 7};
    std::vector<Digest> d = hasher.Hash(tokens);
    ASSERT_EQ(d.size(), 2u);
    EXPECT_EQ(d[0].ToHex(), v.block0);
    EXPECT_EQ(d[1].ToHex(), v.block1);
    EXPECT_EQ(hasher.Hash(absl::MakeSpan(tokens).subspan(0, 4), "lora:7")[0].ToHex(),
              v.block0_extra);

    std::vector<uint32_t> big(16);
    std::iota(big.begin(), big.end(), 100000u);
    EXPECT_EQ(PrefixHasher(16, v.algo).Hash(big)[0].ToHex(), v.big_tokens);
  }
}

TEST(PrefixHashTest, PartialTrailingBlockIsNotHashed) {
  PrefixHasher hasher(4);
  std::vector<uint32_t> tokens(11, 7);
  EXPECT_EQ(hasher.Hash(tokens).size(), 2u);
  EXPECT_TRUE(hasher.Hash(absl::MakeSpan(tokens).subspan(0, 3)).empty());
}

TEST(PrefixHashTest, ChainDependsOnEveryEarlierBlock) {
  PrefixHasher hasher(4);
  std::vector<uint32_t> a = {1, 2, 3, 4, 5, 6, 7, 8};
  std::vector<uint32_t> b = {1, 2, 3, 9, 5, 6, 7, 8};  // differs only in block 0
  auto da = hasher.Hash(a);
  auto db = hasher.Hash(b);
  EXPECT_NE(da[0], db[0]);
  EXPECT_NE(da[1], db[1]);  // same tokens in block 1, different parent
}

TEST(PrefixHashTest, HashFromContinuesTheChain) {
  PrefixHasher hasher(4, HashAlgorithm::kSha256);
  std::vector<uint32_t> tokens = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12};
  auto whole = hasher.Hash(tokens);
  auto tail = hasher.HashFrom(whole[0], absl::MakeSpan(tokens).subspan(4));
  ASSERT_EQ(tail.size(), 2u);
  EXPECT_EQ(tail[0], whole[1]);
  EXPECT_EQ(tail[1], whole[2]);
}

TEST(PrefixHashTest, ExtraChangesEveryDigest) {
  PrefixHasher hasher(2);
  std::vector<uint32_t> tokens = {1, 2, 3, 4};
  auto plain = hasher.Hash(tokens);
  auto extra = hasher.Hash(tokens, "img:abc");
  EXPECT_NE(plain[0], extra[0]);
  EXPECT_NE(plain[1], extra[1]);
}

TEST(PrefixHashTest, ParsesAlgorithmNames) {
  EXPECT_EQ(*ParseHashAlgorithm("xxh3"), HashAlgorithm::kXxh3_128);
  EXPECT_EQ(*ParseHashAlgorithm("sha256"), HashAlgorithm::kSha256);
  auto bad = ParseHashAlgorithm("md5");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("md5"), std::string::npos);
}

TEST(ChecksumTest, DetectsASingleFlippedBit) {
  std::string data(1 << 16, 'x');
  uint64_t before = Checksum(data.data(), data.size());
  data[12345] ^= 0x10;
  EXPECT_NE(before, Checksum(data.data(), data.size()));
  EXPECT_EQ(Checksum("", 0), 0x2d06800538d394c2ull);  // XXH3-64 of empty input
}

TEST(ChecksumTest, CopyAndChecksumCopiesAndMatchesChecksumAtEverySizeClass) {
  // Around the fused loop's 64 KiB chunk, and sizes blocks really have.
  for (size_t size : {size_t{0}, size_t{1}, size_t{4095}, size_t{65535}, size_t{65536},
                      size_t{65537}, size_t{3 * 65536 + 17}, size_t{256} << 10, size_t{2} << 20}) {
    std::vector<uint8_t> src(size);
    for (size_t i = 0; i < size; ++i) src[i] = static_cast<uint8_t>(i * 131 + size);
    std::vector<uint8_t> dst(size, 0xEE);
    EXPECT_EQ(CopyAndChecksum(dst.data(), src.data(), size), Checksum(src.data(), size)) << size;
    EXPECT_EQ(dst, src) << size;
  }
}

}  // namespace
}  // namespace ems
