// The `kubernetes` backend: ems-node runs as a DaemonSet per EMS cluster, scheduled on the K8s
// nodes that carry the label ems.io/cluster=<cluster id>. Creating a cluster picks
// node_count Ready nodes carrying the spec's label (ems=true by default) and labels them;
// expand labels the named nodes, shrink unlabels them; readiness is the DaemonSet pod's Ready
// condition on each node. Node label updates are read, then
// patched with the read's resourceVersion (merge patch: the ClusterRole in deploy/k8s grants
// nodes patch, not update) and retried on conflict. The ConfigMap and DaemonSet follow
// deploy/k8s/base (kube_manifests.h), generated per cluster; JSON templates in manifests_dir
// override them. The project's cdKey reaches the pods as a per-cluster Secret
// (ems-node-<id>-cdkey) mounted read-only and read with --cd_key_file; it is applied by
// Prepare and again by every StartNodes, so nodes started (or restarted) after the project's
// credential was created require it. A daemonset.json template gets the same volume, mount
// and flag unless its ems-node container passes --cd_key or --cd_key_file itself
// (MountCdKeySecret).
// Tested against FakeKubeApiServer (no API server runs here). Thread-safe.
#ifndef EMS_CONTROLLER_BACKEND_KUBE_BACKEND_H_
#define EMS_CONTROLLER_BACKEND_KUBE_BACKEND_H_

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "controller/backend/backend.h"
#include "controller/backend/kube_client.h"
#include "controller/backend/kube_manifests.h"

namespace ems::controller {

struct KubeBackendOptions {
  std::string api_server;  // "" = in-cluster: https://$KUBERNETES_SERVICE_HOST:$..._PORT
  std::string token_file;
  std::string ca_file;
  std::string manifests_dir;        // optional daemonset.json / configmap.json templates
  std::string controller_address;   // membership address nodes register with
  std::string image = "ems:0.1.0";  // pinned, like deploy/k8s
  int node_port = 50051;            // ems-node's gRPC port (host network)
  int metrics_port = 50052;         // ems-node's /healthz, /metrics and /drain
  std::string k8s_cluster_id;       // "" = answer ListClustersLabels for any id
  int conflict_retries = 5;
  // The cdKey a project's nodes require from clients, "" for none (as LocalBackendOptions).
  // Unset = every cluster's Secret holds "".
  std::function<std::string(const std::string& project_id)> cd_key_of;
};

class KubeBackend : public Backend {
 public:
  explicit KubeBackend(KubeBackendOptions options);
  // Fills api_server from the in-cluster environment when empty. FAILED_PRECONDITION outside
  // a pod with no --k8s_api_server.
  static absl::StatusOr<std::unique_ptr<KubeBackend>> FromInCluster(KubeBackendOptions options);

  const char* name() const override { return "kubernetes"; }
  absl::StatusOr<std::vector<std::string>> PlanNodes(const Cluster& c) override;
  absl::StatusOr<std::vector<std::string>> DiscoverNodes(const Cluster& c) override;
  // The nodes labelled kClusterLabel=<c.id>, which the DaemonSet runs on.
  absl::StatusOr<std::vector<std::string>> StartedNodes(const Cluster& c) override;
  absl::Status Prepare(const Cluster& c) override;
  absl::Status StartNodes(const Cluster& c, const std::vector<std::string>& names) override;
  absl::Status StopNodes(const Cluster& c, const std::vector<std::string>& names) override;
  absl::StatusOr<std::vector<NodeStatus>> Status(const Cluster& c,
                                                 const std::vector<std::string>& names) override;
  absl::Status Release(const Cluster& c) override;
  // Replaces the cluster's cdKey Secret; the kubelet refreshes the mounted file and ems-node
  // re-reads it (--cd_key_file), so running pods take the new key without a restart. Only a
  // Secret that exists is replaced: a delete running meanwhile may just have removed it, and
  // creating it again would leave it behind the deleted cluster. A cluster still being
  // created writes the Secret itself, with the key current then (Prepare, StartNodes).
  absl::Status RefreshCredential(const Cluster& c) override;
  // The API allows a namespace of 64 characters and upper case; Kubernetes takes a DNS label
  // (RFC 1123: at most 63 lower-case letters, digits and '-', alphanumeric at both ends).
  absl::Status CheckSpec(const ClusterSpec& spec) override;
  absl::StatusOr<std::vector<NodeLabel>> ListLabels(const std::string& k8s_cluster_id) override;

  // The objects Prepare applies (exposed for tests and `emsctl`-free inspection).
  Json ConfigMapFor(const Cluster& c) const;
  Json DaemonSetFor(const Cluster& c) const;
  Json CdKeySecretFor(const Cluster& c) const;

 private:
  // Sets (claim) or removes the cluster label (kClusterLabel) of node `name` for cluster
  // `id`, retrying conflicts. Another cluster's label is never touched: claiming a node it
  // names is FAILED_PRECONDITION, and releasing such a node leaves it as it is. The read's
  // resourceVersion rides along, so two clusters claiming one node cannot both win.
  absl::Status UpdateClusterLabel(const std::string& name, const std::string& id, bool claim);
  // Creates or replaces the object at `path` (its collection is `collection`). With
  // `create` false an object that does not exist is left so, and that is OK.
  absl::Status Apply(const std::string& collection, const std::string& path, Json object,
                     bool create = true);
  // Creates (unless `create` is false) or replaces the cluster's cdKey Secret with the
  // project's current key.
  absl::Status ApplyCdKeySecret(const Cluster& c, bool create = true);
  absl::StatusOr<Json> ListNodes(const std::string& selector);
  // The names, sorted, of the nodes matching `selector` that `keep` accepts.
  absl::StatusOr<std::vector<std::string>> NodeNames(const std::string& selector,
                                                     const std::function<bool(const Json&)>& keep);
  NodeManifestOptions ManifestOptions() const;

  const KubeBackendOptions options_;
  KubeClient client_;
};

}  // namespace ems::controller

#endif  // EMS_CONTROLLER_BACKEND_KUBE_BACKEND_H_
