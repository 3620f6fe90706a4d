// The 16 EMS APIs as functions of a parsed request (no HTTP here): validation, project scoping
// and the JSON each API answers. RestServer routes HTTP requests to them. Thread-safe.
#ifndef EMS_CONTROLLER_API_HANDLERS_H_
#define EMS_CONTROLLER_API_HANDLERS_H_

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "controller/api/json_util.h"
#include "controller/auth/credential_store.h"
#include "controller/backend/backend.h"
#include "controller/jobs/registry.h"

namespace ems::controller::api {

struct ApiRequest {
  std::string project_id;         // from the authenticated token
  std::vector<std::string> path;  // path parameters, in order
  std::map<std::string, std::string> query;
  std::string body;

  std::optional<std::string> Query(const std::string& key) const {
    auto it = query.find(key);
    return it == query.end() ? std::nullopt : std::optional<std::string>(it->second);
  }
};

struct ApiReply {
  int http_status = 200;
  Json body;  // null: no body (204)
};

class Handlers {
 public:
  // None owned; all must outlive this.
  Handlers(Registry* registry, CredentialStore* credentials, Backend* backend)
      : registry_(registry), credentials_(credentials), backend_(backend) {}

  absl::StatusOr<ApiReply> ListReleases(const ApiRequest& r);
  absl::StatusOr<ApiReply> ListFeatures(const ApiRequest& r);
  absl::StatusOr<ApiReply> ListClustersLabels(const ApiRequest& r);
  absl::StatusOr<ApiReply> CreateCluster(const ApiRequest& r);
  absl::StatusOr<ApiReply> ListClusters(const ApiRequest& r);
  absl::StatusOr<ApiReply> ShowCluster(const ApiRequest& r);
  absl::StatusOr<ApiReply> DeleteClusterById(const ApiRequest& r);
  absl::StatusOr<ApiReply> AuthorizeCluster(const ApiRequest& r);
  absl::StatusOr<ApiReply> EnrollCluster(const ApiRequest& r);
  absl::StatusOr<ApiReply> ExpandCluster(const ApiRequest& r);
  absl::StatusOr<ApiReply> ShrinkCluster(const ApiRequest& r);
  absl::StatusOr<ApiReply> CreateCredentialInfo(const ApiRequest& r);
  absl::StatusOr<ApiReply> ShowCredentialInfo(const ApiRequest& r);
  absl::StatusOr<ApiReply> ListJobs(const ApiRequest& r);
  absl::StatusOr<ApiReply> ShowJob(const ApiRequest& r);
  absl::StatusOr<ApiReply> CancelJobs(const ApiRequest& r);

 private:
  absl::StatusOr<ApiReply> Resize(const ApiRequest& r, JobKind kind);

  Registry* const registry_;
  CredentialStore* const credentials_;
  Backend* const backend_;
};

}  // namespace ems::controller::api

#endif  // EMS_CONTROLLER_API_HANDLERS_H_
