// Parsing and validation of EMS API requests: every documented range, pattern and default.
// Pure functions of the request text (no I/O), so they are fuzzed directly
// (api/request_fuzzer.cc). Errors carry the documented codes and name the offending field.
#ifndef EMS_CONTROLLER_API_VALIDATION_H_
#define EMS_CONTROLLER_API_VALIDATION_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "controller/api/json_util.h"
#include "controller/model.h"

namespace ems::controller::api {

inline constexpr int kMinNodeCount = 3;
inline constexpr int kMaxNodeCount = 512;
inline constexpr int kMaxNodesPerJob = 48;
inline constexpr int64_t kMinHugePageNum = 131072;
inline constexpr int64_t kMaxInt32 = 2147483647;
inline constexpr int kMaxCancelIds = 100;

// POST /v1/clusters. Fills defaults (label ems=true, 131072 × 2 MB pages, lts/monitor on...).
absl::StatusOr<ClusterSpec> ParseCreateClusterRequest(absl::string_view body);

struct EnrollRequest {
  std::string cluster_id;  // "" = generate
  ClusterSpec spec;        // node_count 0: discovered by the enroll job
  Json extras;             // vpc_endpoint_id, vpc_security_group_ids, lts_* as given
};
// POST /v1/clusters/enroll.
absl::StatusOr<EnrollRequest> ParseEnrollClusterRequest(absl::string_view body);

// Expand/shrink body {node_name_list: [1..48 distinct K8s node names]}.
absl::StatusOr<std::vector<std::string>> ParseNodeNameList(absl::string_view body);
// CancelJobs body {job_ids: [1..100 job ids]}.
absl::StatusOr<std::vector<std::string>> ParseJobIds(absl::string_view body);

struct Page {
  int64_t limit;
  int64_t offset;
};
struct PageRule {
  const char* api;  // names the object in range errors: "[ListClusters].[limit]"
  int64_t default_limit;
  int64_t max_limit = kMaxInt32;
  int64_t max_offset = kMaxInt32;
};
// `limit` / `offset` as given in the query string (nullopt = absent).
absl::StatusOr<Page> ParsePage(const std::optional<std::string>& limit,
                               const std::optional<std::string>& offset, const PageRule& rule);
// ListJobs' job_type: "short" (default) or "long".
absl::StatusOr<std::string> ParseJobType(const std::optional<std::string>& job_type);

// Path and query parameters; the error names `field`.
absl::Status ValidateUuid(absl::string_view field, absl::string_view value);
absl::Status ValidateJobId(absl::string_view field, absl::string_view value);
absl::Status ValidateProjectId(absl::string_view value);

bool IsClusterName(absl::string_view s);  // ^[a-z][a-zA-Z0-9-]{3,127}$, not ending '-'
bool IsLabelPart(absl::string_view s);    // 1..63 of [A-Za-z0-9._-], alnum at both ends
bool IsNodeName(absl::string_view s);     // K8s node name: DNS-1123 subdomain, <= 253
bool IsJobId(absl::string_view s);        // (short|long)-[A-Za-z0-9_-]*, <= 48
bool IsProjectId(absl::string_view s);    // [0-9a-z-]{1,255}

}  // namespace ems::controller::api

#endif  // EMS_CONTROLLER_API_VALIDATION_H_
