// The built-in ConfigMap and DaemonSet the kubernetes backend applies for an EMS cluster made
// through the REST API. They follow deploy/k8s/base/ems-node.yaml (hostNetwork, the /run/ems
// socket directory, hugepages equal to the arena, /healthz probes, the drain preStop hook,
// one-at-a-time rolling updates) and differ only where the cluster does: names, the
// ems.io/cluster label and nodeSelector, the arena and what is sized from it, and the Secret
// holding the project's cdKey. Pure functions.
#ifndef EMS_CONTROLLER_BACKEND_KUBE_MANIFESTS_H_
#define EMS_CONTROLLER_BACKEND_KUBE_MANIFESTS_H_

#include <cstdint>
#include <string>

#include "controller/api/json_util.h"
#include "controller/model.h"

namespace ems::controller {

inline constexpr char kClusterLabel[] = "ems.io/cluster";

// ems-node reads the project's cdKey from a file of a mounted Secret (--cd_key_file), not
// from its args: args are visible in the host's process list, a Secret's tmpfs file is not.
inline constexpr char kCdKeySecretKey[] = "cd_key";  // the Secret's data key = the file name
inline constexpr char kCdKeyVolume[] = "cd-key";
inline constexpr char kCdKeyDir[] = "/etc/ems/credential";
inline constexpr char kCdKeyFile[] = "/etc/ems/credential/cd_key";

struct NodeManifestOptions {
  std::string image;               // pinned ems image (tag or digest)
  std::string controller_address;  // membership address the nodes register with
  int node_port = 50051;           // gRPC, on the host's network
  int metrics_port = 50052;        // /metrics, /healthz, /drain
  int bulk_port = 50053;           // bulk data channel
};

// What the pod sizes from the arena (huge_page_num x huge_page_flavor MB).
struct NodeSizing {
  std::string hugepages_resource;  // "hugepages-2Mi" or "hugepages-1Gi"
  std::string hugepages;           // equal to the arena: "262144Mi", "4Gi"
  std::string memory;              // memory beyond the arena: 1/16 of it, at least 1 GiB
  std::string cpu;                 // 1 core per 32 GiB of arena, 1 to 8
  int drain_timeout_s = 0;         // 240 s + 2.5 s per GiB (~400 MB/s while draining)
  int grace_period_s = 0;          // drain + shutdown grace + margin
};
NodeSizing SizeNode(const MemorySpec& memory);

// Pod labels of cluster `c`'s ems-node pods (the DaemonSet's selector).
Json NodePodLabels(const Cluster& c);

// The flags ConfigMap's data: one key per ems-node flag (the DaemonSet passes each as
// --key=$(key) through envFrom), like deploy/k8s/base's ems-node-flags.
Json NodeFlags(const Cluster& c, const NodeManifestOptions& o);

// The Secret `name` in namespace `ns` holding `cd_key` (base64, as Secret data is) under
// kCdKeySecretKey. "" (no credential) is stored as an empty value: the key always exists, so
// the file always exists and the pod starts; an empty file means no credential required.
Json CdKeySecret(const Cluster& c, const std::string& name, const std::string& ns,
                 const std::string& cd_key);

// Makes `pod_spec`'s ems-node container (the one named ems-node, else the first) read its
// cdKey from Secret `secret_name`: a read-only volume kCdKeyVolume (mode 0440, readable
// through the pod's fsGroup, which is set to its runAsGroup or the image's ems group when
// unset), its mount at kCdKeyDir, and --cd_key_file=kCdKeyFile appended to the args. A
// container whose args already pass --cd_key or --cd_key_file manages its credential itself
// and is left alone. Returns false (changing nothing) if the pod spec has no containers.
bool MountCdKeySecret(const std::string& secret_name, Json& pod_spec);

// The built-in DaemonSet; `flags` is the ConfigMap data the args refer to, `cd_key_secret`
// the Secret of CdKeySecret.
Json BuiltInDaemonSet(const Cluster& c, const NodeManifestOptions& o, const Json& flags,
                      const std::string& configmap_name, const std::string& cd_key_secret);

}  // namespace ems::controller

#endif  // EMS_CONTROLLER_BACKEND_KUBE_MANIFESTS_H_
