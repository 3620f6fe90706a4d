// Chained prefix hashing of token blocks: the digests that name KV blocks.
//
// d_i = H(d_{i-1} || u32le(n) || u32le(token_0) .. u32le(token_{n-1}) || u32le(len(extra)) ||
// extra) with d_{-1} = kRootDigest and H = XXH3-128 (canonical big-endian bytes) or the first 16
// bytes of SHA-256. Lengths are explicit so no two inputs share an encoding. The result depends
// only on the bytes above: it is the same in every process and on every machine (test vectors in
// docs/hashing.md, checked against xxhsum and sha256sum in prefix_hash_test.cc).
#ifndef EMS_COMMON_PREFIX_HASH_H_
#define EMS_COMMON_PREFIX_HASH_H_

#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "common/key.h"

namespace ems {

enum class HashAlgorithm { kXxh3_128, kSha256 };

// "xxh3" or "sha256" (case-sensitive); INVALID_ARGUMENT otherwise.
absl::StatusOr<HashAlgorithm> ParseHashAlgorithm(absl::string_view name);
absl::string_view HashAlgorithmName(HashAlgorithm algo);

// d_{-1}: the ASCII bytes "ems.prefix.v1\0\0\0".
extern const Digest kRootDigest;

// One link of the chain: H(parent || encoded tokens || encoded extra).
Digest ChainDigest(HashAlgorithm algo, const Digest& parent, absl::Span<const uint32_t> tokens,
                   absl::string_view extra = "");

// Hashes token ids into per-block digests. Thread-compatible (immutable after construction).
class PrefixHasher {
 public:
  // REQUIRES: block_tokens > 0.
  explicit PrefixHasher(size_t block_tokens, HashAlgorithm algo = HashAlgorithm::kXxh3_128)
      : block_tokens_(block_tokens), algo_(algo) {}

  // Digests of each full block of `tokens`, in order. A trailing partial block gets no digest:
  // its KV is not reusable until the block fills. `extra` (LoRA id, multimodal hashes, ...)
  // is mixed into every link so different extras never share blocks.
  std::vector<Digest> Hash(absl::Span<const uint32_t> tokens, absl::string_view extra = "") const;

  // Like Hash, continuing a chain from `parent` (the digest of the block before tokens[0]).
  std::vector<Digest> HashFrom(const Digest& parent, absl::Span<const uint32_t> tokens,
                               absl::string_view extra = "") const;

  size_t block_tokens() const { return block_tokens_; }
  HashAlgorithm algorithm() const { return algo_; }

 private:
  const size_t block_tokens_;
  const HashAlgorithm algo_;
};

// XXH3-64 of a value: the per-block checksum.
uint64_t Checksum(const void* data, size_t size);

// memcpy(dst, src, size) and Checksum(dst, size) in one pass: each chunk is hashed while it is
// still in cache from its copy, instead of reading the whole value back from memory after
// (bench/micro/hash_benchmark.cc measures both). Same result as Checksum.
uint64_t CopyAndChecksum(void* dst, const void* src, size_t size);

}  // namespace ems

#endif  // EMS_COMMON_PREFIX_HASH_H_
