// CreateCluster and EnrollCluster bodies (validation.h).
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "controller/api/errors.h"
#include "controller/api/validation.h"
#include "controller/ids.h"

namespace ems::controller::api {
namespace {

// Typed, optional reads of one JSON object's members; errors name "<path>.<key>".
class Fields {
 public:
  Fields(const Json& obj, std::string path) : obj_(obj), path_(std::move(path)) {}

  std::string Name(const char* key) const { return path_.empty() ? key : path_ + "." + key; }

  // nullptr when absent or null.
  const Json* Find(const char* key) const {
    auto it = obj_.find(key);
    return it == obj_.end() || it->is_null() ? nullptr : &*it;
  }

  absl::Status String(const char* key, bool required, size_t max_len, std::string* out) const {
    const Json* v = Find(key);
    if (v == nullptr) {
      return required ? InvalidParameter(absl::StrCat(Name(key), " is required"))
                      : absl::OkStatus();
    }
    if (!v->is_string()) return InvalidParameter(absl::StrCat(Name(key), " must be a string"));
    *out = v->get<std::string>();
    if (out->size() > max_len) {
      return RangeError(Name(key), "length", false, std::to_string(max_len));
    }
    return absl::OkStatus();
  }

  absl::Status Int(const char* key, bool required, int64_t lo, int64_t hi, int64_t* out) const {
    const Json* v = Find(key);
    if (v == nullptr) {
      return required ? InvalidParameter(absl::StrCat(Name(key), " is required"))
                      : absl::OkStatus();
    }
    if (!v->is_number_integer()) {
      return InvalidParameter(absl::StrCat(Name(key), " must be an integer"));
    }
    // Unsigned values above INT64_MAX would wrap: compare as unsigned first.
    if (v->is_number_unsigned() && v->get<uint64_t>() > static_cast<uint64_t>(hi)) {
      return RangeError(path_.empty() ? "body" : path_, key, false, std::to_string(hi));
    }
    const int64_t x = v->get<int64_t>();
    if (x < lo) return RangeError(path_.empty() ? "body" : path_, key, true, std::to_string(lo));
    if (x > hi) return RangeError(path_.empty() ? "body" : path_, key, false, std::to_string(hi));
    *out = x;
    return absl::OkStatus();
  }

  absl::Status Bool(const char* key, bool* out) const {
    const Json* v = Find(key);
    if (v == nullptr) return absl::OkStatus();
    if (!v->is_boolean())
      return InvalidParameter(absl::StrCat(Name(key), " must be true or false"));
    *out = v->get<bool>();
    return absl::OkStatus();
  }

 private:
  const Json& obj_;
  const std::string path_;
};

#define EMS_API_CHECK(expr)                            \
  do {                                                 \
    absl::Status ems_api_status_ = (expr);             \
    if (!ems_api_status_.ok()) return ems_api_status_; \
  } while (0)

bool IsFlavor(absl::string_view s) {
  // Letters, then dot-separated letter segments ("ems.large"), 1..64 chars.
  if (s.empty() || s.size() > 64 || s.front() == '.' || s.back() == '.') return false;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '.' ? s[i - 1] == '.' : !absl::ascii_isalpha(static_cast<unsigned char>(s[i]))) {
      return false;
    }
  }
  return true;
}

// Starts with a letter or digit, then letters, digits or '-', ends with a lowercase letter or
// digit; 1..64 (EnrollK8sClusterSpecification.namespace, and ours for CreateCluster).
bool IsNamespace(absl::string_view s) {
  if (s.empty() || s.size() > 64) return false;
  const char last = s.back();
  if (!absl::ascii_isalnum(static_cast<unsigned char>(s.front())) ||
      !(absl::ascii_isdigit(last) || (last >= 'a' && last <= 'z'))) {
    return false;
  }
  return std::all_of(s.begin(), s.end(), [](char c) {
    return absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '-';
  });
}

bool IsVersion(absl::string_view s) {
  return std::all_of(s.begin(), s.end(), [](char c) {
    return absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '-' || c == '_';
  });
}

