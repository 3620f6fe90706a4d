#include "controller/api/handlers.h"

#include <algorithm>
#include <set>

#include "absl/strings/str_cat.h"
#include "controller/api/errors.h"
#include "controller/api/validation.h"
#include "spdlog/spdlog.h"

namespace ems::controller::api {
namespace {

// Items [offset, offset + limit) of `all`, at most `max_items`.
template <typename T>
std::vector<T> PageOf(const std::vector<T>& all, const Page& p, int64_t max_items) {
  std::vector<T> out;
  const int64_t n = static_cast<int64_t>(all.size());
  const int64_t end = std::min({n, p.offset + std::min(p.limit, max_items)});
  for (int64_t i = p.offset; i < end; ++i) out.push_back(all[static_cast<size_t>(i)]);
  return out;
}

absl::Status CheckPathClusterId(const ApiRequest& r) {
  return ValidateUuid("cluster_id", r.path.at(0));
}

// The credentials APIs name the project in the path: it must be the token's.
absl::Status CheckPathProject(const ApiRequest& r) {
  if (absl::Status s = ValidateProjectId(r.path.at(0)); !s.ok()) return s;
  if (r.path[0] != r.project_id) {
    return ApiError(absl::StatusCode::kInternal, kCodeProjectMismatch,
                    absl::StrCat("Failed to match tenant project id: the token is bound to "
                                 "another project than [",
                                 r.path[0], "]"));
  }
  return absl::OkStatus();
}

Json CredentialJson(const Credential& c) {
  return {{"projectId", c.project_id}, {"cdKey", c.cd_key}, {"createAt", c.create_at_ms}};
}

}  // namespace

absl::StatusOr<ApiReply> Handlers::ListReleases(const ApiRequest& r) {
  auto page = ParsePage(r.Query("limit"), r.Query("offset"), {"ListReleases", 100});
  if (!page.ok()) return page.status();
  const std::vector<Json> all = {
      {{"version", "25.12.0"},
       {"tag", "PREFERRED_VERSION"},
       {"description", "EMS 25.12.0: REST control plane, local and Kubernetes backends"}}};
  return ApiReply{200, {{"total", all.size()}, {"releases", PageOf(all, *page, 1000)}}};
}

absl::StatusOr<ApiReply> Handlers::ListFeatures(const ApiRequest& r) {
  auto page = ParsePage(r.Query("limit"), r.Query("offset"), {"ListFeatures", 100});
  if (!page.ok()) return page.status();
  auto feature = [](const char* name, bool on, const char* type, std::string value,
                    const char* description) {
    return Json{{"feature", name},
                {"switch", on},
                {"type", type},
                {"value", std::move(value)},
                {"description", description}};
  };
  const std::vector<Json> all = {
      feature("cluster.node_count.max", true, "INT", std::to_string(kMaxNodeCount),
              "largest node_count of a cluster"),
      feature("cluster.resize.max_nodes_per_job", true, "INT", std::to_string(kMaxNodesPerJob),
              "most nodes one expand or shrink job may name"),
      feature("cluster.backend", true, "STRING", backend_->name(), "where ems-node processes run"),
      // Both backends hand nodes the key (local: --cd_key; kubernetes: a Secret file).
      feature("credential.cdkey.enforced", true, "BOOLEAN", "true",
              "nodes started after the project's first credential require its cdKey")};
  return ApiReply{
      200,
      {{"total", all.size()}, {"project_id", r.project_id}, {"features", PageOf(all, *page, 100)}}};
}

absl::StatusOr<ApiReply> Handlers::ListClustersLabels(const ApiRequest& r) {
  const std::optional<std::string> id = r.Query("k8s_cluster_id");
  if (!id) return InvalidParameter("k8s_cluster_id is required");
  if (absl::Status s = ValidateUuid("k8s_cluster_id", *id); !s.ok()) return s;
  auto page = ParsePage(r.Query("limit"), r.Query("offset"),
                        {"ListClustersLabels", 2000, /*max_limit=*/2000, /*max_offset=*/2000});
  if (!page.ok()) return page.status();
  auto labels = backend_->ListLabels(*id);
  if (!labels.ok()) return labels.status();
  std::vector<Json> all;
  for (const NodeLabel& l : *labels) all.push_back({{"key", l.key}, {"value", l.value}});
  return ApiReply{200, {{"total", all.size()}, {"labels", PageOf(all, *page, 2000)}}};
}

absl::StatusOr<ApiReply> Handlers::CreateCluster(const ApiRequest& r) {
  auto spec = ParseCreateClusterRequest(r.body);
  if (!spec.ok()) return spec.status();
  if (absl::Status s = backend_->CheckSpec(*spec); !s.ok()) return InvalidParameter(s.message());
  auto accepted = registry_->CreateCluster(r.project_id, *std::move(spec));
  if (!accepted.ok()) return accepted.status();
  return ApiReply{202, {{"job_id", accepted->job_id}, {"cluster_id", accepted->cluster_id}}};
}

absl::StatusOr<ApiReply> Handlers::ListClusters(const ApiRequest& r) {
  auto page = ParsePage(r.Query("limit"), r.Query("offset"), {"ListClusters", 1000});
  if (!page.ok()) return page.status();
  std::vector<Json> all;
  for (const Cluster& c : registry_->ListClusters(r.project_id)) all.push_back(ClusterToApi(c));
  return ApiReply{200, {{"clusters", PageOf(all, *page, 1000)}}};
}

absl::StatusOr<ApiReply> Handlers::ShowCluster(const ApiRequest& r) {
  if (absl::Status s = CheckPathClusterId(r); !s.ok()) return s;
  auto c = registry_->GetCluster(r.project_id, r.path[0]);
  if (!c.ok()) return c.status();
  return ApiReply{200, ClusterToApi(*c)};
}

absl::StatusOr<ApiReply> Handlers::DeleteClusterById(const ApiRequest& r) {
  if (absl::Status s = CheckPathClusterId(r); !s.ok()) return s;
  auto job = registry_->DeleteCluster(r.project_id, r.path[0]);
  if (!job.ok()) return job.status();
  return ApiReply{202, {{"job_id", *job}}};
}

absl::StatusOr<ApiReply> Handlers::AuthorizeCluster(const ApiRequest& r) {
  if (absl::Status s = CheckPathClusterId(r); !s.ok()) return s;
  if (absl::Status s = registry_->AuthorizeCluster(r.project_id, r.path[0]); !s.ok()) return s;
  return ApiReply{204, nullptr};
}

absl::StatusOr<ApiReply> Handlers::EnrollCluster(const ApiRequest& r) {
  auto req = ParseEnrollClusterRequest(r.body);
  if (!req.ok()) return req.status();
  if (absl::Status s = backend_->CheckSpec(req->spec); !s.ok()) {
    return InvalidParameter(s.message());
  }
  auto accepted = registry_->EnrollCluster(r.project_id, *std::move(req));
  if (!accepted.ok()) return accepted.status();
  return ApiReply{202, {{"job_id", accepted->job_id}, {"cluster_id", accepted->cluster_id}}};
}

absl::StatusOr<ApiReply> Handlers::Resize(const ApiRequest& r, JobKind kind) {
  if (absl::Status s = CheckPathClusterId(r); !s.ok()) return s;
  // 404 for a cluster the project cannot see comes before complaints about the body.
  if (auto c = registry_->GetCluster(r.project_id, r.path[0]); !c.ok()) return c.status();
  auto names = ParseNodeNameList(r.body);
  if (!names.ok()) return names.status();
  auto job = registry_->ResizeCluster(r.project_id, r.path[0], kind, *names);
  if (!job.ok()) return job.status();
  return ApiReply{202, {{"job_id", *job}}};
}

absl::StatusOr<ApiReply> Handlers::ExpandCluster(const ApiRequest& r) {
  return Resize(r, JobKind::kExpand);
}

absl::StatusOr<ApiReply> Handlers::ShrinkCluster(const ApiRequest& r) {
  return Resize(r, JobKind::kShrink);
}

absl::StatusOr<ApiReply> Handlers::CreateCredentialInfo(const ApiRequest& r) {
  if (absl::Status s = CheckPathProject(r); !s.ok()) return s;
  auto c = credentials_->Create(r.project_id);
  if (!c.ok()) return c.status();
  // The project's running nodes take the key now, not at their next restart. The credential
  // exists either way: a node this misses gets the key when it next starts.
  for (const Cluster& cluster : registry_->ListClusters(r.project_id)) {
    if (cluster.status == kDeleted || cluster.status == kDeleting) continue;
    if (absl::Status s = backend_->RefreshCredential(cluster); !s.ok()) {
      spdlog::warn("cluster {}: the new cdKey did not reach its nodes yet: {}", cluster.id,
                   s.ToString());
    }
  }
  return ApiReply{200, CredentialJson(*c)};
}

absl::StatusOr<ApiReply> Handlers::ShowCredentialInfo(const ApiRequest& r) {
  if (absl::Status s = CheckPathProject(r); !s.ok()) return s;
  auto all = credentials_->List(r.project_id);
  if (!all.ok()) return all.status();
  Json out = Json::array();
  for (const Credential& c : *all) out.push_back(CredentialJson(c));
  return ApiReply{200, std::move(out)};
}

absl::StatusOr<ApiReply> Handlers::ListJobs(const ApiRequest& r) {
  auto page = ParsePage(r.Query("limit"), r.Query("offset"), {"ListJobs", 1000});
  if (!page.ok()) return page.status();
  auto type = ParseJobType(r.Query("job_type"));
  if (!type.ok()) return type.status();
  std::vector<Json> all;
  for (const Job& j : registry_->ListJobs(r.project_id, *type == "long")) {
    all.push_back(JobToApi(j));
  }
  return ApiReply{200, {{"jobs", PageOf(all, *page, 1000)}}};
}

absl::StatusOr<ApiReply> Handlers::ShowJob(const ApiRequest& r) {
  if (absl::Status s = ValidateJobId("job_id", r.path.at(0)); !s.ok()) return s;
  auto j = registry_->GetJob(r.project_id, r.path[0]);
  if (!j.ok()) return j.status();
  return ApiReply{200, JobToApi(*j)};
}

absl::StatusOr<ApiReply> Handlers::CancelJobs(const ApiRequest& r) {
  auto ids = ParseJobIds(r.body);
  if (!ids.ok()) return ids.status();
  auto result = registry_->CancelJobs(r.project_id, *ids);
  if (!result.ok()) return result.status();
  return ApiReply{200,
                  {{"success_rows", result->success_rows},
                   {"failed_rows", result->failed_ids.size()},
                   {"failed_ids", result->failed_ids}}};
}

}  // namespace ems::controller::api
