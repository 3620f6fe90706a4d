// Deterministic keys and block contents for tests: every byte read back can be checked.
#ifndef EMS_TESTS_TESTING_BLOCKS_H_
#define EMS_TESTS_TESTING_BLOCKS_H_

#include <cstdint>
#include <cstring>
#include <vector>

#include "common/key.h"
#include "common/prefix_hash.h"

namespace ems::testing {

inline BlockKey TestKey(uint64_t i, const std::string& ns = "test/model") {
  // Real chained digests, as an engine would compute them.
  const uint32_t tokens[2] = {static_cast<uint32_t>(i), static_cast<uint32_t>(i >> 32)};
  return BlockKey{ns, ChainDigest(HashAlgorithm::kXxh3_128, kRootDigest, tokens)};
}

inline std::vector<uint8_t> TestValue(uint64_t i, size_t size) {
  std::vector<uint8_t> v(size);
  uint64_t x = i * 0x9e3779b97f4a7c15ull + 0x1234567;
  size_t j = 0;
  for (; j + 8 <= size; j += 8) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    std::memcpy(v.data() + j, &x, 8);
  }
  for (; j < size; ++j) v[j] = static_cast<uint8_t>(x >> (8 * (j % 8)));
  return v;
}

}  // namespace ems::testing

#endif  // EMS_TESTS_TESTING_BLOCKS_H_
