// The kubernetes backend against FakeKubeApiServer: node selection and labelling, conflicts,
// DaemonSet/ConfigMap apply, pod readiness, and a whole create/expand/shrink/delete lifecycle
// through the Reconciler.
#include "controller/backend/kube_backend.h"

#include <unistd.h>

#include <filesystem>
#include <fstream>

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
            "ems/ems-node:latest");
}

TEST_F(KubeBackendTest, LabelUpdatesRetryResourceVersionConflicts) {
  api_.InjectNodeConflicts(2);
  ASSERT_TRUE(backend_->StartNodes(cluster_, {"worker-4"}).ok());
  EXPECT_EQ(api_.conflicts_served(), 2);
  EXPECT_EQ(api_.NodeLabels("worker-4")[kClusterLabel], cluster_.id);
  api_.InjectNodeConflicts(100);
  absl::Status s = backend_->StopNodes(cluster_, {"worker-4"});
  EXPECT_EQ(s.code(), absl::StatusCode::kAborted) << s;
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
  reconciler.Stop();
}

}  // namespace
}  // namespace ems::controller
