// The controller's clusters and jobs: an in-memory view written through to the StateStore.
// Every change is persisted (one SQLite transaction) before the call returns, so what the API
// acknowledged survives a SIGKILL. API calls are scoped to a project: another project's
// records answer NOT_FOUND. The reconciler changes records only through Mutate*, so its
// updates and the API's never overwrite each other. Thread-safe.
#ifndef EMS_CONTROLLER_JOBS_REGISTRY_H_
#define EMS_CONTROLLER_JOBS_REGISTRY_H_

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "common/clock.h"
#include "controller/api/validation.h"
#include "controller/model.h"
#include "controller/state_store.h"

namespace ems::controller {

class Registry {
 public:
  // Loads every cluster and job from `store`. Not owned; both must outlive the Registry.
  static absl::StatusOr<std::unique_ptr<Registry>> Load(StateStore* store, Clock* clock);

  struct Accepted {
    std::string job_id;
    std::string cluster_id;
  };
  // 400 ems.00030033 when the project already has a live cluster of that name. An empty name
  // becomes "ems-<first 8 hex of the id>".
  absl::StatusOr<Accepted> CreateCluster(const std::string& project, ClusterSpec spec);
  absl::StatusOr<Accepted> EnrollCluster(const std::string& project, api::EnrollRequest request);
  // Oldest first.
  std::vector<Cluster> ListClusters(const std::string& project);
  absl::StatusOr<Cluster> GetCluster(const std::string& project, const std::string& id);
  // Marks the cluster DELETING, stops its queued expand/shrink jobs, asks its running job to
  // stop, and queues the delete job. 400 ems.00030034 if DELETING or DELETED.
  absl::StatusOr<std::string> DeleteCluster(const std::string& project, const std::string& id);
  absl::Status AuthorizeCluster(const std::string& project, const std::string& id);
  // Queues an expand or shrink job. Checks the names against the node set the cluster will
  // have once its queued jobs are done.
  absl::StatusOr<std::string> ResizeCluster(const std::string& project, const std::string& id,
                                            JobKind kind, const std::vector<std::string>& names);

  // Oldest first; `long_jobs` picks ids starting "long-" (else "short-").
  std::vector<Job> ListJobs(const std::string& project, bool long_jobs);
  absl::StatusOr<Job> GetJob(const std::string& project, const std::string& id);
  struct CancelResult {
    int success_rows = 0;
    std::vector<std::string> failed_ids;
  };
  // Queued expand/shrink jobs stop at once; running ones are asked to stop (they roll back).
  // 403 ems.00030035 if an id names a create/enroll/delete job of the project; finished,
  // unknown and other projects' jobs land in failed_ids.
  absl::StatusOr<CancelResult> CancelJobs(const std::string& project,
                                          const std::vector<std::string>& ids);

  // --- for the reconciler ---
  // Per cluster, its oldest unfinished job if no runner has claimed one of that cluster yet.
  // Claims the returned jobs.
  std::vector<Job> ClaimRunnableJobs();
  void ReleaseJob(const std::string& job_id);
  absl::StatusOr<Job> GetJobById(const std::string& id);
  absl::StatusOr<Cluster> GetClusterById(const std::string& id);
  std::vector<Cluster> AllClusters();
  // Applies `fn` to the current records and persists them together. NOT_FOUND if either is
  // gone. `fn` must not call back into the Registry.
  absl::Status MutateCluster(const std::string& id, const std::function<void(Cluster&)>& fn);
  absl::Status MutateJob(const std::string& id, const std::function<void(Job&)>& fn);
  absl::Status MutateJobAndCluster(const std::string& job_id,
                                   const std::function<void(Job&, Cluster&)>& fn);
  // True while a runner holds a claimed job of the cluster.
  bool IsBusy(const std::string& cluster_id);
  // True while the cluster has a job not yet ended (queued, running, or to resume).
  bool HasOpenJobs(const std::string& cluster_id);
  Clock* clock() const { return clock_; }
  // Blocks until a job is queued or cancelled, or `timeout` passes.
  void WaitForWork(absl::Duration timeout);

 private:
  Registry(StateStore* store, Clock* clock) : store_(store), clock_(clock) {}

  Job NewJob(JobKind kind, const Cluster& cluster) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Persists the records, then installs them in memory.
  absl::Status Commit(const std::vector<const Cluster*>& clusters,
                      const std::vector<const Job*>& jobs) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::StatusOr<Cluster*> FindCluster(const std::string& project, const std::string& id)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  bool NameTaken(const std::string& project, const std::string& name) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Whether a cluster not yet deleted, in any project, has the same ShortClusterId as `id`:
  // backends name a cluster's objects after them (the Kubernetes
  // DaemonSet, ConfigMap and Secret), so two such clusters would share, and delete, them.
  bool ShortIdTaken(const std::string& id) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The cluster's node names after every unfinished job of it has run.
  std::vector<std::string> ProjectedNodes(const Cluster& c) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  std::vector<Job> SortedJobs(const std::function<bool(const Job&)>& keep) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  StateStore* const store_;
  Clock* const clock_;

  absl::Mutex mu_;
  std::map<std::string, Cluster> clusters_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, Job> jobs_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_set<std::string> claimed_ ABSL_GUARDED_BY(mu_);  // job ids being run
  int64_t next_seq_ ABSL_GUARDED_BY(mu_) = 1;
  int64_t work_version_ ABSL_GUARDED_BY(mu_) = 0;  // bumped when work appears
};

}  // namespace ems::controller

#endif  // EMS_CONTROLLER_JOBS_REGISTRY_H_
