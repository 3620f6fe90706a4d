#include "common/key.h"

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"

namespace ems {

std::string Digest::ToHex() const { return absl::BytesToHexString(AsBytes()); }

absl::StatusOr<Digest> Digest::FromHex(absl::string_view hex) {
  if (hex.size() != 2 * kDigestBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("digest hex must be 32 characters, got ", hex.size()));
  }
  for (char c : hex) {
    if (!absl::ascii_isxdigit(static_cast<unsigned char>(c))) {
      return absl::InvalidArgumentError(absl::StrCat("digest hex has a non-hex character: ", hex));
    }
  }
  return FromBytes(absl::HexStringToBytes(hex));
}

absl::StatusOr<Digest> Digest::FromBytes(absl::string_view raw) {
  if (raw.size() != kDigestBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("digest must be ", kDigestBytes, " bytes, got ", raw.size()));
  }
  Digest d;
  std::memcpy(d.bytes.data(), raw.data(), kDigestBytes);
  return d;
}

std::string BlockKey::ToString() const { return absl::StrCat(ns, "/", digest.ToHex()); }

absl::Status ValidateNamespace(absl::string_view ns) {
  if (ns.empty()) return absl::InvalidArgumentError("key namespace is empty");
  if (ns.size() > kMaxNamespaceBytes) {
    return absl::InvalidArgumentError(absl::StrCat("key namespace is ", ns.size(),
                                                   " bytes; the maximum is ", kMaxNamespaceBytes));
  }
  for (size_t i = 0; i < ns.size(); ++i) {
    unsigned char c = static_cast<unsigned char>(ns[i]);
    if (c < 0x21 || c > 0x7e) {
      return absl::InvalidArgumentError(
          absl::StrCat("key namespace has a non-printable byte 0x", absl::Hex(c), " at offset ", i));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<BlockKey> MakeKey(absl::string_view ns, absl::string_view digest_bytes) {
  if (absl::Status s = ValidateNamespace(ns); !s.ok()) return s;
  auto digest = Digest::FromBytes(digest_bytes);
  if (!digest.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("key digest must be ", kDigestBytes, " bytes, got ", digest_bytes.size()));
  }
  return BlockKey{std::string(ns), *digest};
}

}  // namespace ems
