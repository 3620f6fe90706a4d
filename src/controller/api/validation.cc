// Patterns, pagination, ids and list bodies. Cluster bodies are in cluster_request.cc.
#include "controller/api/validation.h"

#include <limits>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "controller/api/errors.h"
#include "controller/ids.h"

namespace ems::controller::api {
namespace {

bool IsAlnum(char c) { return absl::ascii_isalnum(static_cast<unsigned char>(c)); }
bool IsLowerAlnum(char c) { return absl::ascii_isdigit(c) || (c >= 'a' && c <= 'z'); }

// Parses a decimal integer query value; the error names `field`.
absl::StatusOr<int64_t> ParseQueryInt(const PageRule& rule, const char* field,
                                      const std::string& s) {
  int64_t v = 0;
  const bool digits = !s.empty() && (absl::ascii_isdigit(s[0]) || (s[0] == '-' && s.size() > 1)) &&
                      std::all_of(s.begin() + 1, s.end(), [](char c) {
                        return absl::ascii_isdigit(static_cast<unsigned char>(c));
                      });
  if (!digits || !absl::SimpleAtoi(s, &v)) {
    // A long run of digits overflows int64: saturate, so the caller's range check names the
    // bound instead of calling it "not a number".
    if (digits) {
      return s[0] == '-' ? std::numeric_limits<int64_t>::min()
                         : std::numeric_limits<int64_t>::max();
    }
    return InvalidPagination(
        absl::StrCat(field, " must be an integer, got '", s.substr(0, 32), "'"));
  }
  return v;
}

// A body that must be a JSON object holding an array of strings at `key`.
absl::StatusOr<std::vector<std::string>> ParseStringList(absl::string_view body, const char* key,
                                                         size_t max_items) {
  auto j = ParseJson(body, "request body");
  if (!j.ok()) return j.status();
  if (!j->is_object()) return InvalidParameter("request body must be a JSON object");
  auto it = j->find(key);
  if (it == j->end() || it->is_null()) return InvalidParameter(absl::StrCat(key, " is required"));
  if (!it->is_array()) return InvalidParameter(absl::StrCat(key, " must be an array of strings"));
  if (it->empty()) return RangeError(key, "length", true, "1");
  if (it->size() > max_items) return RangeError(key, "length", false, std::to_string(max_items));
  std::vector<std::string> out;
  absl::flat_hash_set<std::string> seen;
  for (size_t i = 0; i < it->size(); ++i) {
    const Json& v = (*it)[i];
    if (!v.is_string()) return InvalidParameter(absl::StrCat(key, "[", i, "] must be a string"));
    std::string s = v.get<std::string>();
    if (!seen.insert(s).second) {
      return InvalidParameter(absl::StrCat(key, "[", i, "] repeats '", s.substr(0, 64), "'"));
    }
    out.push_back(std::move(s));
  }
  return out;
}

}  // namespace

bool IsClusterName(absl::string_view s) {
  if (s.size() < 4 || s.size() > 128 || !(s[0] >= 'a' && s[0] <= 'z') || s.back() == '-') {
    return false;
  }
  return std::all_of(s.begin(), s.end(), [](char c) { return IsAlnum(c) || c == '-'; });
}

bool IsLabelPart(absl::string_view s) {
  if (s.empty() || s.size() > 63 || !IsAlnum(s.front()) || !IsAlnum(s.back())) return false;
  return std::all_of(s.begin(), s.end(),
                     [](char c) { return IsAlnum(c) || c == '.' || c == '_' || c == '-'; });
}

bool IsNodeName(absl::string_view s) {
  if (s.empty() || s.size() > 253 || !IsLowerAlnum(s.front()) || !IsLowerAlnum(s.back())) {
    return false;
  }
  return std::all_of(s.begin(), s.end(),
                     [](char c) { return IsLowerAlnum(c) || c == '-' || c == '.'; });
}

bool IsJobId(absl::string_view s) {
  if (s.size() > 48) return false;
  absl::string_view rest;
  if (absl::StartsWith(s, "short-")) {
    rest = s.substr(6);
  } else if (absl::StartsWith(s, "long-")) {
    rest = s.substr(5);
  } else {
    return false;
  }
  return std::all_of(rest.begin(), rest.end(),
                     [](char c) { return IsAlnum(c) || c == '-' || c == '_'; });
}

bool IsProjectId(absl::string_view s) {
  if (s.empty() || s.size() > 255) return false;
  return std::all_of(s.begin(), s.end(), [](char c) { return IsLowerAlnum(c) || c == '-'; });
}

absl::StatusOr<Page> ParsePage(const std::optional<std::string>& limit,
                               const std::optional<std::string>& offset, const PageRule& rule) {
  Page page{rule.default_limit, 0};
  if (limit) {
    auto v = ParseQueryInt(rule, "limit", *limit);
    if (!v.ok()) return v.status();
    if (*v < 1) return RangeError(rule.api, "limit", true, "1");
    if (*v > rule.max_limit)
      return RangeError(rule.api, "limit", false, std::to_string(rule.max_limit));
    page.limit = *v;
  }
  if (offset) {
    auto v = ParseQueryInt(rule, "offset", *offset);
    if (!v.ok()) return v.status();
    if (*v < 0) return RangeError(rule.api, "offset", true, "0");
    if (*v > rule.max_offset) {
      return RangeError(rule.api, "offset", false, std::to_string(rule.max_offset));
    }
    page.offset = *v;
  }
  return page;
}

absl::StatusOr<std::string> ParseJobType(const std::optional<std::string>& job_type) {
  if (!job_type) return std::string("short");
  if (*job_type == "short" || *job_type == "long") return *job_type;
  return InvalidParameter(
      absl::StrCat("job_type must be 'short' or 'long', got '", job_type->substr(0, 32), "'"));
}

absl::Status ValidateUuid(absl::string_view field, absl::string_view value) {
  if (IsUuid(value)) return absl::OkStatus();
  return InvalidParameter(absl::StrCat(field, " must be a UUID (8-4-4-4-12 hex digits), got '",
                                       value.substr(0, 64), "'"));
}

absl::Status ValidateJobId(absl::string_view field, absl::string_view value) {
  if (IsJobId(value)) return absl::OkStatus();
  return InvalidParameter(absl::StrCat(
      field, " must start with 'short-' or 'long-', then [A-Za-z0-9_-], at most 48 chars, got '",
      value.substr(0, 64), "'"));
}

absl::Status ValidateProjectId(absl::string_view value) {
  if (IsProjectId(value)) return absl::OkStatus();
  return InvalidParameter(
      absl::StrCat("project_id must be 1-255 of digits, lowercase letters and '-', got '",
                   value.substr(0, 64), "'"));
}

absl::StatusOr<std::vector<std::string>> ParseNodeNameList(absl::string_view body) {
  auto names = ParseStringList(body, "node_name_list", kMaxNodesPerJob);
  if (!names.ok()) return names.status();
  for (size_t i = 0; i < names->size(); ++i) {
    if (!IsNodeName((*names)[i])) {
      return InvalidParameter(
          absl::StrCat("node_name_list[", i,
                       "] must be a K8s node name (lowercase letters, digits, '-', '.'; "
                       "alphanumeric at both ends; at most 253), got '",
                       (*names)[i].substr(0, 64), "'"));
    }
  }
  return names;
}

absl::StatusOr<std::vector<std::string>> ParseJobIds(absl::string_view body) {
  auto ids = ParseStringList(body, "job_ids", kMaxCancelIds);
  if (!ids.ok()) return ids.status();
  for (size_t i = 0; i < ids->size(); ++i) {
    if (absl::Status s = ValidateJobId(absl::StrCat("job_ids[", i, "]"), (*ids)[i]); !s.ok()) {
      return s;
    }
  }
  return ids;
}

}  // namespace ems::controller::api
