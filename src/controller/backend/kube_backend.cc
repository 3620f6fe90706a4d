#include "controller/backend/kube_backend.h"

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <set>
#include <sstream>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "controller/ids.h"
#include "spdlog/spdlog.h"

namespace ems::controller {
namespace {

std::string ShortId(const Cluster& c) { return std::string(ShortClusterId(c.id)); }
std::string DaemonSetName(const Cluster& c) { return "ems-node-" + ShortId(c); }
std::string ConfigMapName(const Cluster& c) { return "ems-node-" + ShortId(c) + "-config"; }
std::string CdKeySecretName(const Cluster& c) { return "ems-node-" + ShortId(c) + "-cdkey"; }
std::string Namespace(const Cluster& c) {
  return c.spec.k8s.ns.empty() ? "ems-system" : c.spec.k8s.ns;
}

bool NodeReady(const Json& node) {
  const Json* conds = nullptr;
  if (node.contains("status") && node["status"].contains("conditions")) {
    conds = &node["status"]["conditions"];
  }
  if (conds == nullptr || !conds->is_array()) return false;
  for (const Json& c : *conds) {
    if (StrOr(c, "type") == "Ready") return StrOr(c, "status") == "True";
  }
  return false;
}

const Json* Labels(const Json& object) {
  if (!object.contains("metadata") || !object["metadata"].contains("labels")) return nullptr;
  const Json& l = object["metadata"]["labels"];
  return l.is_object() ? &l : nullptr;
}

std::string LabelOf(const Json& object, const std::string& key) {
  const Json* l = Labels(object);
  return l != nullptr ? StrOr(*l, key.c_str()) : "";
}

// Whether `node` carries no other EMS cluster's label than `c`'s.
bool NotAnothers(const Json& node, const Cluster& c) {
  const std::string owner = LabelOf(node, kClusterLabel);
  return owner.empty() || owner == c.id;
}

std::string NameOf(const Json& object) {
  return object.contains("metadata") ? StrOr(object["metadata"], "name") : "";
}

// A JSON template from manifests_dir, or null.
Json Template(const std::string& dir, const char* file) {
  if (dir.empty()) return nullptr;
  std::ifstream in(dir + "/" + file);
  if (!in) return nullptr;
  std::stringstream ss;
  ss << in.rdbuf();
  auto j = ParseJson(ss.str(), file);
  return j.ok() && j->is_object() ? *j : Json(nullptr);
}

}  // namespace

KubeBackend::KubeBackend(KubeBackendOptions options)
    : options_(std::move(options)),
      client_({options_.api_server, options_.token_file, options_.ca_file}) {}

absl::StatusOr<std::unique_ptr<KubeBackend>> KubeBackend::FromInCluster(
    KubeBackendOptions options) {
  if (options.api_server.empty()) {
    const char* host = std::getenv("KUBERNETES_SERVICE_HOST");
    const char* port = std::getenv("KUBERNETES_SERVICE_PORT");
    if (host == nullptr || port == nullptr) {
      return absl::FailedPreconditionError(
          "not running in a pod (KUBERNETES_SERVICE_HOST unset): pass --k8s_api_server");
    }
    options.api_server = absl::StrCat("https://", host, ":", port);
  }
  return std::make_unique<KubeBackend>(std::move(options));
}

absl::StatusOr<Json> KubeBackend::ListNodes(const std::string& selector) {
  std::string path = "/api/v1/nodes";
  if (!selector.empty()) path += "?labelSelector=" + KubeClient::Escape(selector);
  auto list = client_.Get(path);
  if (!list.ok()) return list.status();
  if (!list->contains("items") || !(*list)["items"].is_array()) return Json::array();
  return (*list)["items"];
}

absl::StatusOr<std::vector<std::string>> KubeBackend::NodeNames(
    const std::string& selector, const std::function<bool(const Json&)>& keep) {
  auto nodes = ListNodes(selector);
  if (!nodes.ok()) return nodes.status();
  std::vector<std::string> names;
  for (const Json& n : *nodes) {
    if (keep(n)) names.push_back(NameOf(n));
  }
  std::sort(names.begin(), names.end());
  return names;
}

absl::StatusOr<std::vector<std::string>> KubeBackend::PlanNodes(const Cluster& c) {
  const std::string selector = c.spec.k8s.label.key + "=" + c.spec.k8s.label.value;
  auto eligible =
      NodeNames(selector, [&](const Json& n) { return NodeReady(n) && NotAnothers(n, c); });
  if (!eligible.ok()) return eligible.status();
  const size_t want = static_cast<size_t>(c.spec.k8s.node_count);
  if (eligible->size() < want) {
    return absl::FailedPreconditionError(
        absl::StrCat("only ", eligible->size(), " Ready nodes carry label ", selector,
                     " and belong to no other EMS cluster; ", want, " needed"));
  }
  eligible->resize(want);
  return eligible;
}

absl::StatusOr<std::vector<std::string>> KubeBackend::DiscoverNodes(const Cluster& c) {
  // A node another EMS cluster runs on is that cluster's: enrolling it would make this
  // cluster wait on pods it does not have, and deleting this one would unlabel it.
  return NodeNames(c.spec.k8s.label.key + "=" + c.spec.k8s.label.value,
                   [&](const Json& n) { return NotAnothers(n, c); });
}

absl::StatusOr<std::vector<std::string>> KubeBackend::StartedNodes(const Cluster& c) {
  return NodeNames(absl::StrCat(kClusterLabel, "=", c.id), [](const Json&) { return true; });
}

NodeManifestOptions KubeBackend::ManifestOptions() const {
  return {.image = options_.image,
          .controller_address = options_.controller_address,
          .node_port = options_.node_port,
          .metrics_port = options_.metrics_port};
}

Json KubeBackend::ConfigMapFor(const Cluster& c) const {
  Json cm = Template(options_.manifests_dir, "configmap.json");
  if (cm.is_null()) cm = {{"apiVersion", "v1"}, {"kind", "ConfigMap"}};
  if (!cm.contains("data") || !cm["data"].is_object()) cm["data"] = Json::object();
  cm["metadata"] = {
      {"name", ConfigMapName(c)}, {"namespace", Namespace(c)}, {"labels", NodePodLabels(c)}};
  // The cluster's own flags win over a template's.
  const Json flags = NodeFlags(c, ManifestOptions());
  for (const auto& [key, value] : flags.items()) cm["data"][key] = value;
  return cm;
}

Json KubeBackend::DaemonSetFor(const Cluster& c) const {
  Json ds = Template(options_.manifests_dir, "daemonset.json");
  // A template must have the DaemonSet's shape down to its containers, or it is ignored.
  auto shaped = [](const Json& d) {
    const Json* p = &d;
    for (const char* k : {"spec", "template", "spec"}) {
      if (!p->is_object() || !p->contains(k)) return false;
      p = &(*p)[k];
    }
    if (!p->is_object() || !p->contains("containers") || !(*p)["containers"].is_array()) {
      return false;
    }
    for (const Json& container : (*p)["containers"]) {
      if (!container.is_object()) return false;
    }
    return true;
  };
  if (!ds.is_null() && !shaped(ds)) {
    spdlog::warn(
        "kubernetes: {}/daemonset.json lacks spec.template.spec.containers; using "
        "the built-in DaemonSet",
        options_.manifests_dir);
    ds = nullptr;
  }
  const Json labels = NodePodLabels(c);
  if (ds.is_null()) {
    ds = BuiltInDaemonSet(c, ManifestOptions(), ConfigMapFor(c)["data"], ConfigMapName(c),
                          CdKeySecretName(c));
  } else {
    MountCdKeySecret(CdKeySecretName(c), ds["spec"]["template"]["spec"]);
  }
  ds["metadata"] = {{"name", DaemonSetName(c)}, {"namespace", Namespace(c)}, {"labels", labels}};
  ds["spec"]["selector"] = {{"matchLabels", labels}};
  if (!ds["spec"]["template"].contains("metadata") ||
      !ds["spec"]["template"]["metadata"].is_object()) {
    ds["spec"]["template"]["metadata"] = Json::object();
  }
  ds["spec"]["template"]["metadata"]["labels"] = labels;
  ds["spec"]["template"]["spec"]["nodeSelector"] = {{kClusterLabel, c.id}};
  // The ConfigMap's keys become the environment the args refer to.
  for (Json& container : ds["spec"]["template"]["spec"]["containers"]) {
    container["envFrom"] = Json::array({{{"configMapRef", {{"name", ConfigMapName(c)}}}}});
  }
  return ds;
}

Json KubeBackend::CdKeySecretFor(const Cluster& c) const {
  const std::string key = options_.cd_key_of ? options_.cd_key_of(c.project_id) : "";
  return CdKeySecret(c, CdKeySecretName(c), Namespace(c), key);
}

absl::Status KubeBackend::ApplyCdKeySecret(const Cluster& c, bool create) {
  const std::string ns = "/api/v1/namespaces/" + Namespace(c);
  return Apply(ns + "/secrets", ns + "/secrets/" + CdKeySecretName(c), CdKeySecretFor(c), create);
}

absl::Status KubeBackend::CheckSpec(const ClusterSpec& spec) {
  const std::string& ns = spec.k8s.ns;
  auto lower_alnum = [](char ch) { return absl::ascii_isdigit(ch) || absl::ascii_islower(ch); };
  const bool dns_label =
      ns.empty() ||  // ems-system
      (ns.size() <= 63 && lower_alnum(ns.front()) && lower_alnum(ns.back()) &&
       std::all_of(ns.begin(), ns.end(), [&](char ch) { return lower_alnum(ch) || ch == '-'; }));
  if (dns_label) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat(
      "k8s_cluster_specification.namespace '", ns,
      "' is not a Kubernetes namespace name: at most 63 lower-case letters, digits or '-', "
      "starting and ending with a letter or digit"));
}

