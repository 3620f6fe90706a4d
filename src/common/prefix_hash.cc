#include "common/prefix_hash.h"

#include <openssl/sha.h>
#define XXH_STATIC_LINKING_ONLY  // XXH3_state_t on the stack
#include <xxhash.h>
#if defined(__x86_64__)
// Debian's libxxhash is built for baseline x86-64 (SSE2); its *_dispatch entry points pick the
// AVX2 or AVX-512 kernels at run time, about twice as fast on a 2 MiB block (hash_benchmark).
// The hash is the same whatever kernel computes it. The header maps XXH3_64bits and friends
// onto the dispatchers.
#include <xxh_x86dispatch.h>
#endif

#include <algorithm>
#include <cstring>

#include "absl/strings/str_cat.h"

namespace ems {
namespace {

Digest MakeRoot() {
  Digest d;
  static constexpr char kRoot[] = "ems.prefix.v1";
  std::memcpy(d.bytes.data(), kRoot, sizeof(kRoot) - 1);  // rest stays zero
  return d;
}

void AppendU32Le(std::string& out, uint32_t v) {
  char b[4] = {static_cast<char>(v & 0xff), static_cast<char>((v >> 8) & 0xff),
               static_cast<char>((v >> 16) & 0xff), static_cast<char>((v >> 24) & 0xff)};
  out.append(b, 4);
}

}  // namespace

const Digest kRootDigest = MakeRoot();

absl::StatusOr<HashAlgorithm> ParseHashAlgorithm(absl::string_view name) {
  if (name == "xxh3") return HashAlgorithm::kXxh3_128;
  if (name == "sha256") return HashAlgorithm::kSha256;
  return absl::InvalidArgumentError(
      absl::StrCat("unknown hash algorithm '", name, "'; expected xxh3 or sha256"));
}

absl::string_view HashAlgorithmName(HashAlgorithm algo) {
  return algo == HashAlgorithm::kSha256 ? "sha256" : "xxh3";
}

Digest ChainDigest(HashAlgorithm algo, const Digest& parent, absl::Span<const uint32_t> tokens,
                   absl::string_view extra) {
  // The encoded input is small (a few KiB per block); one buffer keeps the encoding obvious
  // and identical for both algorithms.
  std::string buf;
  buf.reserve(kDigestBytes + 8 + 4 * tokens.size() + extra.size());
  buf.append(reinterpret_cast<const char*>(parent.bytes.data()), kDigestBytes);
  AppendU32Le(buf, static_cast<uint32_t>(tokens.size()));
  for (uint32_t t : tokens) AppendU32Le(buf, t);
  AppendU32Le(buf, static_cast<uint32_t>(extra.size()));
  buf.append(extra.data(), extra.size());

  Digest out;
  if (algo == HashAlgorithm::kXxh3_128) {
    XXH128_canonical_t canon;
    XXH128_canonicalFromHash(&canon, XXH3_128bits(buf.data(), buf.size()));
    std::memcpy(out.bytes.data(), canon.digest, kDigestBytes);
  } else {
    unsigned char sha[SHA256_DIGEST_LENGTH];
    SHA256(reinterpret_cast<const unsigned char*>(buf.data()), buf.size(), sha);
    std::memcpy(out.bytes.data(), sha, kDigestBytes);
  }
  return out;
}

std::vector<Digest> PrefixHasher::Hash(absl::Span<const uint32_t> tokens,
                                       absl::string_view extra) const {
  return HashFrom(kRootDigest, tokens, extra);
}

std::vector<Digest> PrefixHasher::HashFrom(const Digest& parent, absl::Span<const uint32_t> tokens,
                                           absl::string_view extra) const {
  std::vector<Digest> out;
  out.reserve(tokens.size() / block_tokens_);
  Digest prev = parent;
  for (size_t begin = 0; begin + block_tokens_ <= tokens.size(); begin += block_tokens_) {
    prev = ChainDigest(algo_, prev, tokens.subspan(begin, block_tokens_), extra);
    out.push_back(prev);
  }
  return out;
}

uint64_t Checksum(const void* data, size_t size) { return XXH3_64bits(data, size); }

uint64_t CopyAndChecksum(void* dst, const void* src, size_t size) {
  // Small enough to stay in L2 between the copy and the hash; large enough that the streaming
  // state's per-call overhead is noise.
  constexpr size_t kChunk = 64 << 10;
  if (size == 0) return XXH3_64bits(dst, 0);  // memcpy must not see the null of an empty span
  if (size <= kChunk) {
    std::memcpy(dst, src, size);
    return XXH3_64bits(dst, size);
  }
  XXH3_state_t state;  // on the stack: no allocation on the data path
  XXH3_64bits_reset(&state);
  auto* out = static_cast<uint8_t*>(dst);
  const auto* in = static_cast<const uint8_t*>(src);
  for (size_t off = 0; off < size; off += kChunk) {
    const size_t n = std::min(kChunk, size - off);
    std::memcpy(out + off, in + off, n);
    XXH3_64bits_update(&state, out + off, n);
  }
  return XXH3_64bits_digest(&state);
}

}  // namespace ems
