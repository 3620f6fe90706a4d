#include "controller/backend/local_backend.h"

#include <signal.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "gtest/gtest.h"

namespace ems::controller {
namespace {

namespace fs = std::filesystem;

class LocalBackendTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("ems_local_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    options_.node_binary = EMS_FAKE_NODE;
    options_.work_dir = dir_.string();
    options_.node_memory_cap_mb = 256;
    backend_ = std::make_unique<LocalBackend>(options_);
    cluster_.id = "c1";
    cluster_.spec.k8s.k8s_cluster_id = "0b0e7e4a-4a9e-4c1e-9a57-1c2d3e4f5a6b";
    cluster_.spec.k8s.node_count = 3;
  }
  void TearDown() override {
    backend_->StopAll();
    fs::remove_all(dir_);
  }

  // Waits until every named node is ready; returns their statuses.
  std::vector<NodeStatus> WaitReady(LocalBackend& b, const std::vector<std::string>& names) {
    for (int i = 0; i < 1000; ++i) {
      auto st = b.Status(cluster_, names);
      EXPECT_TRUE(st.ok());
      if (std::all_of(st->begin(), st->end(), [](const NodeStatus& s) { return s.ready; })) {
        return *st;
      }
      usleep(5000);
    }
    ADD_FAILURE() << "nodes not ready";
    return {};
  }

  static std::string ReadFile(const fs::path& p) {
    std::ifstream in(p);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
  }
  std::string Args(const std::string& node) { return ReadFile(dir_ / "c1" / node / "args.txt"); }

