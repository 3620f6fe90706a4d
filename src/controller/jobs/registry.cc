#include "controller/jobs/registry.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "controller/api/errors.h"
#include "controller/ids.h"
#include "spdlog/spdlog.h"

namespace ems::controller {
namespace {

constexpr char kClusterKind[] = "cluster";
constexpr char kJobKind[] = "job";

bool IsResize(JobKind k) { return k == JobKind::kExpand || k == JobKind::kShrink; }

}  // namespace

absl::StatusOr<std::unique_ptr<Registry>> Registry::Load(StateStore* store, Clock* clock) {
  std::unique_ptr<Registry> r(new Registry(store, clock));
  auto clusters = store->List(kClusterKind);
  if (!clusters.ok()) return clusters.status();
  auto jobs = store->List(kJobKind);
  if (!jobs.ok()) return jobs.status();
  absl::MutexLock lock(&r->mu_);
  for (const auto& [id, blob] : *clusters) {
    auto c = ClusterFromRecord(blob);
    if (!c.ok())
      return absl::DataLossError(absl::StrCat("cluster ", id, ": ", c.status().message()));
    r->next_seq_ = std::max(r->next_seq_, c->seq + 1);
    r->clusters_[id] = *std::move(c);
  }
  for (const auto& [id, blob] : *jobs) {
    auto j = JobFromRecord(blob);
    if (!j.ok()) return absl::DataLossError(absl::StrCat("job ", id, ": ", j.status().message()));
    r->next_seq_ = std::max(r->next_seq_, j->seq + 1);
    r->jobs_[id] = *std::move(j);
  }
  spdlog::info("registry: loaded {} clusters and {} jobs", r->clusters_.size(), r->jobs_.size());
  return r;
}

absl::Status Registry::Commit(const std::vector<const Cluster*>& clusters,
                              const std::vector<const Job*>& jobs) {
  std::vector<StateStore::Write> writes;
  for (const Cluster* c : clusters) {
    writes.push_back({kClusterKind, c->id, DumpJson(ClusterToRecord(*c))});
  }
  for (const Job* j : jobs) writes.push_back({kJobKind, j->id, DumpJson(JobToRecord(*j))});
  if (absl::Status s = store_->Apply(writes); !s.ok()) return s;
  for (const Cluster* c : clusters) clusters_[c->id] = *c;
  for (const Job* j : jobs) jobs_[j->id] = *j;
  return absl::OkStatus();
}

Job Registry::NewJob(JobKind kind, const Cluster& cluster) {
  Job job;
  job.kind = kind;
  const bool long_job = IsResize(kind);
  // Expand/shrink ids follow the reference's ems-custom-{uuid} inside the short-/long- rule.
  job.id = long_job ? "long-ems-custom-" + RandomHex(16) : "short-" + NewUuid();
  job.cluster_id = cluster.id;
  job.project_id = cluster.project_id;
  job.created_at = clock_->Now();
  job.seq = next_seq_++;
  const std::string task_prefix = absl::StrCat(long_job ? "long-" : "short-", RandomHex(12), "-");
  const std::vector<std::string> plan = TaskPlan(kind);
  for (size_t i = 0; i < plan.size(); ++i) {
    Task t;
    t.id = absl::StrCat(task_prefix, i);
    t.message = plan[i];
    t.created_at = job.created_at;
    job.tasks.push_back(std::move(t));
  }
  return job;
}

bool Registry::NameTaken(const std::string& project, const std::string& name) const {
  for (const auto& [id, c] : clusters_) {
    if (c.project_id == project && c.spec.name == name && c.status != kDeleted) return true;
  }
  return false;
}

bool Registry::ShortIdTaken(const std::string& id) const {
  for (const auto& [other, c] : clusters_) {
    if (c.status != kDeleted && ShortClusterId(other) == ShortClusterId(id)) return true;
  }
  return false;
}

absl::StatusOr<Cluster*> Registry::FindCluster(const std::string& project, const std::string& id) {
  auto it = clusters_.find(id);
  if (it == clusters_.end() || it->second.project_id != project) return api::ClusterNotFound(id);
  return &it->second;
}

absl::StatusOr<Registry::Accepted> Registry::CreateCluster(const std::string& project,
                                                           ClusterSpec spec) {
  absl::MutexLock lock(&mu_);
  Cluster c;
  do {
    c.id = NewUuid();
  } while (ShortIdTaken(c.id));
  if (spec.name.empty()) spec.name = absl::StrCat("ems-", ShortClusterId(c.id));
  if (NameTaken(project, spec.name)) {
    return api::ApiError(
        absl::StatusCode::kAlreadyExists, api::kCodeNameExists,
        absl::StrCat("the cluster name: [", spec.name, "] exist, please change cluster name"));
  }
  c.project_id = project;
  c.seq = next_seq_++;
  c.spec = std::move(spec);
  c.k8s_name = c.spec.k8s.k8s_cluster_id;
  c.created_at = c.updated_at = clock_->Now();
  c.reason = "waiting for the create job";
  Job job = NewJob(JobKind::kCreate, c);
  if (absl::Status s = Commit({&c}, {&job}); !s.ok()) {
    return api::ApiError(absl::StatusCode::kInternal, api::kCodeCreateFailed,
                         absl::StrCat("Failed to create cluster. (", s.message(), ")"));
  }
  ++work_version_;
  return Accepted{job.id, c.id};
}

absl::StatusOr<Registry::Accepted> Registry::EnrollCluster(const std::string& project,
                                                           api::EnrollRequest request) {
  absl::MutexLock lock(&mu_);
  Cluster c;
  c.id = request.cluster_id.empty() ? NewUuid() : request.cluster_id;
  if (clusters_.contains(c.id)) {
    return api::InvalidParameter(absl::StrCat("cluster_id ", c.id, " is already in use"));
  }
  if (ShortIdTaken(c.id)) {
    return api::InvalidParameter(absl::StrCat("cluster_id ", c.id, " starts with the same 8 ",
                                              "characters as a cluster already in use"));
  }
  if (NameTaken(project, request.spec.name)) {
    return api::ApiError(absl::StatusCode::kAlreadyExists, api::kCodeNameExists,
                         absl::StrCat("the cluster name: [", request.spec.name,
                                      "] exist, please change cluster name"));
  }
  c.project_id = project;
  c.seq = next_seq_++;
  c.spec = std::move(request.spec);
  c.enroll = std::move(request.extras);
  c.k8s_name = c.spec.k8s.k8s_cluster_id;
  c.created_at = c.updated_at = clock_->Now();
  c.reason = "waiting for the enroll job";
  Job job = NewJob(JobKind::kEnroll, c);
  if (absl::Status s = Commit({&c}, {&job}); !s.ok()) return s;
  ++work_version_;
  return Accepted{job.id, c.id};
}

std::vector<Cluster> Registry::ListClusters(const std::string& project) {
  absl::MutexLock lock(&mu_);
  std::vector<Cluster> out;
  for (const auto& [id, c] : clusters_) {
    if (c.project_id == project) out.push_back(c);
  }
  std::sort(out.begin(), out.end(),
            [](const Cluster& a, const Cluster& b) { return a.seq < b.seq; });
  return out;
}

absl::StatusOr<Cluster> Registry::GetCluster(const std::string& project, const std::string& id) {
  absl::MutexLock lock(&mu_);
  auto c = FindCluster(project, id);
  if (!c.ok()) return c.status();
  return **c;
}

absl::StatusOr<std::string> Registry::DeleteCluster(const std::string& project,
                                                    const std::string& id) {
  absl::MutexLock lock(&mu_);
  auto found = FindCluster(project, id);
  if (!found.ok()) return found.status();
  Cluster c = **found;
  bool delete_pending = false;
  for (const auto& [jid, j] : jobs_) {
    delete_pending |= j.cluster_id == id && j.kind == JobKind::kDelete && !IsTerminal(j.status);
  }
  // A DELETING cluster whose delete job failed may be deleted again (the retry).
  if (c.status == kDeleted || (c.status == kDeleting && delete_pending)) {
    return api::ApiError(
        absl::StatusCode::kFailedPrecondition, api::kCodeCannotDelete,
        absl::StrCat("Cluster cannot be deleted in current state: [", c.status, "]"));
  }
  const absl::Time now = clock_->Now();
  std::vector<Job> changed;
  for (const auto& [jid, j] : jobs_) {
    if (j.cluster_id != id || IsTerminal(j.status)) continue;
    Job copy = j;
    // As in CancelJobs: a queued resize stops here, with its tasks; one a runner has claimed,
    // even unstarted, is the runner's to stop, or it would run the steps of a STOPPED job.
    if (j.status == kJobInit && IsResize(j.kind) && !claimed_.contains(jid)) {
      copy.status = kJobStopped;
      copy.end_at = now;
      for (Task& t : copy.tasks) t.status = kJobStopped;
    } else {
      copy.cancel_requested = true;  // the runner stops at its next step
    }
    changed.push_back(std::move(copy));
  }
  c.status = kDeleting;
  c.reason = "DeleteClusterById requested";
  c.updated_at = now;
  Job job = NewJob(JobKind::kDelete, c);
  std::vector<const Job*> jobs = {&job};
  for (const Job& j : changed) jobs.push_back(&j);
  if (absl::Status s = Commit({&c}, jobs); !s.ok()) {
    return api::ApiError(
        absl::StatusCode::kInternal, api::kCodeDeletingFailed,
        absl::StrCat("Failed to update cluster status to DELETING (", s.message(), ")"));
  }
  ++work_version_;
  return job.id;
}

absl::Status Registry::AuthorizeCluster(const std::string& project, const std::string& id) {
  absl::MutexLock lock(&mu_);
  auto found = FindCluster(project, id);
  if (!found.ok()) return found.status();
  Cluster c = **found;
  if (c.status == kDeleted) {
    return api::ApiError(absl::StatusCode::kFailedPrecondition, api::kCodeWrongState,
                         "Cluster cannot be authorized in current state: [DELETED]");
  }
  c.authorized = true;
  c.updated_at = clock_->Now();
  return Commit({&c}, {});
}

std::vector<std::string> Registry::ProjectedNodes(const Cluster& c) const {
  std::vector<std::string> nodes = c.nodes;
  for (const Job& j : SortedJobs([&](const Job& j) {
         return j.cluster_id == c.id && !IsTerminal(j.status) && IsResize(j.kind);
       })) {
    for (const std::string& n : j.node_names) {
      auto it = std::find(nodes.begin(), nodes.end(), n);
      if (j.kind == JobKind::kExpand && it == nodes.end()) nodes.push_back(n);
      if (j.kind == JobKind::kShrink && it != nodes.end()) nodes.erase(it);
    }
  }
  return nodes;
}

absl::StatusOr<std::string> Registry::ResizeCluster(const std::string& project,
                                                    const std::string& id, JobKind kind,
                                                    const std::vector<std::string>& names) {
  absl::MutexLock lock(&mu_);
  auto found = FindCluster(project, id);
  if (!found.ok()) return found.status();
  const Cluster& c = **found;
  const bool expand = kind == JobKind::kExpand;
  if (c.status != kRunning && c.status != kExpanding && c.status != kShrinking) {
    return api::ApiError(absl::StatusCode::kFailedPrecondition, api::kCodeWrongState,
                         absl::StrCat("Cluster cannot be ", expand ? "expanded" : "shrunk",
                                      " in current state: [", c.status, "]"));
  }
  const std::vector<std::string> projected = ProjectedNodes(c);
  for (size_t i = 0; i < names.size(); ++i) {
    const bool member = std::find(projected.begin(), projected.end(), names[i]) != projected.end();
    if (expand && member) {
      return api::InvalidParameter(
          absl::StrCat("node_name_list[", i, "]: node ", names[i], " is already in the cluster"));
    }
    if (!expand && !member) {
      return api::InvalidParameter(
          absl::StrCat("node_name_list[", i, "]: node ", names[i], " is not in the cluster"));
    }
  }
  const int64_t after = static_cast<int64_t>(projected.size()) +
                        (expand ? 1 : -1) * static_cast<int64_t>(names.size());
  if (after > api::kMaxNodeCount) {
    return api::RangeError("cluster", "node_count", false, std::to_string(api::kMaxNodeCount));
  }
  if (after < api::kMinNodeCount) {
    return api::RangeError("cluster", "node_count", true, std::to_string(api::kMinNodeCount));
  }
  Job job = NewJob(kind, c);
  job.node_names = names;
  if (absl::Status s = Commit({}, {&job}); !s.ok()) return s;
  ++work_version_;
  return job.id;
}

std::vector<Job> Registry::SortedJobs(const std::function<bool(const Job&)>& keep) const {
  std::vector<Job> out;
  for (const auto& [id, j] : jobs_) {
    if (keep(j)) out.push_back(j);
  }
  std::sort(out.begin(), out.end(), [](const Job& a, const Job& b) { return a.seq < b.seq; });
  return out;
}

std::vector<Job> Registry::ListJobs(const std::string& project, bool long_jobs) {
  absl::MutexLock lock(&mu_);
  return SortedJobs(
      [&](const Job& j) { return j.project_id == project && IsLongJob(j) == long_jobs; });
}

absl::StatusOr<Job> Registry::GetJob(const std::string& project, const std::string& id) {
  absl::MutexLock lock(&mu_);
  auto it = jobs_.find(id);
  if (it == jobs_.end() || it->second.project_id != project) return api::JobNotFound(id);
  return it->second;
}

absl::StatusOr<Registry::CancelResult> Registry::CancelJobs(const std::string& project,
                                                            const std::vector<std::string>& ids) {
  absl::MutexLock lock(&mu_);
  for (const std::string& id : ids) {
    auto it = jobs_.find(id);
    if (it != jobs_.end() && it->second.project_id == project && !IsResize(it->second.kind)) {
      return api::ApiError(absl::StatusCode::kPermissionDenied, api::kCodeNotCancellable,
                           absl::StrCat("job ", id, " is a ", JobKindName(it->second.kind),
                                        " job: only expand and shrink jobs can be cancelled"));
    }
  }
  CancelResult result;
  std::vector<Job> changed;
  const absl::Time now = clock_->Now();
  for (const std::string& id : ids) {
    auto it = jobs_.find(id);
    // A shrink past its drain is stopping nodes: too late to undo. (The runner honours a
    // cancel at the start of steps 0 and 1, so one accepted here is never ignored.)
    const bool too_late =
        it != jobs_.end() && it->second.kind == JobKind::kShrink && it->second.step >= 1;
    if (it == jobs_.end() || it->second.project_id != project || IsTerminal(it->second.status) ||
        too_late) {
      result.failed_ids.push_back(id);
      continue;
    }
    Job j = it->second;
    // A job not yet started stops here; one a runner has claimed, even if it has not marked
    // it RUNNING yet, is the runner's to stop: it would otherwise go on and run every step
    // of a job reported STOPPED (and a shrink queued behind it would count its nodes).
    if (j.status == kJobInit && !claimed_.contains(id)) {
      j.status = kJobStopped;
      j.end_at = now;
      for (Task& t : j.tasks) t.status = kJobStopped;
    } else {
      j.cancel_requested = true;
    }
    changed.push_back(std::move(j));
    ++result.success_rows;
  }
  std::vector<const Job*> ptrs;
  for (const Job& j : changed) ptrs.push_back(&j);
  if (absl::Status s = Commit({}, ptrs); !s.ok()) return s;
  ++work_version_;
  return result;
}

std::vector<Job> Registry::ClaimRunnableJobs() {
  absl::MutexLock lock(&mu_);
  absl::flat_hash_set<std::string> busy;  // clusters with a claimed job
  for (const std::string& id : claimed_) busy.insert(jobs_[id].cluster_id);
  std::vector<Job> out;
  for (const Job& j : SortedJobs([](const Job& j) { return !IsTerminal(j.status); })) {
    if (!busy.insert(j.cluster_id).second) continue;  // one job per cluster, oldest first
    claimed_.insert(j.id);
    out.push_back(j);
  }
  return out;
}

void Registry::ReleaseJob(const std::string& job_id) {
  absl::MutexLock lock(&mu_);
  claimed_.erase(job_id);
  ++work_version_;  // the cluster's next job may run now
}

absl::StatusOr<Job> Registry::GetJobById(const std::string& id) {
  absl::MutexLock lock(&mu_);
  auto it = jobs_.find(id);
  if (it == jobs_.end()) return api::JobNotFound(id);
  return it->second;
}

absl::StatusOr<Cluster> Registry::GetClusterById(const std::string& id) {
  absl::MutexLock lock(&mu_);
  auto it = clusters_.find(id);
  if (it == clusters_.end()) return api::ClusterNotFound(id);
  return it->second;
}

std::vector<Cluster> Registry::AllClusters() {
  absl::MutexLock lock(&mu_);
  std::vector<Cluster> out;
  for (const auto& [id, c] : clusters_) out.push_back(c);
  return out;
}

absl::Status Registry::MutateCluster(const std::string& id,
                                     const std::function<void(Cluster&)>& fn) {
  absl::MutexLock lock(&mu_);
  auto it = clusters_.find(id);
  if (it == clusters_.end()) return api::ClusterNotFound(id);
  Cluster c = it->second;
  fn(c);
  c.updated_at = clock_->Now();
  return Commit({&c}, {});
}

absl::Status Registry::MutateJob(const std::string& id, const std::function<void(Job&)>& fn) {
  absl::MutexLock lock(&mu_);
  auto it = jobs_.find(id);
  if (it == jobs_.end()) return api::JobNotFound(id);
  Job j = it->second;
  fn(j);
  return Commit({}, {&j});
}

absl::Status Registry::MutateJobAndCluster(const std::string& job_id,
                                           const std::function<void(Job&, Cluster&)>& fn) {
  absl::MutexLock lock(&mu_);
  auto jit = jobs_.find(job_id);
  if (jit == jobs_.end()) return api::JobNotFound(job_id);
  auto cit = clusters_.find(jit->second.cluster_id);
  if (cit == clusters_.end()) return api::ClusterNotFound(jit->second.cluster_id);
  Job j = jit->second;
  Cluster c = cit->second;
  fn(j, c);
  c.updated_at = clock_->Now();
  return Commit({&c}, {&j});
}

bool Registry::IsBusy(const std::string& cluster_id) {
  absl::MutexLock lock(&mu_);
  for (const std::string& id : claimed_) {
    if (jobs_[id].cluster_id == cluster_id) return true;
  }
  return false;
}

bool Registry::HasOpenJobs(const std::string& cluster_id) {
  absl::MutexLock lock(&mu_);
  for (const auto& [id, j] : jobs_) {
    if (j.cluster_id == cluster_id && !IsTerminal(j.status)) return true;
  }
  return false;
}

void Registry::WaitForWork(absl::Duration timeout) {
  absl::MutexLock lock(&mu_);
  const int64_t seen = work_version_;
  auto changed = [this, seen]()
                     ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return work_version_ != seen; };
  mu_.AwaitWithTimeout(absl::Condition(&changed), timeout);
}

}  // namespace ems::controller
