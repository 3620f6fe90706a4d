// The steps of each job kind (model.cc's TaskPlan), their undo, the end of a job and the
// resync pass.
#include <algorithm>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "controller/api/errors.h"
#include "controller/api/validation.h"
#include "controller/jobs/reconciler.h"
#include "spdlog/spdlog.h"

namespace ems::controller {
namespace {

const char* FailureCode(JobKind kind) {
  switch (kind) {
    case JobKind::kCreate:
    case JobKind::kEnroll:
      return api::kCodeCreateFailed;
    case JobKind::kDelete:
      return "ems.00030037";
    case JobKind::kExpand:
      return "ems.00030038";
    case JobKind::kShrink:
      return "ems.00030039";
  }
  return api::kCodeCreateFailed;
}

std::string Clip(const std::string& s) { return s.size() > 128 ? s.substr(0, 125) + "..." : s; }

void AddNodes(Cluster& c, const std::vector<std::string>& names) {
  for (const std::string& n : names) {
    if (std::find(c.nodes.begin(), c.nodes.end(), n) == c.nodes.end()) c.nodes.push_back(n);
  }
  c.spec.k8s.node_count = static_cast<int>(c.nodes.size());
}

void DropNodes(Cluster& c, const std::vector<std::string>& names) {
  c.nodes.erase(std::remove_if(c.nodes.begin(), c.nodes.end(),
                               [&](const std::string& n) {
                                 return std::find(names.begin(), names.end(), n) != names.end();
                               }),
                c.nodes.end());
  c.spec.k8s.node_count = static_cast<int>(c.nodes.size());
}

// Whether shrinking `c` by `names` is still what its request was accepted as: every node a
// member, and at least kMinNodeCount left.
absl::Status CheckShrink(const Cluster& c, const std::vector<std::string>& names) {
  for (const std::string& n : names) {
    if (std::find(c.nodes.begin(), c.nodes.end(), n) == c.nodes.end()) {
      return absl::FailedPreconditionError(absl::StrCat(
          "node ", n, " is not in the cluster (an expand queued before this shrink did not run)"));
    }
  }
  if (c.nodes.size() < names.size() + api::kMinNodeCount) {
    return absl::FailedPreconditionError(absl::StrCat(
        "shrinking ", c.nodes.size(), " nodes by ", names.size(), " leaves fewer than ",
        api::kMinNodeCount, " (an expand queued before this shrink did not run)"));
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status Reconciler::RunStep(const Job& job, int step) {
  auto cluster = registry_->GetClusterById(job.cluster_id);
  if (!cluster.ok()) return cluster.status();
  const Cluster& c = *cluster;
  const std::vector<std::string>& names = job.node_names;
  switch (job.kind) {
    case JobKind::kCreate:
    case JobKind::kEnroll: {
      const bool enroll = job.kind == JobKind::kEnroll;
      const int wait_step = enroll ? 1 : 3;
      if (step == 0) {
        if (!c.nodes.empty()) return absl::OkStatus();  // planned before a restart
        auto planned = enroll ? backend_->DiscoverNodes(c) : backend_->PlanNodes(c);
        if (!planned.ok()) return planned.status();
        // A cluster has 3 to 512 nodes (the API's node_count, and what shrink keeps): an
        // enrolled one too, or it could never be resized within the rules. None found is
        // one case of too few.
        const int found = static_cast<int>(planned->size());
        if (found < api::kMinNodeCount || found > api::kMaxNodeCount) {
          return absl::FailedPreconditionError(absl::StrCat(
              found, " nodes carry label ", c.spec.k8s.label.key, "=", c.spec.k8s.label.value,
              "; a cluster has ", api::kMinNodeCount, " to ", api::kMaxNodeCount));
        }
        Report(job, step, 1, absl::StrCat("nodes: ", absl::StrJoin(*planned, ",")));
        return registry_->MutateCluster(c.id, [&](Cluster& cl) { AddNodes(cl, *planned); });
      }
      if (!enroll && step == 1) return backend_->Prepare(c);
      if (!enroll && step == 2) return backend_->StartNodes(c, c.nodes);
      if (step == wait_step) return WaitReady(job, step, c.nodes);
      return absl::OkStatus();  // publish: Finish sets RUNNING
    }
    case JobKind::kDelete:
      if (step == 0) return StopAndForget(c, c.nodes);
      if (step == 1) return backend_->Release(c);
      return absl::OkStatus();  // Finish marks DELETED
    case JobKind::kExpand:
      if (step == 0) return backend_->StartNodes(c, names);
      if (step == 1) return WaitReady(job, step, names);
      return registry_->MutateCluster(c.id, [&](Cluster& cl) { AddNodes(cl, names); });
    case JobKind::kShrink:
      if (step == 0) {
        // Accepted against the nodes the cluster would have after the jobs queued before it;
        // one of those may have failed or been cancelled since.
        if (absl::Status s = CheckShrink(c, names); !s.ok()) return s;
        return Drain(job, step, names);
      }
      if (step == 1) return backend_->StopNodes(c, names);
      if (membership_ != nullptr) {
        for (const std::string& name : names) {
          auto removed = membership_->RemoveNode(c.id, name);
          if (!removed.ok() && !absl::IsNotFound(removed.status())) return removed.status();
        }
      }
      return registry_->MutateCluster(c.id, [&](Cluster& cl) { DropNodes(cl, names); });
  }
  return absl::InternalError("unknown job kind");
}

absl::Status Reconciler::UndoExpand(const Job& job) {
  auto c = registry_->GetClusterById(job.cluster_id);
  if (!c.ok()) return c.status();
  // New nodes may already hold blocks: drain them like a shrink would, then stop them.
  absl::Status undo = Drain(job, /*step=*/-1, job.node_names);
  if (undo.ok()) undo = StopAndForget(*c, job.node_names);
  return undo;
}

absl::Status Reconciler::UndoShrink(const Cluster& c, const std::vector<std::string>& names) {
  // A node that finished its drain reported itself DOWN, and its agent stopped heartbeating
  // for good (it rejoins only as a new process). Marking it UP would see it fall silent and go
  // DOWN while its process lives on, which resync never restarts: restart it instead.
  absl::flat_hash_set<std::string> gone;
  if (auto map = membership_->GetMap(c.id); map.ok()) {
    for (const v1::NodeInfo& n : map->nodes()) {
      if (n.state() == v1::DOWN && n.leaving()) gone.insert(n.id());
    }
  }
  std::vector<std::string> left;
  absl::Status undo;
  for (const std::string& name : names) {
    if (gone.contains(name)) {
      left.push_back(name);
      continue;
    }
    auto back = membership_->SetNodeState(c.id, name, v1::UP);
    if (!back.ok() && !absl::IsNotFound(back.status())) undo = back.status();
  }
  // A delete overtook the shrink: its job stops every node anyway.
  if (left.empty() || c.status == kDeleting) return undo;
  spdlog::info("cluster {}: restarting {}, which drained before the shrink was cancelled", c.id,
               absl::StrJoin(left, ","));
  // Out of the map while no process serves it; the new process registers UP, arena empty.
  absl::Status restart = StopAndForget(c, left);
  if (restart.ok()) restart = backend_->StartNodes(c, left);
  return undo.ok() ? restart : undo;
}

void Reconciler::RollBack(const Job& job) {
  auto c = registry_->GetClusterById(job.cluster_id);
  absl::Status undo;
  if (c.ok() && job.kind == JobKind::kExpand) {
    undo = UndoExpand(job);
  } else if (c.ok() && job.kind == JobKind::kShrink && membership_ != nullptr) {
    undo = UndoShrink(*c, job.node_names);
  }
  if (!undo.ok()) spdlog::error("job {}: undo after cancel: {}", job.id, undo.ToString());
  const absl::Time now = registry_->clock()->Now();
  registry_
      ->MutateJobAndCluster(
          job.id,
          [&](Job& j, Cluster& cl) {
            j.status = kJobStopped;
            j.end_at = now;
            for (Task& t : j.tasks) {
              if (!IsTerminal(t.status)) t.status = kJobStopped;
            }
            if (cl.status == kExpanding || cl.status == kShrinking) cl.status = kRunning;
            if (cl.status != kDeleting) {
              cl.reason = Clip(
                  absl::StrCat(JobKindName(j.kind), " job ", j.id, " was cancelled",
                               undo.ok() ? "" : absl::StrCat("; undo failed: ", undo.message())));
            }
          })
      .IgnoreError();  // a failed write leaves the job RUNNING+cancel_requested: retried on resume
  spdlog::info("job {} stopped (cancelled)", job.id);
}

void Reconciler::Finish(const Job& job, const absl::Status& status) {
  const absl::Time now = registry_->clock()->Now();
  auto cluster = registry_->GetClusterById(job.cluster_id);
  const std::string note = cluster.ok() ? backend_->Note(*cluster) : "";
  // The live figure as the job ends, so ShowCluster is right without waiting for a resync.
  std::string detail;
  absl::StatusOr<int> ready =
      cluster.ok() ? CountReady(*cluster, cluster->nodes, &detail) : cluster.status();
  absl::Status s = registry_->MutateJobAndCluster(job.id, [&](Job& j, Cluster& c) {
    j.end_at = now;
    if (status.ok()) {
      j.status = kJobCompleted;
      j.progress = 100;
      j.message.clear();
    } else {
      j.status = kJobFailed;
      j.message = FailureCode(j.kind);
      const int step = std::min(j.step, static_cast<int>(j.tasks.size()) - 1);
      if (step >= 0) {
        j.tasks[step].status = kJobFailed;
        j.tasks[step].end_at = now;
        j.tasks[step].message = Clip(std::string(status.message()));
      }
    }
    switch (j.kind) {
      case JobKind::kCreate:
      case JobKind::kEnroll:
        if (status.ok() && c.status == kCreating) c.status = kRunning;
        if (ready.ok()) c.available_node_count = *ready;
        break;
      case JobKind::kExpand:
      case JobKind::kShrink:
        if (c.status == kExpanding || c.status == kShrinking) c.status = kRunning;
        if (ready.ok()) c.available_node_count = *ready;
        break;
      case JobKind::kDelete:
        if (status.ok()) {
          c.status = kDeleted;
          c.available_node_count = 0;
          c.nodes.clear();
        }
        break;
    }
    if (status.ok()) {
      c.reason = c.status == kDeleted ? absl::StrCat("deleted by job ", j.id) : note;
    } else {
      c.reason =
          Clip(absl::StrCat(JobKindName(j.kind), " job ", j.id, " failed: ", status.message()));
    }
  });
  if (!s.ok()) spdlog::error("job {}: cannot record its end: {}", job.id, s.ToString());
  if (status.ok()) {
    spdlog::info("job {} ({}) completed", job.id, JobKindName(job.kind));
  } else {
    spdlog::warn("job {} ({}) failed: {}", job.id, JobKindName(job.kind), status.ToString());
  }
}

void Reconciler::Resync() {
  for (const Cluster& c : registry_->AllClusters()) {
    if (c.status != kRunning || c.nodes.empty() || registry_->IsBusy(c.id)) continue;
    std::string detail;
    auto ready = CountReady(c, c.nodes, &detail);
    if (!ready.ok()) {
      spdlog::warn("resync of cluster {}: {}", c.id, ready.status().ToString());
      continue;
    }
    if (*ready < static_cast<int>(c.nodes.size())) {
      // Desired state says these nodes run: start what is missing (idempotent for the rest).
      spdlog::warn("cluster {}: {}/{} nodes ready ({}); reconciling", c.id, *ready, c.nodes.size(),
                   detail);
      if (absl::Status s = backend_->StartNodes(c, c.nodes); !s.ok()) {
        spdlog::warn("cluster {}: restart nodes: {}", c.id, s.ToString());
      }
    }
    if (*ready != c.available_node_count) {
      registry_->MutateCluster(c.id, [&](Cluster& cl) { cl.available_node_count = *ready; })
          .IgnoreError();  // retried next pass
    }
    StopStrays(c);
  }
}

void Reconciler::StopStrays(const Cluster& c) {
  if (registry_->HasOpenJobs(c.id)) return;
  auto started = backend_->StartedNodes(c);
  if (!started.ok()) {
    spdlog::warn("cluster {}: cannot list its started nodes: {}", c.id,
                 started.status().ToString());
    return;
  }
  std::vector<std::string> strays;
  for (const std::string& n : *started) {
    if (std::find(c.nodes.begin(), c.nodes.end(), n) == c.nodes.end()) strays.push_back(n);
  }
  if (strays.empty()) return;
  // Not drained: a stray may serve blocks, but a cache loses only hits by dropping them,
  // and a drain would hold this loop (and every other cluster's resync) for minutes.
  spdlog::warn("cluster {}: stopping {}, which run but are not its nodes", c.id,
               absl::StrJoin(strays, ","));
  if (absl::Status s = StopAndForget(c, strays); !s.ok()) {
    spdlog::warn("cluster {}: stop {}: {}", c.id, absl::StrJoin(strays, ","), s.ToString());
  }
}

}  // namespace ems::controller
