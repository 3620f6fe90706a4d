// The kubernetes backend against FakeKubeApiServer: node selection and labelling, conflicts,
// DaemonSet/ConfigMap/cdKey Secret apply, pod readiness, and a whole create/expand/shrink/delete
// lifecycle through the Reconciler.
#include "controller/backend/kube_backend.h"

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include "absl/strings/escaping.h"
#include "controller/backend/fake_kube_api_server.h"
#include "controller/jobs/reconciler.h"
#include "gtest/gtest.h"

namespace ems::controller {
namespace {

namespace fs = std::filesystem;

class KubeBackendTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("ems_kube_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    std::ofstream(dir_ / "token") << "sa-token\n";
    api_.Start();
    for (int i = 0; i < 5; ++i) api_.AddNode("worker-" + std::to_string(i), {{"ems", "true"}});
    api_.AddNode("worker-9", {{"ems", "true"}}, /*ready=*/false);
    api_.AddNode("gpu-0", {{"accel", "a3"}});
    backend_ = std::make_unique<KubeBackend>(
        KubeBackendOptions{.api_server = api_.url(),
                           .token_file = (dir_ / "token").string(),
                           .controller_address = "ems-controller.ems-system:50050",
                           .k8s_cluster_id = kK8sId});
    cluster_.id = "c0ffee00-0000-4000-8000-000000000001";
    cluster_.spec.k8s.k8s_cluster_id = kK8sId;
    cluster_.spec.k8s.node_count = 3;
    cluster_.spec.k8s.ns = "ems-system";
  }
  void TearDown() override { fs::remove_all(dir_); }

  static constexpr char kK8sId[] = "0b0e7e4a-4a9e-4c1e-9a57-1c2d3e4f5a6b";
  fs::path dir_;
  FakeKubeApiServer api_{"sa-token"};
  std::unique_ptr<KubeBackend> backend_;
  Cluster cluster_;
};

TEST_F(KubeBackendTest, PlansReadyLabelledNodesAndLabelsThemForTheDaemonSet) {
  auto plan = backend_->PlanNodes(cluster_);
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_EQ(*plan, (std::vector<std::string>{"worker-0", "worker-1", "worker-2"}));
  ASSERT_TRUE(backend_->Prepare(cluster_).ok());
  Json ds = api_.Object("daemonsets", "ems-system", "ems-node-c0ffee00");
  ASSERT_FALSE(ds.is_null());
  EXPECT_EQ(ds["spec"]["template"]["spec"]["nodeSelector"][kClusterLabel], cluster_.id);
  Json cm = api_.Object("configmaps", "ems-system", "ems-node-c0ffee00-config");
  EXPECT_EQ(cm["data"]["controller"], "ems-controller.ems-system:50050");
  EXPECT_EQ(cm["data"]["huge_page_num"], "131072");
  ASSERT_TRUE(backend_->Prepare(cluster_).ok()) << "apply is idempotent (replace)";

  auto before = backend_->Status(cluster_, *plan);
  ASSERT_TRUE(before.ok());
  EXPECT_FALSE((*before)[0].ready);
  ASSERT_TRUE(backend_->StartNodes(cluster_, *plan).ok());
  EXPECT_EQ(api_.NodeLabels("worker-1")[kClusterLabel], cluster_.id);
  EXPECT_EQ(api_.NodeLabels("worker-3").count(kClusterLabel), 0u);
  auto after = backend_->Status(cluster_, *plan);
  ASSERT_TRUE(after.ok());
  for (const NodeStatus& s : *after) {
    EXPECT_TRUE(s.ready) << s.name << ": " << s.detail;
    EXPECT_EQ(s.address.rfind("10.0.0.", 0), 0u);
  }
  api_.SetPodsReady(false);
  EXPECT_EQ((*backend_->Status(cluster_, *plan))[0].detail, "pod not Ready");

  ASSERT_TRUE(backend_->StopNodes(cluster_, {"worker-1"}).ok());
  EXPECT_EQ(api_.NodeLabels("worker-1").count(kClusterLabel), 0u);
  EXPECT_EQ(api_.NodeLabels("worker-1")["ems"], "true") << "the user's label stays";
  ASSERT_TRUE(backend_->Release(cluster_).ok());
  EXPECT_TRUE(api_.Object("daemonsets", "ems-system", "ems-node-c0ffee00").is_null());
  EXPECT_TRUE(backend_->Release(cluster_).ok()) << "releasing twice is fine";
}

TEST_F(KubeBackendTest, ManifestTemplatesOverrideTheBuiltInObjects) {
  std::ofstream(dir_ / "daemonset.json") << R"({"apiVersion": "apps/v1", "kind": "DaemonSet",
      "spec": {"template": {"metadata": "odd", "spec": {"containers": [
        {"name": "ems-node", "image": "registry.local/ems-node:25.12.0"}]}}}})";
  std::ofstream(dir_ / "configmap.json") << R"({"apiVersion": "v1", "kind": "ConfigMap",
      "data": {"log_level": "debug"}})";
  KubeBackend templated({.api_server = api_.url(),
                         .token_file = (dir_ / "token").string(),
                         .manifests_dir = dir_.string()});
  Json ds = templated.DaemonSetFor(cluster_);
  EXPECT_EQ(ds["spec"]["template"]["spec"]["containers"][0]["image"],
            "registry.local/ems-node:25.12.0");
  EXPECT_EQ(ds["spec"]["template"]["spec"]["nodeSelector"][kClusterLabel], cluster_.id);
  EXPECT_EQ(ds["spec"]["template"]["metadata"]["labels"][kClusterLabel], cluster_.id);
  EXPECT_EQ(ds["metadata"]["namespace"], "ems-system");
  Json cm = templated.ConfigMapFor(cluster_);
  EXPECT_EQ(cm["data"]["log_level"], "debug");
  EXPECT_EQ(cm["data"]["cluster"], cluster_.id);
  // A template without containers is ignored rather than applied half-made.
  std::ofstream(dir_ / "daemonset.json") << R"({"spec": "nope"})";
  EXPECT_EQ(templated.DaemonSetFor(cluster_)["spec"]["template"]["spec"]["containers"][0]["image"],
            "ems:0.1.0");
}

