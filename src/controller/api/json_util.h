// nlohmann::json without exceptions: parsing, dumping and typed reads that cannot throw.
#ifndef EMS_CONTROLLER_API_JSON_UTIL_H_
#define EMS_CONTROLLER_API_JSON_UTIL_H_

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace ems::controller {

using Json = nlohmann::json;

// Parses `text`. INVALID_ARGUMENT (EMS.00004000) naming `what` for malformed JSON or nesting
// deeper than 32 levels (no request needs more; deep nesting only costs stack and time).
absl::StatusOr<Json> ParseJson(absl::string_view text, absl::string_view what);
// Serializes without throwing: invalid UTF-8 in strings is replaced by U+FFFD.
std::string DumpJson(const Json& j, int indent = -1);

// Reads of our own persisted records: a missing key or a value of the wrong type yields `def`.
std::string StrOr(const Json& j, const char* key, const std::string& def = "");
int64_t IntOr(const Json& j, const char* key, int64_t def);
double DoubleOr(const Json& j, const char* key, double def);
bool BoolOr(const Json& j, const char* key, bool def);
std::vector<std::string> StrListOr(const Json& j, const char* key);

}  // namespace ems::controller

#endif  // EMS_CONTROLLER_API_JSON_UTIL_H_