absl::Status KubeBackend::RefreshCredential(const Cluster& c) {
  return ApplyCdKeySecret(c, /*create=*/false);
}

absl::Status KubeBackend::Apply(const std::string& collection, const std::string& path, Json object,
                                bool create) {
  for (int attempt = 0; attempt <= options_.conflict_retries; ++attempt) {
    auto current = client_.Get(path);
    if (absl::IsNotFound(current.status()) && !create) return absl::OkStatus();
    if (absl::IsNotFound(current.status())) {
      auto created = client_.Create(collection, object);
      if (created.ok()) return absl::OkStatus();
      if (!absl::IsAlreadyExists(created.status())) return created.status();
      continue;  // someone created it meanwhile: replace it
    }
    if (!current.ok()) return current.status();
    object["metadata"]["resourceVersion"] = StrOr((*current)["metadata"], "resourceVersion");
    auto replaced = client_.Replace(path, object);
    if (replaced.ok()) return absl::OkStatus();
    // Deleted between the read and the replace (a PUT does not create these objects): leave
    // it deleted, or create it on the next attempt.
    if (absl::IsNotFound(replaced.status())) {
      if (!create) return absl::OkStatus();
      continue;
    }
    if (!absl::IsAborted(replaced.status())) return replaced.status();
  }
  return absl::AbortedError(
      absl::StrCat(path, ": still conflicting after ", options_.conflict_retries, " retries"));
}

