// Runs the jobs of the Registry against a Backend and keeps clusters at their desired state.
// One runner thread per cluster with work (jobs of one cluster run one at a time, oldest
// first; different clusters in parallel). A job persists its step after each task, so a
// restarted controller resumes it; every step is idempotent. Between jobs, a resync pass
// restarts nodes that died and refreshes available_node_count. Thread-safe.
#ifndef EMS_CONTROLLER_JOBS_RECONCILER_H_
#define EMS_CONTROLLER_JOBS_RECONCILER_H_

#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "controller/backend/backend.h"
#include "controller/jobs/registry.h"
#include "controller/membership.h"

namespace ems::controller {

struct ReconcilerOptions {
  absl::Duration poll_interval = absl::Milliseconds(100);
  absl::Duration ready_timeout = absl::Minutes(5);  // nodes must be ready within this
  absl::Duration drain_timeout = absl::Minutes(2);  // a DRAINING node must finish within this
  absl::Duration resync_interval = absl::Seconds(2);
  // A node counts as ready only once it is UP in the cluster's membership map (nodes started
  // with --controller). Otherwise membership is consulted only for nodes that registered.
  bool require_registration = false;
};

class Reconciler {
 public:
  // None owned; all must outlive this. `membership` may be null (no ring to update).
  Reconciler(Registry* registry, Backend* backend, Membership* membership,
             ReconcilerOptions options)
      : registry_(registry), backend_(backend), membership_(membership), options_(options) {}
  ~Reconciler();

  void Start();
  // Stops the loop and the runners at their next step; unfinished jobs stay RUNNING in the
  // store and resume when a new Reconciler starts. Idempotent.
  void Stop();

 private:
  void Loop();
  // Runs `job` on runner thread `runner` (its key in runners_).
  void RunJob(Job job, int64_t runner);
  // Runs step `step` of `job`. Returns OK when the step is done.
  absl::Status RunStep(const Job& job, int step);
  absl::Status WaitReady(const Job& job, int step, const std::vector<std::string>& names);
  absl::Status Drain(const Job& job, int step, const std::vector<std::string>& names);
  absl::Status StopAndForget(const Cluster& c, const std::vector<std::string>& names);
  // Drains and stops the nodes expand `job` started (not in the cluster's list yet).
  absl::Status UndoExpand(const Job& job);
  // Puts the nodes of a cancelled shrink back in the ring (UP, or restarted if they left).
  absl::Status UndoShrink(const Cluster& c, const std::vector<std::string>& names);
  // Undoes a cancelled expand/shrink and marks the job STOPPED.
  void RollBack(const Job& job);
  void Finish(const Job& job, const absl::Status& status);
  // Progress within step `step` (fraction 0..1) and the task's message.
  void Report(const Job& job, int step, double fraction, const std::string& message);
  // Ready nodes among `names` (backend ready, and UP in membership when it knows them).
  absl::StatusOr<int> CountReady(const Cluster& c, const std::vector<std::string>& names,
                                 std::string* detail);
  void Resync();
  // Stops the nodes of `c` that run but that it does not list (an expand that failed and
  // whose undo failed too, or a controller that died between the two). Only between jobs:
  // a running or resumable expand has its nodes out of the list on purpose.
  void StopStrays(const Cluster& c);
  bool CancelRequested(const std::string& job_id);

  Registry* const registry_;
  Backend* const backend_;
  Membership* const membership_;
  const ReconcilerOptions options_;
  absl::Notification stop_;

  absl::Mutex mu_;
  // Keyed by a runner number, not the job id: a job released by an interrupted runner may be
  // claimed again before that runner's thread is joined.
  std::map<int64_t, std::thread> runners_ ABSL_GUARDED_BY(mu_);
  std::vector<int64_t> finished_ ABSL_GUARDED_BY(mu_);  // runners to join
  int64_t next_runner_ ABSL_GUARDED_BY(mu_) = 0;
  std::thread loop_;
};

}  // namespace ems::controller

#endif  // EMS_CONTROLLER_JOBS_RECONCILER_H_
