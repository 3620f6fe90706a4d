// The control plane's records: clusters, jobs and their tasks, as stored and as served.
//
// Cluster status machine (ClusterMetadata.status):
//   CREATING --create/enroll job done--> RUNNING --expand job starts--> EXPANDING --done--> RUNNING
//   RUNNING --shrink job starts--> SHRINKING --done/cancelled--> RUNNING
//   any but DELETING/DELETED --DeleteClusterById--> DELETING --delete job done--> DELETED
// A failed create leaves the cluster CREATING with `reason` saying why; it can be deleted.
// Job status: INIT (queued) -> RUNNING -> COMPLETED | FAILED | STOPPED (cancelled).
#ifndef EMS_CONTROLLER_MODEL_H_
#define EMS_CONTROLLER_MODEL_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "controller/api/json_util.h"

namespace ems::controller {

inline constexpr char kCreating[] = "CREATING";
inline constexpr char kRunning[] = "RUNNING";
inline constexpr char kExpanding[] = "EXPANDING";
inline constexpr char kShrinking[] = "SHRINKING";
inline constexpr char kDeleting[] = "DELETING";
inline constexpr char kDeleted[] = "DELETED";

inline constexpr char kJobInit[] = "INIT";
inline constexpr char kJobRunning[] = "RUNNING";
inline constexpr char kJobStopped[] = "STOPPED";
inline constexpr char kJobFailed[] = "FAILED";
inline constexpr char kJobCompleted[] = "COMPLETED";

struct K8sLabel {
  std::string key = "ems";
  std::string value = "true";
};

struct K8sClusterSpec {
  std::string k8s_cluster_id;
  std::string ns;  // "namespace"
  K8sLabel label;
  int node_count = 0;
  std::string flavor;
  std::string version;
  bool lts_enable = true;
  int lts_connect_type = 0;
  bool monitor_enable = true;
  int node_type = 0;
};

struct MemorySpec {
  int64_t huge_page_num = 131072;  // 256 GB of 2 MB pages
  int64_t huge_page_flavor = 2;    // MB per page
};

// CreateCluster's body after validation and defaults.
struct ClusterSpec {
  std::string name;
  std::string description;
  int charge_mode = 0;
  K8sClusterSpec k8s;
  MemorySpec memory;
};

struct Cluster {
  std::string id;
  std::string project_id;
  std::string status = kCreating;
  std::string reason;
  std::string k8s_name;
  absl::Time created_at;
  absl::Time updated_at;
  int available_node_count = 0;
  ClusterSpec spec;
  // Names of the nodes that belong to the cluster once its jobs so far are done.
  std::vector<std::string> nodes;
  bool authorized = false;
  int64_t seq = 0;  // creation order
  Json enroll;      // EnrollCluster's extra fields; null for created clusters
};

enum class JobKind { kCreate, kEnroll, kDelete, kExpand, kShrink };

struct Task {
  std::string id;
  std::string status = kJobInit;
  std::string message;
  absl::Time created_at = absl::InfinitePast();  // InfinitePast = not yet
  absl::Time begin_at = absl::InfinitePast();
  absl::Time end_at = absl::InfinitePast();
};

struct Job {
  std::string id;
  std::string cluster_id;
  std::string project_id;
  JobKind kind = JobKind::kCreate;
  std::string status = kJobInit;
  double progress = 0;
  std::string message;  // an error code (ems.000x) once FAILED
  absl::Time created_at = absl::InfinitePast();
  absl::Time begin_at = absl::InfinitePast();
  absl::Time end_at = absl::InfinitePast();
  std::vector<Task> tasks;
  std::vector<std::string> node_names;  // expand/shrink: the nodes named in the request
  bool cancel_requested = false;
  int step = 0;     // index of the task the runner resumes at after a restart
  int64_t seq = 0;  // creation order
};

// "CreateCluster", "EnrollCluster", "DeleteCluster", "ExpandCluster", "ShrinkCluster".
const char* JobKindName(JobKind kind);
bool IsTerminal(const std::string& job_status);
// The steps of a job of `kind`, one task each, in order: the reconciler runs task i as step i.
// Each entry is the task's initial message.
std::vector<std::string> TaskPlan(JobKind kind);
bool IsLongJob(const Job& job);

// Persistent form (every field).
Json ClusterToRecord(const Cluster& c);
absl::StatusOr<Cluster> ClusterFromRecord(const std::string& blob);
Json JobToRecord(const Job& j);
absl::StatusOr<Job> JobFromRecord(const std::string& blob);

// API form: Cluster {cluster_metadata, cluster_specification}; JobDetail.
Json ClusterToApi(const Cluster& c);
Json ClusterSpecToApi(const ClusterSpec& s);
Json JobToApi(const Job& j);

}  // namespace ems::controller

#endif  // EMS_CONTROLLER_MODEL_H_
