#include "controller/ids.h"

#include <openssl/rand.h>
#include <openssl/sha.h>

#include <cstdint>
#include <cstdlib>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"

namespace ems::controller {

std::string RandomHex(int bytes) {
  std::string raw(static_cast<size_t>(bytes), '\0');
  if (RAND_bytes(reinterpret_cast<unsigned char*>(raw.data()), bytes) != 1) {
    // Without randomness, tokens and ids would be guessable: refuse to go on.
    std::abort();
  }
  return absl::BytesToHexString(raw);
}

std::string NewUuid() {
  std::string h = RandomHex(16);
  h[12] = '4';  // version 4
  const int nibble = absl::ascii_isdigit(h[16]) ? h[16] - '0' : h[16] - 'a' + 10;
  h[16] = "89ab"[nibble & 3];  // RFC 4122 variant
  return h.substr(0, 8) + "-" + h.substr(8, 4) + "-" + h.substr(12, 4) + "-" + h.substr(16, 4) +
         "-" + h.substr(20, 12);
}

std::string CanonicalUuid(absl::string_view uuid) { return absl::AsciiStrToLower(uuid); }

std::string Sha256Hex(absl::string_view data) {
  unsigned char digest[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(data.data()), data.size(), digest);
  return absl::BytesToHexString(
      absl::string_view(reinterpret_cast<const char*>(digest), sizeof(digest)));
}

std::string FormatApiTime(absl::Time t) {
  return absl::FormatTime("%Y-%m-%dT%H:%M:%SZ", t, absl::UTCTimeZone());
}

bool IsUuid(absl::string_view s) {
  if (s.size() != 36) return false;
  for (size_t i = 0; i < s.size(); ++i) {
    const bool dash = i == 8 || i == 13 || i == 18 || i == 23;
    if (dash ? s[i] != '-' : !absl::ascii_isxdigit(static_cast<unsigned char>(s[i]))) return false;
  }
  return true;
}

}  // namespace ems::controller