absl::Status KubeBackend::Prepare(const Cluster& c) {
  const std::string ns = "/api/v1/namespaces/" + Namespace(c);
  const std::string apps = "/apis/apps/v1/namespaces/" + Namespace(c);
  // The Secret first: the DaemonSet's pods mount it and would not start without it.
  if (absl::Status s = ApplyCdKeySecret(c); !s.ok()) return s;
  if (absl::Status s =
          Apply(ns + "/configmaps", ns + "/configmaps/" + ConfigMapName(c), ConfigMapFor(c));
      !s.ok()) {
    return s;
  }
  return Apply(apps + "/daemonsets", apps + "/daemonsets/" + DaemonSetName(c), DaemonSetFor(c));
}

absl::Status KubeBackend::UpdateClusterLabel(const std::string& name, const std::string& id,
                                             bool claim) {
  const std::string path = "/api/v1/nodes/" + name;
  for (int attempt = 0; attempt <= options_.conflict_retries; ++attempt) {
    auto node = client_.Get(path);
    if (!node.ok()) return node.status();
    const std::string owner = LabelOf(*node, kClusterLabel);
    if (claim ? owner == id : owner != id) return absl::OkStatus();  // nothing to change
    if (claim && !owner.empty()) {
      return absl::FailedPreconditionError(absl::StrCat(
          "node ", name, " belongs to another EMS cluster (", kClusterLabel, "=", owner, ")"));
    }
    // A JSON merge patch of just this label (null removes it). The read's resourceVersion
    // rides along: a concurrent writer makes this a 409.
    Json patch = {{"metadata",
                   {{"resourceVersion", StrOr((*node)["metadata"], "resourceVersion")},
                    {"labels", {{kClusterLabel, claim ? Json(id) : Json(nullptr)}}}}}};
    auto patched = client_.MergePatch(path, patch);
    if (patched.ok()) return absl::OkStatus();
    if (!absl::IsAborted(patched.status())) return patched.status();
    spdlog::info("kubernetes: node {} changed under us (attempt {}); re-reading", name,
                 attempt + 1);
  }
  return absl::AbortedError(absl::StrCat("node ", name, ": label update still conflicting after ",
                                         options_.conflict_retries, " retries"));
}

