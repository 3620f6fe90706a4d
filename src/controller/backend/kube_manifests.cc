#include "controller/backend/kube_manifests.h"

#include <algorithm>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace ems::controller {
namespace {

constexpr int64_t kGiB = 1024;  // in MiB
constexpr int kShutdownGraceSeconds = 10;
constexpr uint32_t kEmsUid = 10001;  // the image's ems user and group (deploy/docker)
// r--r-----: the owner (root) and the pod's fsGroup read the cdKey; nobody writes it.
constexpr int kCdKeyFileMode = 0440;

Json EnvFromField(const char* name, const char* path) {
  return {{"name", name}, {"valueFrom", {{"fieldRef", {{"fieldPath", path}}}}}};
}

Json HealthzProbe(int period_s, int failures) {
  return {{"httpGet", {{"path", "/healthz"}, {"port", "metrics"}}},
          {"periodSeconds", period_s},
          {"failureThreshold", failures}};
}

Json Resources(const std::string& cpu, const std::string& memory, const std::string& extra_name,
               const std::string& extra) {
  Json r = {{"cpu", cpu}, {"memory", memory}};
  if (!extra_name.empty()) r[extra_name] = extra;
  return {{"requests", r}, {"limits", r}};
}

}  // namespace

NodeSizing SizeNode(const MemorySpec& memory) {
  const int64_t arena_mib = memory.huge_page_num * memory.huge_page_flavor;
  NodeSizing s;
  if (memory.huge_page_flavor == 1024) {
    s.hugepages_resource = "hugepages-1Gi";
    s.hugepages = absl::StrCat(memory.huge_page_num, "Gi");
  } else {
    s.hugepages_resource = "hugepages-2Mi";
    s.hugepages = absl::StrCat(arena_mib, "Mi");
  }
  // The index, leases and gRPC buffers grow with the number of blocks the arena holds; the
  // hugetlb cgroup accounts the arena itself apart from memory.
  s.memory = absl::StrCat(std::max(kGiB, arena_mib / 16), "Mi");
  s.cpu = std::to_string(std::clamp<int64_t>(arena_mib / (32 * kGiB), 1, 8));
  s.drain_timeout_s = static_cast<int>(240 + (arena_mib * 5 / 2 + kGiB - 1) / kGiB);
  s.grace_period_s = s.drain_timeout_s + kShutdownGraceSeconds + 20;
  return s;
}

Json NodePodLabels(const Cluster& c) {
  return {{"app.kubernetes.io/name", "ems-node"},
          {"app.kubernetes.io/part-of", "ems"},
          {kClusterLabel, c.id}};
}

Json NodeFlags(const Cluster& c, const NodeManifestOptions& o) {
  return {{"controller", o.controller_address},
          {"cluster", c.id},
          {"huge_page_num", std::to_string(c.spec.memory.huge_page_num)},
          {"huge_page_flavor", std::to_string(c.spec.memory.huge_page_flavor)},
          // In a pod the THP fallback would be charged to the memory limit: fail instead.
          {"require_hugepages", "true"},
          {"shutdown_grace_seconds", std::to_string(kShutdownGraceSeconds)}};
}

Json CdKeySecret(const Cluster& c, const std::string& name, const std::string& ns,
                 const std::string& cd_key) {
  return {{"apiVersion", "v1"},
          {"kind", "Secret"},
          {"type", "Opaque"},
          {"metadata", {{"name", name}, {"namespace", ns}, {"labels", NodePodLabels(c)}}},
          {"data", {{kCdKeySecretKey, absl::Base64Escape(cd_key)}}}};
}

bool MountCdKeySecret(const std::string& secret_name, Json& pod_spec) {
  if (!pod_spec.is_object() || !pod_spec.contains("containers") ||
      !pod_spec["containers"].is_array() || pod_spec["containers"].empty()) {
    return false;
  }
  Json* node = &pod_spec["containers"][0];
  for (Json& container : pod_spec["containers"]) {
    if (container.is_object() && StrOr(container, "name") == "ems-node") node = &container;
  }
  if (!node->is_object()) return false;
  if (!node->contains("args") || !(*node)["args"].is_array()) (*node)["args"] = Json::array();
  for (const Json& arg : (*node)["args"]) {
    if (!arg.is_string()) continue;
    const std::string a = arg.get<std::string>();
    for (const char* flag : {"--cd_key", "--cd_key_file"}) {
      if (a == flag || absl::StartsWith(a, absl::StrCat(flag, "="))) return true;  // its own
    }
  }
  // Replace whatever a template calls kCdKeyVolume: two volumes or mounts of one name are
  // invalid.
  auto set_named = [](Json& list, const Json& item) {
    if (!list.is_array()) list = Json::array();
    for (Json& existing : list) {
      if (existing.is_object() && StrOr(existing, "name") == kCdKeyVolume) {
        existing = item;
        return;
      }
    }
    list.push_back(item);
  };
  set_named(pod_spec["volumes"],
            {{"name", kCdKeyVolume},
             {"secret", {{"secretName", secret_name}, {"defaultMode", kCdKeyFileMode}}}});
  set_named((*node)["volumeMounts"],
            {{"name", kCdKeyVolume}, {"mountPath", kCdKeyDir}, {"readOnly", true}});
  (*node)["args"].push_back(absl::StrCat("--cd_key_file=", kCdKeyFile));
  // Secret files belong to root; fsGroup makes them the pod's group's, so a non-root ems-node
  // reads them (mode 0440) and no other user does.
  Json& security = pod_spec["securityContext"];
  if (!security.is_object()) security = Json::object();
  if (!security.contains("fsGroup")) {
    security["fsGroup"] = security.contains("runAsGroup") ? security["runAsGroup"] : Json(kEmsUid);
  }
  return true;
}

