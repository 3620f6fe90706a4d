// Identifiers, secrets and timestamps of the control plane.
#ifndef EMS_CONTROLLER_IDS_H_
#define EMS_CONTROLLER_IDS_H_

#include <string>

#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace ems::controller {

// `bytes` random bytes from OpenSSL's CSPRNG, as 2*bytes lowercase hex digits.
std::string RandomHex(int bytes);
// A random (version 4) UUID, lowercase 8-4-4-4-12.
std::string NewUuid();
// SHA-256 of `data` as 64 lowercase hex digits.
std::string Sha256Hex(absl::string_view data);
// The API's time format: UTC "yyyy-MM-ddTHH:mm:ssZ".
std::string FormatApiTime(absl::Time t);
// True for 8-4-4-4-12 hex digits (either case).
bool IsUuid(absl::string_view s);
// The one spelling of a UUID the controller stores and compares: lower case. RFC 4122 reads
// UUIDs in either case and writes them in lower case; tools differ (macOS uuidgen prints upper
// case), and Kubernetes object names built from an id must be lower case.
std::string CanonicalUuid(absl::string_view uuid);
// A cluster id's first 8 characters: the default cluster name and the Kubernetes objects'
// names carry it, so no two clusters in use may share it (Registry::ShortIdTaken).
inline absl::string_view ShortClusterId(absl::string_view id) { return id.substr(0, 8); }

}  // namespace ems::controller

#endif  // EMS_CONTROLLER_IDS_H_