std::string ReadFile(const fs::path& p) {
  std::ifstream in(p);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// The built-in DaemonSet is what deploy/k8s/base/ems-node.yaml is for the static cluster; the
// deploy_k8s_test checks those files against ems-node --help and Kubernetes' rules.
TEST_F(KubeBackendTest, BuiltInDaemonSetFollowsDeployK8s) {
  cluster_.spec.memory = {.huge_page_num = 131072, .huge_page_flavor = 2};
  const Json ds = backend_->DaemonSetFor(cluster_);
  const Json cm = backend_->ConfigMapFor(cluster_);
  const Json& pod = ds["spec"]["template"];
  const Json& spec = pod["spec"];
  const Json& node = spec["containers"][0];
  for (const auto& [k, v] : ds["spec"]["selector"]["matchLabels"].items()) {
    EXPECT_EQ(pod["metadata"]["labels"][k], v) << "selector must match the pod labels: " << k;
  }
  EXPECT_EQ(spec["nodeSelector"][kClusterLabel], cluster_.id);
  EXPECT_EQ(ds["spec"]["updateStrategy"]["rollingUpdate"]["maxUnavailable"], 1);
  EXPECT_TRUE(spec["hostNetwork"].get<bool>());

  // Hugepages hold exactly the arena; requests == limits everywhere (Guaranteed QoS).
  const Json& res = node["resources"];
  EXPECT_EQ(res["requests"], res["limits"]);
  EXPECT_EQ(res["limits"]["hugepages-2Mi"], "262144Mi");
  EXPECT_EQ(res["limits"]["memory"], "16384Mi");
  EXPECT_EQ(res["limits"]["cpu"], "8");
  cluster_.spec.memory = {.huge_page_num = 4, .huge_page_flavor = 1024};
  const Json small = backend_->DaemonSetFor(cluster_)["spec"]["template"]["spec"]["containers"][0];
  EXPECT_EQ(small["resources"]["limits"]["hugepages-1Gi"], "4Gi");
  EXPECT_EQ(small["resources"]["limits"]["memory"], "1024Mi");
  EXPECT_EQ(small["resources"]["limits"].count("hugepages-2Mi"), 0u);

  // Every $(VAR) in the args is defined (Kubernetes passes an undefined one literally), and
  // every ConfigMap key is passed as --key=$(key).
  std::set<std::string> defined;
  for (const Json& e : node["env"]) defined.insert(e["name"].get<std::string>());
  for (const auto& [k, v] : cm["data"].items()) defined.insert(k);
  std::set<std::string> args;
  for (const Json& a : node["args"]) {
    const std::string arg = a.get<std::string>();
    args.insert(arg);
    for (size_t p = arg.find("$("); p != std::string::npos; p = arg.find("$(", p + 1)) {
      const std::string var = arg.substr(p + 2, arg.find(')', p) - p - 2);
      EXPECT_TRUE(defined.contains(var)) << arg << " refers to undefined $(" << var << ")";
    }
  }
  for (const auto& [k, v] : cm["data"].items()) {
    EXPECT_TRUE(args.contains("--" + k + "=$(" + k + ")")) << "ConfigMap key " << k;
  }

  // Drain before stop, within the grace period; probes on /healthz.
  EXPECT_EQ(node["lifecycle"]["preStop"]["exec"]["command"][0], "/usr/local/bin/ems-node-drain");
  int drain = 0;
  for (const Json& e : node["env"]) {
    if (e["name"] == "EMS_DRAIN_TIMEOUT_SECONDS") drain = std::stoi(e["value"].get<std::string>());
  }
  EXPECT_GT(drain, 240);
  EXPECT_GE(spec["terminationGracePeriodSeconds"].get<int>(),
            drain + std::stoi(cm["data"]["shutdown_grace_seconds"].get<std::string>()) + 10);
  for (const char* probe : {"startupProbe", "readinessProbe", "livenessProbe"}) {
    EXPECT_EQ(node[probe]["httpGet"]["path"], "/healthz") << probe;
  }

  // The same fixed args, ports, hook and socket directory as deploy/k8s/base, and ConfigMap
  // keys the base's flags ConfigMap has too (so they are flags ems-node lists).
  const fs::path base = fs::path(EMS_SOURCE_DIR) / "deploy/k8s/base";
  const std::string yaml = ReadFile(base / "ems-node.yaml");
  const std::string kustomization = ReadFile(base / "kustomization.yaml");
  ASSERT_FALSE(yaml.empty() || kustomization.empty()) << base;
  for (const std::string& arg : args) {
    if (arg.find("$(") == std::string::npos || arg.find("$(NODE_NAME)") != std::string::npos ||
        arg.find("$(POD_IP)") != std::string::npos) {
      EXPECT_NE(yaml.find("- " + arg + "\n"), std::string::npos) << arg << " not in " << base;
    }
  }
  for (const auto& [k, v] : cm["data"].items()) {
    EXPECT_NE(kustomization.find("- " + k + "="), std::string::npos) << k;
  }
  for (const char* text :
       {"hostPort: 50051", "hostPort: 50052", "hostPort: 50053", "path: /run/ems",
        "/usr/local/bin/ems-node-drain", "maxUnavailable: 1", "dnsPolicy: ClusterFirstWithHostNet",
        "key: ems.io/dedicated", "fsGroup: 10001", "mountPath: /etc/ems/credential",
        "secretName: ems-node-cdkey", "defaultMode: 288  # 0440"}) {
    EXPECT_NE(yaml.find(text), std::string::npos) << text;
  }
}

TEST_F(KubeBackendTest, LabelUpdatesRetryResourceVersionConflicts) {
  // Labels change by merge patch (the fake refuses updates, as deploy/k8s's RBAC does).
  api_.InjectNodeConflicts(2);
  ASSERT_TRUE(backend_->StartNodes(cluster_, {"worker-4"}).ok());
  EXPECT_EQ(api_.conflicts_served(), 2);
  EXPECT_EQ(api_.NodeLabels("worker-4")[kClusterLabel], cluster_.id);
  api_.InjectNodeConflicts(100);
  absl::Status s = backend_->StopNodes(cluster_, {"worker-4"});
  EXPECT_EQ(s.code(), absl::StatusCode::kAborted) << s;
}

TEST_F(KubeBackendTest, ANodeOfAnotherClusterIsNeverRelabelledOrUnlabelled) {
  // Two clusters planned at once (or an expand naming another cluster's node) used to take
  // each other's nodes, and a delete removed the label whatever cluster it named: the other
  // cluster's pods were evicted.
  Cluster other = cluster_;
  other.id = "d00dfeed-0000-4000-8000-000000000002";
  ASSERT_TRUE(backend_->StartNodes(other, {"worker-0", "worker-1"}).ok());
  absl::Status taken = backend_->StartNodes(cluster_, {"worker-1", "worker-2"});
  EXPECT_EQ(taken.code(), absl::StatusCode::kFailedPrecondition) << taken;
  EXPECT_NE(taken.message().find("worker-1 belongs to another EMS cluster"), std::string::npos)
      << taken;
  EXPECT_EQ(api_.NodeLabels("worker-1")[kClusterLabel], other.id);
  EXPECT_EQ(api_.NodeLabels("worker-2")[kClusterLabel], cluster_.id)
      << "the nodes after the refused one are still started";
  ASSERT_TRUE(backend_->StopNodes(cluster_, {"worker-0", "worker-1", "worker-2"}).ok());
  EXPECT_EQ(api_.NodeLabels("worker-0")[kClusterLabel], other.id);
  EXPECT_EQ(api_.NodeLabels("worker-1")[kClusterLabel], other.id);
  EXPECT_EQ(api_.NodeLabels("worker-2").count(kClusterLabel), 0u);
  // Enrolling by label finds only nodes no other cluster runs on.
  auto found = backend_->DiscoverNodes(cluster_);
  ASSERT_TRUE(found.ok()) << found.status();
  EXPECT_EQ(*found, (std::vector<std::string>{"worker-2", "worker-3", "worker-4", "worker-9"}));
}

TEST_F(KubeBackendTest, TooFewEligibleNodesFailsThePlan) {
  cluster_.spec.k8s.node_count = 6;  // 5 Ready + 1 NotReady carry ems=true
  auto plan = backend_->PlanNodes(cluster_);
  EXPECT_EQ(plan.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(plan.status().message().find("only 5 Ready nodes carry label ems=true"),
            std::string::npos)
      << plan.status();
}

TEST_F(KubeBackendTest, ListsLabelsOfTheConfiguredK8sCluster) {
  auto labels = backend_->ListLabels(kK8sId);
  ASSERT_TRUE(labels.ok()) << labels.status();
  ASSERT_EQ(labels->size(), 2u);
  EXPECT_EQ((*labels)[0].key, "accel");
  EXPECT_EQ((*labels)[1].key, "ems");
  EXPECT_TRUE(backend_->ListLabels("11111111-2222-3333-4444-555555555555")->empty());
}

// The API takes namespaces Kubernetes refuses (upper case, 64 characters); the backend
// refuses them before anything is applied.
TEST_F(KubeBackendTest, ANamespaceKubernetesRefusesIsRefusedUpFront) {
  ClusterSpec spec = cluster_.spec;
  for (const std::string& ns :
       std::vector<std::string>{"", "ems-system", "a", "0ems", std::string(63, 'n')}) {
    spec.k8s.ns = ns;
    EXPECT_TRUE(backend_->CheckSpec(spec).ok()) << ns;
  }
  for (const std::string& ns : std::vector<std::string>{
           "Ems", "ems-System", std::string(64, 'n'), "ems_system", "-ems", "ems-", "ems.system"}) {
    spec.k8s.ns = ns;
    absl::Status s = backend_->CheckSpec(spec);
    EXPECT_TRUE(absl::IsInvalidArgument(s)) << ns << ": " << s;
    EXPECT_NE(s.message().find("'" + ns + "'"), std::string::npos) << s;
  }
}

TEST_F(KubeBackendTest, WrongTokenIsPermissionDenied) {
  std::ofstream(dir_ / "token") << "stolen\n";
  EXPECT_EQ(backend_->PlanNodes(cluster_).status().code(), absl::StatusCode::kPermissionDenied);
}

TEST_F(KubeBackendTest, LifecycleThroughTheReconciler) {
  auto store = StateStore::Open((dir_ / "state.db").string());
  ASSERT_TRUE(store.ok());
  FakeClock clock;
  auto registry = Registry::Load(store->get(), &clock);
  ASSERT_TRUE(registry.ok());
  Reconciler reconciler(registry->get(), backend_.get(), nullptr,
                        {.poll_interval = absl::Milliseconds(5),
                         .ready_timeout = absl::Seconds(30),
                         .resync_interval = absl::Milliseconds(50)});
  reconciler.Start();
  auto wait = [&](const std::string& job) {
    for (int i = 0; i < 4000; ++i) {
      auto j = (*registry)->GetJob("p", job);
      if (j.ok() && IsTerminal(j->status)) return j->status;
      absl::SleepFor(absl::Milliseconds(5));
    }
    return std::string("timeout");
  };
  ClusterSpec spec = cluster_.spec;
  spec.name = "kube";
  auto created = (*registry)->CreateCluster("p", spec);
  ASSERT_TRUE(created.ok());
  ASSERT_EQ(wait(created->job_id), kJobCompleted);
  const std::string id = created->cluster_id;
  EXPECT_EQ(api_.NodeLabels("worker-2")[kClusterLabel], id);
  auto expand = (*registry)->ResizeCluster("p", id, JobKind::kExpand, {"worker-3"});
  ASSERT_TRUE(expand.ok());
  ASSERT_EQ(wait(*expand), kJobCompleted);
  EXPECT_EQ(api_.NodeLabels("worker-3")[kClusterLabel], id);
  EXPECT_EQ((*registry)->GetCluster("p", id)->available_node_count, 4);
  auto shrink = (*registry)->ResizeCluster("p", id, JobKind::kShrink, {"worker-0"});
  ASSERT_TRUE(shrink.ok());
  ASSERT_EQ(wait(*shrink), kJobCompleted);
  EXPECT_EQ(api_.NodeLabels("worker-0").count(kClusterLabel), 0u);
  auto del = (*registry)->DeleteCluster("p", id);
  ASSERT_TRUE(del.ok());
  ASSERT_EQ(wait(*del), kJobCompleted);
  for (const char* n : {"worker-1", "worker-2", "worker-3"}) {
    EXPECT_EQ(api_.NodeLabels(n).count(kClusterLabel), 0u) << n;
  }
  EXPECT_EQ((*registry)->GetCluster("p", id)->status, kDeleted);
  const std::string short_id = id.substr(0, 8);
  EXPECT_TRUE(api_.Object("secrets", "ems-system", "ems-node-" + short_id + "-cdkey").is_null());
  EXPECT_TRUE(api_.Object("daemonsets", "ems-system", "ems-node-" + short_id).is_null());
  reconciler.Stop();
}

// What a cdKey Secret's data decodes to ("<missing>" without one).
std::string SecretKey(const Json& secret) {
  if (!secret.is_object() || !secret.contains("data") || !secret["data"].contains("cd_key")) {
    return "<missing>";
  }
  std::string decoded;
  if (!absl::Base64Unescape(secret["data"]["cd_key"].get<std::string>(), &decoded)) {
    return "<not base64>";
  }
  return decoded;
}

class KubeCdKeyTest : public KubeBackendTest {
 protected:
  void SetUp() override {
    KubeBackendTest::SetUp();
    cluster_.project_id = "proj-a";
    // The controller's CredentialStore, reduced to what the backend asks: the key of a project.
    backend_ = std::make_unique<KubeBackend>(
        KubeBackendOptions{.api_server = api_.url(),
                           .token_file = (dir_ / "token").string(),
                           .controller_address = "ems-controller.ems-system:50050",
                           .k8s_cluster_id = kK8sId,
                           .cd_key_of = [this](const std::string& project) {
                             return project == "proj-a" ? key_ : std::string();
                           }});
  }
  Json Secret() { return api_.Object("secrets", "ems-system", kSecret); }

  static constexpr char kSecret[] = "ems-node-c0ffee00-cdkey";
  static constexpr char kKey[] = "0123456789abcdef0123456789abcdef";
  std::string key_;  // the project's credential; "" = none yet
};

TEST_F(KubeCdKeyTest, PrepareStoresTheProjectsKeyInASecretTheDaemonSetMounts) {
  key_ = kKey;
  ASSERT_TRUE(backend_->Prepare(cluster_).ok());
  const Json secret = Secret();
  ASSERT_FALSE(secret.is_null()) << "Prepare applies the Secret";
  EXPECT_EQ(secret["type"], "Opaque");
  EXPECT_EQ(secret["data"]["cd_key"], "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=");
  EXPECT_EQ(SecretKey(secret), kKey);
  EXPECT_EQ(secret["metadata"]["labels"][kClusterLabel], cluster_.id);
  EXPECT_EQ(secret["metadata"]["labels"]["app.kubernetes.io/name"], "ems-node");

  const Json ds = api_.Object("daemonsets", "ems-system", "ems-node-c0ffee00");
  const Json& spec = ds["spec"]["template"]["spec"];
  const Json& node = spec["containers"][0];
  Json volume;
  for (const Json& v : spec["volumes"]) {
    if (v["name"] == "cd-key") volume = v;
  }
  ASSERT_FALSE(volume.is_null()) << spec["volumes"];
  EXPECT_EQ(volume["secret"]["secretName"], kSecret);
  EXPECT_EQ(volume["secret"]["defaultMode"], 0440);
  EXPECT_FALSE(volume["secret"].value("optional", false)) << "no Secret must mean no pod";
  // Secret files are root's: fsGroup gives them to the group ems-node runs as.
  EXPECT_EQ(spec["securityContext"]["fsGroup"], spec["securityContext"]["runAsGroup"]);
  bool mounted = false;
  for (const Json& m : node["volumeMounts"]) {
    if (m["name"] == "cd-key") {
      mounted = true;
      EXPECT_EQ(m["mountPath"], "/etc/ems/credential");
      EXPECT_TRUE(m["readOnly"].get<bool>());
    }
  }
  EXPECT_TRUE(mounted) << node["volumeMounts"];
  int flags = 0;
  for (const Json& a : node["args"]) {
    if (a.get<std::string>().rfind("--cd_key", 0) == 0) {
      ++flags;
      EXPECT_EQ(a, "--cd_key_file=/etc/ems/credential/cd_key");
    }
  }
  EXPECT_EQ(flags, 1);
  // The key itself is nowhere but in the Secret (args and ConfigMaps are not secret).
  EXPECT_EQ(DumpJson(ds).find(kKey), std::string::npos);
  EXPECT_EQ(
      DumpJson(api_.Object("configmaps", "ems-system", "ems-node-c0ffee00-config")).find(kKey),
      std::string::npos);

  // Pods start (Ready) with the Secret there, and not without it: the kubelet cannot mount it.
  ASSERT_TRUE(backend_->StartNodes(cluster_, {"worker-0"}).ok());
  EXPECT_TRUE((*backend_->Status(cluster_, {"worker-0"}))[0].ready);
  KubeClient client({.api_server = api_.url(), .token_file = (dir_ / "token").string()});
  ASSERT_TRUE(client.Delete("/api/v1/namespaces/ems-system/secrets/ems-node-c0ffee00-cdkey").ok());
  EXPECT_FALSE((*backend_->Status(cluster_, {"worker-0"}))[0].ready);

  ASSERT_TRUE(backend_->Prepare(cluster_).ok());
  ASSERT_TRUE(backend_->Release(cluster_).ok());
  EXPECT_TRUE(Secret().is_null()) << "Release deletes the Secret";
  EXPECT_TRUE(api_.Object("configmaps", "ems-system", "ems-node-c0ffee00-config").is_null());
  EXPECT_TRUE(backend_->Release(cluster_).ok()) << "releasing twice is fine";
}

TEST_F(KubeCdKeyTest, NoCredentialIsAnEmptyKeyAndALaterOneReplacesIt) {
  ASSERT_TRUE(backend_->Prepare(cluster_).ok());
  Json secret = Secret();
  ASSERT_FALSE(secret.is_null());
  EXPECT_EQ(secret["data"]["cd_key"], "") << "the key exists, so the file does and pods start";
  const std::string version = secret["metadata"]["resourceVersion"];

  key_ = kKey;  // CreateCredentialInfo
  ASSERT_TRUE(backend_->Prepare(cluster_).ok());
  secret = Secret();
  EXPECT_EQ(SecretKey(secret), kKey);
  EXPECT_NE(secret["metadata"]["resourceVersion"], version) << "replaced, not created anew";

  // Expanding also refreshes it, so nodes started after a credential require it.
  key_ = "fedcba9876543210fedcba9876543210";
  ASSERT_TRUE(backend_->StartNodes(cluster_, {"worker-3"}).ok());
  EXPECT_EQ(SecretKey(Secret()), key_);
  // And so does CreateCredentialInfo, for the pods already running (they re-read the file).
  key_ = "00112233445566778899aabbccddeeff";
  ASSERT_TRUE(backend_->RefreshCredential(cluster_).ok());
  EXPECT_EQ(SecretKey(Secret()), key_);
  // Another project's cluster gets its own project's key (none here).
  Cluster other = cluster_;
  other.id = "d00dfeed-0000-4000-8000-000000000002";
  other.project_id = "proj-b";
  ASSERT_TRUE(backend_->Prepare(other).ok());
  EXPECT_EQ(SecretKey(api_.Object("secrets", "ems-system", "ems-node-d00dfeed-cdkey")), "");
  EXPECT_EQ(SecretKey(Secret()), key_);
}

// CreateCredentialInfo refreshes the Secret of every cluster it lists; a delete may remove
// the Secret in between. The refresh must not create it again behind the deleted cluster.
TEST_F(KubeCdKeyTest, ARefreshAfterTheClustersReleaseLeavesNoSecret) {
  ASSERT_TRUE(backend_->Prepare(cluster_).ok());
  ASSERT_TRUE(backend_->Release(cluster_).ok());
  key_ = kKey;
  EXPECT_TRUE(backend_->RefreshCredential(cluster_).ok());
  EXPECT_TRUE(Secret().is_null()) << "the refresh created the Secret of a released cluster";
  // The cluster created again gets the key current then.
  ASSERT_TRUE(backend_->Prepare(cluster_).ok());
  EXPECT_EQ(SecretKey(Secret()), kKey);
}

TEST_F(KubeCdKeyTest, TemplateDaemonSetsGetTheSecretUnlessTheyPassAKeyThemselves) {
  std::ofstream(dir_ / "daemonset.json") << R"({"spec": {"template": {"spec": {
      "securityContext": {"runAsUser": 2000, "runAsGroup": 3000},
      "volumes": [{"name": "cd-key", "emptyDir": {}}],
      "containers": [{"name": "sidecar", "image": "busybox:1.36"},
                     {"name": "ems-node", "image": "registry.local/ems-node:25.12.0",
                      "command": ["/usr/local/bin/ems-node"], "args": ["--log_level=debug"]}]}}}})";
  KubeBackend templated({.api_server = api_.url(),
                         .token_file = (dir_ / "token").string(),
                         .manifests_dir = dir_.string()});
  Json spec = templated.DaemonSetFor(cluster_)["spec"]["template"]["spec"];
  EXPECT_EQ(spec["containers"][0].count("args"), 0u) << "only the ems-node container changes";
  EXPECT_EQ(spec["containers"][1]["args"],
            Json({"--log_level=debug", "--cd_key_file=/etc/ems/credential/cd_key"}));
  EXPECT_EQ(spec["containers"][1]["volumeMounts"][0]["mountPath"], "/etc/ems/credential");
  ASSERT_EQ(spec["volumes"].size(), 1u) << "the template's cd-key volume is replaced: " << spec;
  EXPECT_EQ(spec["volumes"][0]["secret"]["secretName"], kSecret);
  EXPECT_EQ(spec["securityContext"]["fsGroup"], 3000) << "the template's group reads the file";

  // A template that hands ems-node its key itself keeps its own way.
  std::ofstream(dir_ / "daemonset.json", std::ios::trunc) << R"({"spec": {"template": {"spec": {
      "containers": [{"name": "ems-node", "image": "registry.local/ems-node:25.12.0",
                      "args": ["--cd_key_file=/vault/ems/key"]}]}}}})";
  spec = templated.DaemonSetFor(cluster_)["spec"]["template"]["spec"];
  EXPECT_EQ(spec["containers"][0]["args"], Json({"--cd_key_file=/vault/ems/key"}));
  EXPECT_EQ(spec.count("volumes"), 0u);
  EXPECT_EQ(spec.count("securityContext"), 0u);
}