Json BuiltInDaemonSet(const Cluster& c, const NodeManifestOptions& o, const Json& flags,
                      const std::string& configmap_name, const std::string& cd_key_secret) {
  const NodeSizing size = SizeNode(c.spec.memory);
  const std::string port = std::to_string(o.node_port);
  Json args = {"--listen=0.0.0.0:" + port,
               absl::StrCat("--metrics_port=", o.metrics_port),
               absl::StrCat("--bulk_port=", o.bulk_port),
               "--local_socket=/run/ems/ems.sock",
               "--node_id=$(NODE_NAME)",
               "--advertise=$(POD_IP):" + port};
  // Every key of the ConfigMap reaches the binary (envFrom makes it an env var of that name).
  for (const auto& [key, value] : flags.items()) {
    args.push_back(absl::StrCat("--", key, "=$(", key, ")"));
  }
  Json node = {
      {"name", "ems-node"},
      {"image", o.image},
      // umask 0007: the socket is connectable by the ems group (inference pods).
      {"command",
       {"/bin/sh", "-c", "umask 0007 && exec /usr/local/bin/ems-node \"$@\"", "ems-node"}},
      {"args", args},
      {"envFrom", {{{"configMapRef", {{"name", configmap_name}}}}}},
      {"env",
       {EnvFromField("NODE_NAME", "spec.nodeName"),
        EnvFromField("POD_IP", "status.podIP"),
        {{"name", "EMS_METRICS_PORT"}, {"value", std::to_string(o.metrics_port)}},
        {{"name", "EMS_DRAIN_TIMEOUT_SECONDS"}, {"value", std::to_string(size.drain_timeout_s)}}}},
      {"ports",
       {{{"name", "grpc"}, {"containerPort", o.node_port}, {"hostPort", o.node_port}},
        {{"name", "metrics"}, {"containerPort", o.metrics_port}, {"hostPort", o.metrics_port}},
        {{"name", "bulk"}, {"containerPort", o.bulk_port}, {"hostPort", o.bulk_port}}}},
      {"startupProbe", HealthzProbe(5, 120)},  // prefaulting a large arena takes a while
      {"readinessProbe", HealthzProbe(5, 2)},
      {"livenessProbe", HealthzProbe(10, 6)},
      {"lifecycle", {{"preStop", {{"exec", {{"command", {"/usr/local/bin/ems-node-drain"}}}}}}}},
      {"resources", Resources(size.cpu, size.memory, size.hugepages_resource, size.hugepages)},
      {"securityContext",
       {{"allowPrivilegeEscalation", false},
        {"readOnlyRootFilesystem", true},
        {"capabilities", {{"drop", {"ALL"}}}}}},
      {"volumeMounts", {{{"name", "run-ems"}, {"mountPath", "/run/ems"}}}}};
  Json socket_dir = {
      {"name", "socket-dir"},
      {"image", o.image},
      {"command", {"/bin/sh", "-c", "chown 10001:10001 /run/ems && chmod 0770 /run/ems"}},
      {"securityContext",
       {{"runAsNonRoot", false},
        {"runAsUser", 0},
        {"allowPrivilegeEscalation", false},
        {"readOnlyRootFilesystem", true},
        {"capabilities", {{"drop", {"ALL"}}, {"add", {"CHOWN", "FOWNER"}}}}}},
      {"resources", Resources("10m", "16Mi", "", "")},
      {"volumeMounts", {{{"name", "run-ems"}, {"mountPath", "/run/ems"}}}}};
  socket_dir["resources"]["limits"] = {{"cpu", "100m"}, {"memory", "32Mi"}};
  const Json labels = NodePodLabels(c);
  Json pod_spec = {
      {"serviceAccountName", "ems-node"},
      {"automountServiceAccountToken", false},
      {"hostNetwork", true},
      {"dnsPolicy", "ClusterFirstWithHostNet"},
      {"nodeSelector", {{kClusterLabel, c.id}}},
      {"tolerations",
       {{{"key", "ems.io/dedicated"}, {"operator", "Exists"}, {"effect", "NoSchedule"}}}},
      {"terminationGracePeriodSeconds", size.grace_period_s},
      {"securityContext",
       {{"runAsNonRoot", true},
        {"runAsUser", kEmsUid},
        {"runAsGroup", kEmsUid},
        {"fsGroup", kEmsUid},  // group-owns the cdKey Secret's file
        {"seccompProfile", {{"type", "RuntimeDefault"}}}}},
      {"initContainers", {socket_dir}},
      {"containers", {node}},
      {"volumes",
       {{{"name", "run-ems"},
         {"hostPath", {{"path", "/run/ems"}, {"type", "DirectoryOrCreate"}}}}}}};
  MountCdKeySecret(cd_key_secret, pod_spec);
  return {
      {"apiVersion", "apps/v1"},
      {"kind", "DaemonSet"},
      {"spec",
       {{"selector", {{"matchLabels", labels}}},
        {"updateStrategy",
         {{"type", "RollingUpdate"}, {"rollingUpdate", {{"maxUnavailable", 1}, {"maxSurge", 0}}}}},
        {"template", {{"metadata", {{"labels", labels}}}, {"spec", pod_spec}}}}}};
}

}  // namespace ems::controller
