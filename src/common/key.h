// Block keys: (namespace, 128-bit digest). Keys are opaque to the pool.
#ifndef EMS_COMMON_KEY_H_
#define EMS_COMMON_KEY_H_

#include <array>
#include <cstdint>
#include <cstring>
#include <string>

#include "absl/hash/hash.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace ems {

inline constexpr size_t kDigestBytes = 16;
inline constexpr size_t kMaxNamespaceBytes = 256;

// A 128-bit digest in canonical (big-endian) byte order.
struct Digest {
  std::array<uint8_t, kDigestBytes> bytes{};

  // The digest's low 64 bits (last 8 canonical bytes); already uniformly distributed.
  uint64_t Low64() const {
    uint64_t v;
    std::memcpy(&v, bytes.data() + 8, sizeof(v));
    return v;
  }
  std::string ToHex() const;
  // REQUIRES: nothing; returns INVALID_ARGUMENT unless `hex` is 32 hex digits.
  static absl::StatusOr<Digest> FromHex(absl::string_view hex);
  // REQUIRES: nothing; returns INVALID_ARGUMENT unless `raw` is exactly 16 bytes.
  static absl::StatusOr<Digest> FromBytes(absl::string_view raw);
  absl::string_view AsBytes() const {
    return absl::string_view(reinterpret_cast<const char*>(bytes.data()), bytes.size());
  }

  friend bool operator==(const Digest& a, const Digest& b) = default;
  template <typename H>
  friend H AbslHashValue(H h, const Digest& d) {
    return H::combine_contiguous(std::move(h), d.bytes.data(), d.bytes.size());
  }
};

// A block key: the namespace isolates models and tenants (model id, KV dtype, parallel layout,
// tenant); the digest names the prefix.
struct BlockKey {
  std::string ns;
  Digest digest;

  std::string ToString() const;  // "ns/hexdigest", for messages and logs
  friend bool operator==(const BlockKey& a, const BlockKey& b) = default;
  template <typename H>
  friend H AbslHashValue(H h, const BlockKey& k) {
    return H::combine(std::move(h), k.ns, k.digest);
  }
};

// OK if `ns` is a usable namespace: 1..256 bytes of printable ASCII (0x21..0x7e).
absl::Status ValidateNamespace(absl::string_view ns);

// Builds a key from wire fields, naming the bad field on error (INVALID_ARGUMENT).
absl::StatusOr<BlockKey> MakeKey(absl::string_view ns, absl::string_view digest_bytes);

}  // namespace ems

#endif  // EMS_COMMON_KEY_H_