absl::Status KubeBackend::StartNodes(const Cluster& c, const std::vector<std::string>& names) {
  // A credential created since Prepare reaches the pods this starts (kubelet refreshes the
  // file of a mounted Secret; ems-node re-reads it).
  if (absl::Status s = ApplyCdKeySecret(c); !s.ok()) return s;
  // Every node is tried: one that fails (deleted from Kubernetes, claimed by another cluster)
  // must not keep the rest from running. The first failure is the answer.
  absl::Status first;
  for (const std::string& n : names) {
    if (absl::Status s = UpdateClusterLabel(n, c.id, /*claim=*/true); !s.ok() && first.ok()) {
      first = s;
    }
  }
  return first;
}

absl::Status KubeBackend::StopNodes(const Cluster& c, const std::vector<std::string>& names) {
  absl::Status first;
  for (const std::string& n : names) {
    absl::Status s = UpdateClusterLabel(n, c.id, /*claim=*/false);
    if (!s.ok() && !absl::IsNotFound(s) && first.ok()) first = s;  // a gone node runs nothing
  }
  return first;
}

absl::StatusOr<std::vector<NodeStatus>> KubeBackend::Status(const Cluster& c,
                                                            const std::vector<std::string>& names) {
  auto pods = client_.Get("/api/v1/namespaces/" + Namespace(c) + "/pods?labelSelector=" +
                          KubeClient::Escape(absl::StrCat("app.kubernetes.io/name=ems-node,",
                                                          kClusterLabel, "=", c.id)));
  if (!pods.ok()) return pods.status();
  std::vector<NodeStatus> out;
  for (const std::string& name : names) {
    NodeStatus st{name};
    st.detail = "no ems-node pod on the node yet";
    if (pods->contains("items")) {
      for (const Json& pod : (*pods)["items"]) {
        if (!pod.contains("spec") || StrOr(pod["spec"], "nodeName") != name) continue;
        const std::string owner = LabelOf(pod, kClusterLabel);
        if (!owner.empty() && owner != c.id) continue;  // another EMS cluster's pod
        st.ready = NodeReady(pod);                      // pods carry the same Ready condition shape
        const std::string ip = pod.contains("status") ? StrOr(pod["status"], "podIP") : "";
        if (!ip.empty()) st.address = absl::StrCat(ip, ":", options_.node_port);
        st.detail = st.ready ? "" : "pod not Ready";
        break;
      }
    }
    out.push_back(std::move(st));
  }
  return out;
}

absl::Status KubeBackend::Release(const Cluster& c) {
  for (const std::string& path :
       {"/apis/apps/v1/namespaces/" + Namespace(c) + "/daemonsets/" + DaemonSetName(c),
        "/api/v1/namespaces/" + Namespace(c) + "/configmaps/" + ConfigMapName(c),
        "/api/v1/namespaces/" + Namespace(c) + "/secrets/" + CdKeySecretName(c)}) {
    absl::Status s = client_.Delete(path);
    if (!s.ok() && !absl::IsNotFound(s)) return s;
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<NodeLabel>> KubeBackend::ListLabels(const std::string& k8s_id) {
  if (!options_.k8s_cluster_id.empty() && k8s_id != options_.k8s_cluster_id) {
    return std::vector<NodeLabel>();
  }
  auto nodes = ListNodes("");
  if (!nodes.ok()) return nodes.status();
  std::set<std::pair<std::string, std::string>> labels;
  for (const Json& n : *nodes) {
    const Json* l = Labels(n);
    if (l == nullptr) continue;
    for (const auto& [k, v] : l->items()) {
      if (v.is_string()) labels.emplace(k, v.get<std::string>());
    }
  }
  std::vector<NodeLabel> out;
  for (const auto& [k, v] : labels) out.push_back({k, v});
  return out;
}

}  // namespace ems::controller