  fs::path dir_;
  LocalBackendOptions options_;
  std::unique_ptr<LocalBackend> backend_;
  Cluster cluster_;
};

TEST_F(LocalBackendTest, StartsCappedNodesThatReportTheirAddress) {
  auto names = backend_->PlanNodes(cluster_);
  ASSERT_TRUE(names.ok());
  EXPECT_EQ(*names, (std::vector<std::string>{"local-0", "local-1", "local-2"}));
  ASSERT_TRUE(backend_->Prepare(cluster_).ok());
  ASSERT_TRUE(backend_->StartNodes(cluster_, *names).ok());
  auto st = WaitReady(*backend_, *names);
  ASSERT_EQ(st.size(), 3u);
  EXPECT_NE(st[0].address, st[1].address);
  EXPECT_EQ(st[0].address.rfind("127.0.0.1:", 0), 0u);
  // 256 GB requested, 256 MB given: 128 pages of 2 MB, and the note says so.
  EXPECT_EQ(backend_->NodeHugePages(cluster_), 128);
  EXPECT_NE(Args("local-1").find("--huge_page_num\n128\n--huge_page_flavor\n2\n"),
            std::string::npos)
      << Args("local-1");
  EXPECT_NE(Args("local-1").find("--node_id\nlocal-1\n"), std::string::npos);
  EXPECT_EQ(backend_->Note(cluster_),
            "local backend: each node's arena is capped at 256 MB (--local_node_memory_cap_mb) "
            "of the requested 262144 MB");
  auto labels = backend_->ListLabels(cluster_.spec.k8s.k8s_cluster_id);
  ASSERT_TRUE(labels.ok());
  ASSERT_EQ(labels->size(), 5u);  // ems=true, ems.io/cluster=c1, 3 hostnames
  EXPECT_EQ((*labels)[0].key, "ems");
  EXPECT_TRUE(backend_->ListLabels("11111111-2222-3333-4444-555555555555")->empty());
}

TEST_F(LocalBackendTest, PassesTheProjectsCdKey) {
  options_.cd_key_of = [](const std::string& project) {
    return project == "p1" ? std::string("0123456789abcdef0123456789abcdef") : std::string();
  };
  LocalBackend keyed(options_);
  cluster_.project_id = "p1";
  ASSERT_TRUE(keyed.StartNodes(cluster_, {"local-0"}).ok());
  WaitReady(keyed, {"local-0"});
  // In a file only the owner reads, never in args (any local user can list those).
  const fs::path key_file = dir_ / "c1" / "local-0" / "cd_key";
  EXPECT_NE(Args("local-0").find("--cd_key_file\n" + key_file.string() + "\n"), std::string::npos)
      << Args("local-0");
  EXPECT_EQ(Args("local-0").find("0123456789abcdef"), std::string::npos) << Args("local-0");
  EXPECT_EQ(ReadFile(key_file), "0123456789abcdef0123456789abcdef");
  EXPECT_EQ(fs::status(key_file).permissions() & fs::perms::all,
            fs::perms::owner_read | fs::perms::owner_write);
  keyed.StopAll();
}

TEST_F(LocalBackendTest, RefreshCredentialRewritesTheKeyFileOfRunningNodes) {
  std::string key;  // the project's current key; none at first
  options_.cd_key_of = [&key](const std::string&) { return key; };
  LocalBackend keyed(options_);
  ASSERT_TRUE(keyed.StartNodes(cluster_, {"local-0", "local-1"}).ok());
  WaitReady(keyed, {"local-0", "local-1"});
  EXPECT_EQ(ReadFile(dir_ / "c1" / "local-0" / "cd_key"), "") << "no credential: empty file";
  key = "fedcba9876543210fedcba9876543210";
  ASSERT_TRUE(keyed.RefreshCredential(cluster_).ok());
  for (const char* node : {"local-0", "local-1"}) {
    EXPECT_EQ(ReadFile(dir_ / "c1" / node / "cd_key"), key) << node;
  }
  keyed.StopAll();
}

TEST_F(LocalBackendTest, ARestartedControllerAdoptsRunningNodes) {
  const std::vector<std::string> names = {"local-0", "local-1"};
  ASSERT_TRUE(backend_->StartNodes(cluster_, names).ok());
  auto before = WaitReady(*backend_, names);
  LocalBackend again(options_);  // same work_dir, as after a controller restart
  auto after = again.Status(cluster_, names);
  ASSERT_TRUE(after.ok());
  EXPECT_TRUE((*after)[0].ready);
  EXPECT_EQ((*after)[0].address, before[0].address);
  ASSERT_TRUE(again.StartNodes(cluster_, names).ok());  // idempotent: no second process
  EXPECT_EQ((*again.Status(cluster_, names))[1].address, before[1].address);
  auto found = again.DiscoverNodes(cluster_);
  ASSERT_TRUE(found.ok());
  EXPECT_EQ(*found, names);
}

TEST_F(LocalBackendTest, DeadNodesAreReportedAndRestarted) {
  const std::vector<std::string> names = {"local-0"};
  ASSERT_TRUE(backend_->StartNodes(cluster_, names).ok());
  WaitReady(*backend_, names);
  std::ifstream pidfile(dir_ / "c1" / "local-0" / "pid");
  int pid = 0;
  pidfile >> pid;
  ASSERT_GT(pid, 0);
  ASSERT_EQ(kill(pid, SIGKILL), 0);
  bool down = false;
  for (int i = 0; i < 1000 && !down; ++i) {
    down = !(*backend_->Status(cluster_, names))[0].ready;
    if (!down) usleep(5000);
  }
  EXPECT_TRUE(down);
  ASSERT_TRUE(backend_->StartNodes(cluster_, names).ok());
  WaitReady(*backend_, names);
}

TEST_F(LocalBackendTest, StopAndReleaseEndTheProcesses) {
  const std::vector<std::string> names = {"local-0", "local-1"};
  ASSERT_TRUE(backend_->StartNodes(cluster_, names).ok());
  WaitReady(*backend_, names);
  ASSERT_TRUE(backend_->StopNodes(cluster_, {"local-1"}).ok());
  auto st = backend_->Status(cluster_, names);
  EXPECT_TRUE((*st)[0].ready);
  EXPECT_FALSE((*st)[1].ready);
  EXPECT_EQ((*st)[1].detail, "not running");
  ASSERT_TRUE(backend_->Release(cluster_).ok());
  EXPECT_FALSE(fs::exists(dir_ / "c1"));
}

TEST_F(LocalBackendTest, FailedStartsExplainThemselves) {
  options_.extra_args = {"--fail_start"};
  LocalBackend failing(options_);
  ASSERT_TRUE(failing.StartNodes(cluster_, {"local-0"}).ok());
  std::string detail;
  for (int i = 0; i < 1000; ++i) {
    detail = (*failing.Status(cluster_, {"local-0"}))[0].detail;
    if (detail.find("refusing") != std::string::npos) break;
    usleep(5000);
  }
  EXPECT_EQ(detail, "not running: fake ems-node: refusing to start as asked");
  options_.node_binary = "/nonexistent/ems-node";
  EXPECT_EQ(LocalBackend(options_).Prepare(cluster_).code(), absl::StatusCode::kFailedPrecondition);
}

}  // namespace
}  // namespace ems::controller