// K8sClusterSpecification (create) or EnrollK8sClusterSpecification (enroll).
absl::Status ParseK8sSpec(const Json& body, bool enroll, K8sClusterSpec* k) {
  const Json* kj = Fields(body, "").Find("k8s_cluster_specification");
  if (kj == nullptr) return InvalidParameter("k8s_cluster_specification is required");
  if (!kj->is_object()) return InvalidParameter("k8s_cluster_specification must be an object");
  Fields f(*kj, "k8s_cluster_specification");
  EMS_API_CHECK(f.String("k8s_cluster_id", true, 36, &k->k8s_cluster_id));
  EMS_API_CHECK(ValidateUuid(f.Name("k8s_cluster_id"), k->k8s_cluster_id));
  k->k8s_cluster_id = CanonicalUuid(k->k8s_cluster_id);
  EMS_API_CHECK(f.String("namespace", enroll, 64, &k->ns));
  if (!k->ns.empty() || enroll) {
    if (!IsNamespace(k->ns)) {
      return InvalidParameter(
          absl::StrCat(f.Name("namespace"),
                       " must be 1-64 letters, digits or '-', start alphanumeric and end "
                       "with a lowercase letter or digit"));
    }
  } else {
    k->ns = "ems-system";
  }
  if (const Json* lj = f.Find("label"); lj != nullptr) {
    if (!lj->is_object())
      return InvalidParameter(absl::StrCat(f.Name("label"), " must be an object"));
    Fields lf(*lj, f.Name("label"));
    EMS_API_CHECK(lf.String("key", false, 63, &k->label.key));
    EMS_API_CHECK(lf.String("value", false, 63, &k->label.value));
    for (const char* part : {"key", "value"}) {
      const std::string& v = std::string(part) == "key" ? k->label.key : k->label.value;
      if (!IsLabelPart(v)) {
        return InvalidParameter(
            absl::StrCat(lf.Name(part),
                         " must be 1-63 of letters, digits, '-', '_', '.', alphanumeric at both "
                         "ends"));
      }
    }
  }
  if (!enroll) {
    int64_t n = 0;
    EMS_API_CHECK(f.Int("node_count", true, kMinNodeCount, kMaxNodeCount, &n));
    k->node_count = static_cast<int>(n);
  }
  EMS_API_CHECK(f.String("flavor", false, 64, &k->flavor));
  if (f.Find("flavor") != nullptr && !IsFlavor(k->flavor)) {
    return InvalidParameter(absl::StrCat(
        f.Name("flavor"), " must be letters then dot-separated letter segments, 1-64 chars"));
  }
  k->version = enroll ? "v1" : "";
  EMS_API_CHECK(f.String("version", false, 64, &k->version));
  if (!IsVersion(k->version)) {
    return InvalidParameter(
        absl::StrCat(f.Name("version"), " may hold letters, digits, '.', '-', '_'"));
  }
  EMS_API_CHECK(f.Bool("lts_enable", &k->lts_enable));
  EMS_API_CHECK(f.Bool("monitor_enable", &k->monitor_enable));
  int64_t v = 0;
  EMS_API_CHECK(f.Int("lts_connect_type", false, 0, 1, &v));
  k->lts_connect_type = static_cast<int>(v);
  if (!enroll) {
    v = 0;
    EMS_API_CHECK(f.Int("node_type", false, 0, 2, &v));
    k->node_type = static_cast<int>(v);
  }
  return absl::OkStatus();
}

absl::Status ParseMemorySpec(const Json& body, MemorySpec* m) {
  const Json* mj = Fields(body, "").Find("memory_specification");
  if (mj == nullptr) return absl::OkStatus();
  if (!mj->is_object()) return InvalidParameter("memory_specification must be an object");
  Fields f(*mj, "memory_specification");
  EMS_API_CHECK(f.Int("huge_page_num", false, kMinHugePageNum, kMaxInt32, &m->huge_page_num));
  EMS_API_CHECK(f.Int("huge_page_flavor", false, 2, 1024, &m->huge_page_flavor));
  // What ems-node's arena takes (pool/internal/arena.cc): any other size would be accepted
  // here and fail minutes later in the job, every node refusing to start.
  if (m->huge_page_flavor != 2 && m->huge_page_flavor != 1024) {
    return InvalidParameter(absl::StrCat(
        "memory_specification.huge_page_flavor (MB per huge page) must be 2 or 1024, got ",
        m->huge_page_flavor));
  }
  return absl::OkStatus();
}

