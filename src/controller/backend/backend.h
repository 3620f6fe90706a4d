// Where a cluster's ems-node processes run. The reconciler drives a Backend; `local` runs
// processes on this machine, `kubernetes` talks to the API server. Implementations are
// thread-safe, and every call is idempotent so a resumed job can repeat its last step.
#ifndef EMS_CONTROLLER_BACKEND_BACKEND_H_
#define EMS_CONTROLLER_BACKEND_BACKEND_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "controller/model.h"

namespace ems::controller {

struct NodeStatus {
  std::string name;
  bool ready = false;
  std::string address;  // data-plane host:port once known
  std::string detail;   // why it is not ready
};

struct NodeLabel {
  std::string key;
  std::string value;
};

class Backend {
 public:
  virtual ~Backend() = default;
  virtual const char* name() const = 0;

  // The nodes a new cluster of c.spec.k8s.node_count starts on.
  virtual absl::StatusOr<std::vector<std::string>> PlanNodes(const Cluster& c) = 0;
  // The nodes an enrolled (manually provisioned) cluster already runs on.
  virtual absl::StatusOr<std::vector<std::string>> DiscoverNodes(const Cluster& c) = 0;
  // Creates what the cluster needs besides nodes (Kubernetes: ConfigMap and DaemonSet).
  virtual absl::Status Prepare(const Cluster& c) = 0;
  // Makes an ems-node of cluster `c` run on each named node.
  virtual absl::Status StartNodes(const Cluster& c, const std::vector<std::string>& names) = 0;
  // Stops the ems-node of cluster `c` on each named node.
  virtual absl::Status StopNodes(const Cluster& c, const std::vector<std::string>& names) = 0;
  // The nodes an ems-node of cluster `c` was started on (StartNodes) and not stopped since,
  // ready or not, listed by the cluster or not: the reconciler stops the ones it does not
  // list (an expand that failed, or whose undo did).
  virtual absl::StatusOr<std::vector<std::string>> StartedNodes(const Cluster& c) = 0;
  // One entry per name, in order.
  virtual absl::StatusOr<std::vector<NodeStatus>> Status(const Cluster& c,
                                                         const std::vector<std::string>& names) = 0;
  // Removes what Prepare created.
  virtual absl::Status Release(const Cluster& c) = 0;
  // The distinct labels of the nodes of K8s cluster `k8s_cluster_id` (ListClustersLabels).
  virtual absl::StatusOr<std::vector<NodeLabel>> ListLabels(const std::string& k8s_cluster_id) = 0;
  // Something the operator should know about the cluster (shown as its `reason` while
  // RUNNING, e.g. the local backend's memory cap). "" if nothing.
  virtual std::string Note(const Cluster& c) { return ""; }
  // Hands cluster `c`'s running nodes its project's current cdKey (after CreateCredentialInfo);
  // the nodes take it without a restart.
  virtual absl::Status RefreshCredential(const Cluster& c) = 0;
  // Refuses, naming the field, a specification that passed the API's checks but that this
  // backend cannot run (INVALID_ARGUMENT), so a create or enroll fails at once instead of in
  // its job.
  virtual absl::Status CheckSpec(const ClusterSpec& spec) { return absl::OkStatus(); }
};

}  // namespace ems::controller

#endif  // EMS_CONTROLLER_BACKEND_BACKEND_H_
