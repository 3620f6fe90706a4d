#include "controller/jobs/reconciler.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "controller/api/errors.h"
#include "spdlog/spdlog.h"

namespace ems::controller {
namespace {

// TaskInfo.message is 1..128 characters.
std::string Clip(std::string s) {
  if (s.empty()) s = "-";
  if (s.size() > 128) s = s.substr(0, 125) + "...";
  return s;
}

const v1::NodeInfo* FindNode(const v1::ClusterMap& map, const std::string& id) {
  for (const auto& n : map.nodes()) {
    if (n.id() == id) return &n;
  }
  return nullptr;
}

}  // namespace

Reconciler::~Reconciler() { Stop(); }

void Reconciler::Start() {
  loop_ = std::thread([this] { Loop(); });
}

void Reconciler::Stop() {
  if (!loop_.joinable()) return;
  stop_.Notify();
  loop_.join();
  std::map<int64_t, std::thread> runners;
  {
    absl::MutexLock lock(&mu_);
    runners.swap(runners_);
  }
  for (auto& [id, t] : runners) t.join();
}

void Reconciler::Loop() {
  absl::Time next_resync = absl::InfinitePast();
  while (!stop_.HasBeenNotified()) {
    std::vector<std::thread> done;
    {
      absl::MutexLock lock(&mu_);
      for (const int64_t runner : finished_) {
        done.push_back(std::move(runners_[runner]));
        runners_.erase(runner);
      }
      finished_.clear();
    }
    for (std::thread& t : done) t.join();
    // Resync runs on this thread, between claims, so it never races a job of its cluster.
    if (absl::Now() >= next_resync) {
      Resync();
      next_resync = absl::Now() + options_.resync_interval;
    }
    // Not while stopping: runners interrupted by Stop release their jobs unfinished, and
    // those must wait for the next controller.
    for (Job& job : stop_.HasBeenNotified() ? std::vector<Job>() : registry_->ClaimRunnableJobs()) {
      absl::MutexLock lock(&mu_);  // held until inserted: the runner reports into finished_
      const int64_t runner = next_runner_++;
      runners_[runner] = std::thread(
          [this, runner, j = std::move(job)]() mutable { RunJob(std::move(j), runner); });
    }
    registry_->WaitForWork(options_.poll_interval);
  }
}

bool Reconciler::CancelRequested(const std::string& job_id) {
  auto j = registry_->GetJobById(job_id);
  return j.ok() && j->cancel_requested;
}

void Reconciler::RunJob(Job job, int64_t runner) {
  const absl::Time now = registry_->clock()->Now();
  absl::Status s = registry_->MutateJobAndCluster(job.id, [&](Job& j, Cluster& c) {
    if (j.status == kJobInit) {
      j.status = kJobRunning;
      j.begin_at = now;
    }
    if (j.kind == JobKind::kExpand && c.status == kRunning) c.status = kExpanding;
    if (j.kind == JobKind::kShrink && c.status == kRunning) c.status = kShrinking;
    c.reason = absl::StrCat(JobKindName(j.kind), " job ", j.id, " is running");
  });
  if (s.ok()) {
    spdlog::info("job {} ({} of cluster {}) runs from step {}", job.id, JobKindName(job.kind),
                 job.cluster_id, job.step);
    const int n = static_cast<int>(job.tasks.size());
    int step = job.step;
    bool ended = false;  // stopped, failed, or interrupted
    for (; step < n && !ended; ++step) {
      if (stop_.HasBeenNotified()) break;
      // Expand can be undone at any step, shrink until it starts stopping nodes (step 1;
      // Registry::CancelJobs refuses from then on); create stops when a delete overtook it.
      const bool cancellable = job.kind == JobKind::kExpand ||
                               (job.kind == JobKind::kShrink && step <= 1) ||
                               job.kind == JobKind::kCreate || job.kind == JobKind::kEnroll;
      if (cancellable && CancelRequested(job.id)) {
        RollBack(job);
        ended = true;
        break;
      }
      registry_
          ->MutateJob(job.id,
                      [&](Job& j) {
                        j.tasks[step].status = kJobRunning;
                        j.tasks[step].begin_at = registry_->clock()->Now();
                      })
          .IgnoreError();  // bookkeeping only; the step's own result decides
      s = RunStep(job, step);
      if (stop_.HasBeenNotified()) break;  // interrupted: resumes after a restart
      if (absl::IsCancelled(s)) {
        RollBack(job);
        ended = true;
      } else if (!s.ok()) {
        absl::Status failure(s.code(), absl::StrCat("task ", step, ": ", s.message()));
        if (job.kind == JobKind::kExpand) {
          // The nodes it started are in no cluster's list, so nothing else would stop them.
          // If this fails too, Resync stops them once no job of the cluster is open.
          if (absl::Status undo = UndoExpand(job); !undo.ok()) {
            failure = absl::Status(failure.code(),
                                   absl::StrCat(failure.message(), "; undo: ", undo.message()));
          }
        }
        Finish(job, failure);
        ended = true;
      } else {
        s = registry_->MutateJob(job.id, [&](Job& j) {
          j.tasks[step].status = kJobCompleted;
          j.tasks[step].end_at = registry_->clock()->Now();
          j.step = step + 1;
          j.progress = 100.0 * (step + 1) / static_cast<double>(n);
        });
        if (!s.ok()) {
          spdlog::error("job {}: cannot persist step {}: {}", job.id, step, s.ToString());
          break;  // resumes at this step after a restart
        }
      }
    }
    // Also covers a job whose last step was persisted just before a crash.
    if (!ended && step >= n && !stop_.HasBeenNotified()) Finish(job, absl::OkStatus());
  } else {
    spdlog::error("job {}: cannot start: {}", job.id, s.ToString());
  }
  registry_->ReleaseJob(job.id);
  absl::MutexLock lock(&mu_);
  finished_.push_back(runner);
}

void Reconciler::Report(const Job& job, int step, double fraction, const std::string& message) {
  if (step < 0) return;
  const double n = static_cast<double>(job.tasks.size());
  const double progress = 100.0 * (step + std::clamp(fraction, 0.0, 0.99)) / n;
  const std::string msg = Clip(message);
  auto current = registry_->GetJobById(job.id);
  if (current.ok() && current->tasks[step].message == msg &&
      std::abs(current->progress - progress) < 0.5) {
    return;  // unchanged: spare the fsync
  }
  registry_
      ->MutateJob(job.id,
                  [&](Job& j) {
                    j.progress = progress;
                    j.tasks[step].message = msg;
                  })
      .IgnoreError();  // progress is advisory; the next report or the step's end retries
}

absl::StatusOr<int> Reconciler::CountReady(const Cluster& c, const std::vector<std::string>& names,
                                           std::string* detail) {
  auto statuses = backend_->Status(c, names);
  if (!statuses.ok()) return statuses.status();
  absl::StatusOr<v1::ClusterMap> map = absl::NotFoundError("no membership");
  if (membership_ != nullptr) map = membership_->GetMap(c.id);
  int ready = 0;
  detail->clear();
  for (const NodeStatus& st : *statuses) {
    bool ok = st.ready;
    std::string why = st.detail;
    const v1::NodeInfo* node = map.ok() ? FindNode(*map, st.name) : nullptr;
    if (ok && node != nullptr && node->state() != v1::UP) {
      ok = false;
      why = absl::StrCat("membership state ", v1::NodeState_Name(node->state()));
    } else if (ok && node == nullptr && options_.require_registration) {
      ok = false;
      why = "not registered with membership yet";
    }
    if (ok) {
      ++ready;
    } else if (detail->empty()) {
      *detail = absl::StrCat(st.name, ": ", why.empty() ? "not ready" : why);
    }
  }
  return ready;
}

absl::Status Reconciler::WaitReady(const Job& job, int step,
                                   const std::vector<std::string>& names) {
  const absl::Time deadline = absl::Now() + options_.ready_timeout;
  const int n = static_cast<int>(names.size());
  while (true) {
    auto c = registry_->GetClusterById(job.cluster_id);
    if (!c.ok()) return c.status();
    std::string detail;
    auto ready = CountReady(*c, names, &detail);
    if (!ready.ok()) return ready.status();
    Report(job, step, n == 0 ? 1.0 : static_cast<double>(*ready) / n,
           absl::StrCat(*ready, "/", n, " nodes ready", detail.empty() ? "" : "; ", detail));
    if (job.kind == JobKind::kCreate || job.kind == JobKind::kEnroll) {
      if (c->available_node_count != *ready) {
        registry_->MutateCluster(c->id, [&](Cluster& cl) { cl.available_node_count = *ready; })
            .IgnoreError();  // live figure; the next poll retries
      }
    }
    if (*ready == n) return absl::OkStatus();
    if (CancelRequested(job.id)) return absl::CancelledError("cancel requested");
    if (absl::Now() > deadline) {
      return absl::DeadlineExceededError(
          absl::StrCat("only ", *ready, " of ", n, " nodes ready after ",
                       absl::FormatDuration(options_.ready_timeout), ": ", detail));
    }
    if (stop_.WaitForNotificationWithTimeout(options_.poll_interval)) {
      return absl::AbortedError("controller stopping");
    }
  }
}

absl::Status Reconciler::Drain(const Job& job, int step, const std::vector<std::string>& names) {
  if (membership_ == nullptr) return absl::OkStatus();
  auto map = membership_->GetMap(job.cluster_id);
  if (!map.ok()) {
    Report(job, step, 1, "nodes are not in a membership map: nothing to drain");
    return absl::OkStatus();
  }
  for (const std::string& name : names) {
    const v1::NodeInfo* node = FindNode(*map, name);
    if (node != nullptr && node->state() == v1::UP) {
      auto changed = membership_->SetNodeState(job.cluster_id, name, v1::DRAINING);
      if (!changed.ok()) return changed.status();
    }
  }
  const absl::Time deadline = absl::Now() + options_.drain_timeout;
  while (true) {
    map = membership_->GetMap(job.cluster_id);
    if (!map.ok()) return map.status();
    std::vector<std::string> draining;
    for (const std::string& name : names) {
      const v1::NodeInfo* node = FindNode(*map, name);
      if (node != nullptr && node->state() == v1::DRAINING) draining.push_back(name);
    }
    // A node whose process is gone cannot push anything more: it is done, with losses.
    if (!draining.empty()) {
      auto c = registry_->GetClusterById(job.cluster_id);
      auto st = c.ok() ? backend_->Status(*c, draining) : c.status();
      if (st.ok()) {
        draining.clear();
        for (const NodeStatus& s : *st) {
          if (s.ready) draining.push_back(s.name);
        }
      }
    }
    const size_t done = names.size() - draining.size();
    Report(job, step, static_cast<double>(done) / static_cast<double>(names.size()),
           absl::StrCat(done, "/", names.size(), " nodes drained"));
    if (draining.empty()) return absl::OkStatus();
    if (job.kind == JobKind::kShrink && CancelRequested(job.id)) {
      return absl::CancelledError("cancel requested");
    }
    if (absl::Now() > deadline) {
      spdlog::warn("job {}: {} still draining after {}; stopping them anyway", job.id,
                   absl::StrJoin(draining, ","), absl::FormatDuration(options_.drain_timeout));
      Report(job, step, 1,
             absl::StrCat("drain timed out for ", absl::StrJoin(draining, ","),
                          "; their blocks not yet moved are dropped"));
      return absl::OkStatus();
    }
    if (stop_.WaitForNotificationWithTimeout(options_.poll_interval)) {
      return absl::AbortedError("controller stopping");
    }
  }
}

absl::Status Reconciler::StopAndForget(const Cluster& c, const std::vector<std::string>& names) {
  if (absl::Status s = backend_->StopNodes(c, names); !s.ok()) return s;
  if (membership_ == nullptr) return absl::OkStatus();
  for (const std::string& name : names) {
    auto removed = membership_->RemoveNode(c.id, name);
    if (!removed.ok() && !absl::IsNotFound(removed.status())) return removed.status();
  }
  return absl::OkStatus();
}

}  // namespace ems::controller