// The fake answers Secrets like the API server: base64 data only, under /api/v1 only.
TEST_F(KubeCdKeyTest, FakeApiServerKeepsSecretsFaithful) {
  KubeClient client({.api_server = api_.url(), .token_file = (dir_ / "token").string()});
  Json bad = {{"apiVersion", "v1"},
              {"kind", "Secret"},
              {"metadata", {{"name", "bad"}}},
              {"data", {{"cd_key", "not base64!"}}}};
  EXPECT_EQ(client.Create("/api/v1/namespaces/ems-system/secrets", bad).status().code(),
            absl::StatusCode::kInvalidArgument);
  bad["data"]["cd_key"] = absl::Base64Escape("k");
  EXPECT_EQ(client.Create("/apis/apps/v1/namespaces/ems-system/secrets", bad).status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_TRUE(client.Create("/api/v1/namespaces/ems-system/secrets", bad).ok());
  EXPECT_EQ(client.Create("/api/v1/namespaces/ems-system/secrets", bad).status().code(),
            absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(SecretKey(api_.Object("secrets", "ems-system", "bad")), "k");
}

// Object names are lower-case RFC 1123 subdomains on a real API server (422 otherwise): the
// fake refuses the same, so a name built from an upper-case id fails here as it would there.
TEST_F(KubeBackendTest, FakeApiServerRefusesNamesKubernetesRefuses) {
  KubeClient client({.api_server = api_.url(), .token_file = (dir_ / "token").string()});
  for (const char* name : {"ems-node-ABCDEF12-config", "-ems", "ems-", "ems_node", ""}) {
    SCOPED_TRACE(name);
    Json cm = {{"apiVersion", "v1"}, {"kind", "ConfigMap"}, {"metadata", {{"name", name}}}};
    auto r = client.Create("/api/v1/namespaces/ems-system/configmaps", cm);
    EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument) << r.status();
    EXPECT_NE(r.status().message().find("RFC 1123"), std::string::npos) << r.status();
  }
  Json ok = {{"apiVersion", "v1"}, {"kind", "ConfigMap"}, {"metadata", {{"name", "ems.node-1"}}}};
  EXPECT_TRUE(client.Create("/api/v1/namespaces/ems-system/configmaps", ok).ok());
}

}  // namespace
}  // namespace ems::controller