absl::StatusOr<Json> ParseObject(absl::string_view body) {
  auto j = ParseJson(body, "request body");
  if (!j.ok()) return j.status();
  if (!j->is_object()) return InvalidParameter("request body must be a JSON object");
  return j;
}

absl::Status CheckName(const std::string& name) {
  if (IsClusterName(name)) return absl::OkStatus();
  return InvalidParameter(
      "name must start with a lowercase letter, hold 4-128 letters, digits or '-', and not end "
      "with '-'");
}

}  // namespace

absl::StatusOr<ClusterSpec> ParseCreateClusterRequest(absl::string_view body) {
  auto j = ParseObject(body);
  if (!j.ok()) return j.status();
  Fields f(*j, "");
  ClusterSpec s;
  EMS_API_CHECK(f.String("name", false, 128, &s.name));
  if (f.Find("name") != nullptr) EMS_API_CHECK(CheckName(s.name));
  EMS_API_CHECK(f.String("description", false, 2048, &s.description));
  int64_t charge = 0;
  EMS_API_CHECK(f.Int("charge_mode", false, 0, 0, &charge));
  EMS_API_CHECK(ParseK8sSpec(*j, /*enroll=*/false, &s.k8s));
  EMS_API_CHECK(ParseMemorySpec(*j, &s.memory));
  return s;
}

absl::StatusOr<EnrollRequest> ParseEnrollClusterRequest(absl::string_view body) {
  auto j = ParseObject(body);
  if (!j.ok()) return j.status();
  Fields f(*j, "");
  EnrollRequest r;
  EMS_API_CHECK(f.String("cluster_id", false, 36, &r.cluster_id));
  if (!r.cluster_id.empty()) {
    EMS_API_CHECK(ValidateUuid("cluster_id", r.cluster_id));
    r.cluster_id = CanonicalUuid(r.cluster_id);
  }
  EMS_API_CHECK(f.String("name", true, 128, &r.spec.name));
  EMS_API_CHECK(CheckName(r.spec.name));
  EMS_API_CHECK(f.String("description", false, 256, &r.spec.description));
  const std::string& d = r.spec.description;
  if (!d.empty() && (d.back() == '-' || !std::all_of(d.begin(), d.end(), [](char c) {
                       return absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '-';
                     }))) {
    return InvalidParameter("description may hold letters, digits and '-' and not end with '-'");
  }
  EMS_API_CHECK(ParseK8sSpec(*j, /*enroll=*/true, &r.spec.k8s));
  r.extras = Json::object();
  for (const char* key : {"vpc_endpoint_id", "lts_host_group", "lts_group"}) {
    std::string v;
    EMS_API_CHECK(f.String(key, false, 36, &v));
    if (f.Find(key) == nullptr) continue;
    EMS_API_CHECK(ValidateUuid(key, v));
    r.extras[key] = v;
  }
  for (const char* key : {"vpc_security_group_ids", "lts_streams", "lts_access_configs"}) {
    const Json* v = f.Find(key);
    if (v == nullptr) continue;
    if (!v->is_array() || v->size() > 64) {
      return InvalidParameter(absl::StrCat(key, " must be an array of at most 64 strings"));
    }
    for (size_t i = 0; i < v->size(); ++i) {
      const Json& e = (*v)[i];
      if (!e.is_string() || e.get<std::string>().size() > 128) {
        return InvalidParameter(absl::StrCat(key, "[", i, "] must be a string of at most 128"));
      }
      if (std::string(key) != "lts_access_configs") {
        EMS_API_CHECK(ValidateUuid(absl::StrCat(key, "[", i, "]"), e.get<std::string>()));
      }
    }
    r.extras[key] = *v;
  }
  return r;
}

}  // namespace ems::controller::api
