// emsctl in-process against a real REST server (FakeBackend behind it).
#include "controller/emsctl/cli.h"

#include <sstream>

#include "controller/api/test_env.h"

namespace ems::controller::testing {
namespace {

class EmsctlTest : public ControlPlaneTest {
 protected:
  struct Result {
    int code;
    std::string out;
    std::string err;
  };

  Result Run(std::vector<std::string> args, bool with_token = true) {
    args.insert(args.begin(), "--endpoint=http://127.0.0.1:" + std::to_string(server_->port()));
    if (with_token) args.insert(args.begin(), {"--token", token_});
    args.push_back("--interval_ms=5");
    std::ostringstream out, err;
    const int code = emsctl::Run(args, out, err);
    return {code, out.str(), err.str()};
  }

  void SetUp() override {
    ControlPlaneTest::SetUp();
    Result t = Run({"token", "create", "--project", "proj-a"}, false);
    ASSERT_EQ(t.code, 0) << t.err;
    token_ = t.out.substr(0, t.out.size() - 1);
  }

  std::string token_;
};

TEST_F(EmsctlTest, TokenCreatePrintsTheTokenAlone) {
  EXPECT_EQ(token_.rfind("emst-", 0), 0u);
  EXPECT_EQ(token_.find('\n'), std::string::npos);
  EXPECT_EQ(token_.size(), 5u + 48u);
  Result bad = Run({"token", "create"}, false);
  EXPECT_EQ(bad.code, emsctl::kExitUsage);
  Result json = Run({"-o", "json", "token", "create", "--project", "proj-b"}, false);
  ASSERT_EQ(json.code, 0);
  EXPECT_EQ(Json::parse(json.out)["project_id"], "proj-b");
}

TEST_F(EmsctlTest, ClusterLifecycle) {
  Result c =
      Run({"cluster", "create", "--name", "alpha", "--nodes", "3", "--label", "pool=kv", "--wait"});
  ASSERT_EQ(c.code, 0) << c.out << c.err;
  EXPECT_NE(c.out.find("COMPLETED"), std::string::npos) << c.out;
  EXPECT_NE(c.err.find("[##############################] 100.0%  COMPLETED"), std::string::npos)
      << c.err;
  const std::string id = c.out.substr(c.out.find("cluster_id: ") + 12, 36);

  Result list = Run({"cluster", "list"});
  ASSERT_EQ(list.code, 0);
  EXPECT_EQ(list.out.rfind("ID", 0), 0u) << list.out;
  EXPECT_NE(list.out.find("alpha"), std::string::npos);
  EXPECT_NE(list.out.find("RUNNING"), std::string::npos);
  EXPECT_NE(list.out.find("3/3"), std::string::npos);
  Result json = Run({"cluster", "list", "-o", "json"});
  EXPECT_EQ(Json::parse(json.out)["clusters"][0]["cluster_metadata"]["id"], id);

  Result show = Run({"cluster", "show", id});
  ASSERT_EQ(show.code, 0);
  EXPECT_NE(show.out.find("pool=kv"), std::string::npos) << show.out;
  EXPECT_NE(show.out.find("131072 pages x 2 MB"), std::string::npos) << show.out;

  Result expand = Run({"cluster", "expand", id, "node-3", "node-4", "--wait"});
  EXPECT_EQ(expand.code, 0) << expand.err;
  Result shrink = Run({"--output=json", "cluster", "shrink", id, "node-4"});
  ASSERT_EQ(shrink.code, 0) << shrink.err;
  const std::string shrink_job = Json::parse(shrink.out)["job_id"];
  Result wait = Run({"job", "wait", shrink_job});
  EXPECT_EQ(wait.code, 0) << wait.err;
  EXPECT_EQ(wait.out, shrink_job + " COMPLETED\n");

  Result jobs = Run({"job", "list"});
  EXPECT_NE(jobs.out.find("CreateCluster"), std::string::npos) << jobs.out;
  EXPECT_NE(jobs.out.find("ShrinkCluster"), std::string::npos);
  Result longs = Run({"job", "list", "--type", "long", "-o", "json"});
  EXPECT_EQ(Json::parse(longs.out)["jobs"].size(), 2u);
  Result job = Run({"job", "show", shrink_job});
  EXPECT_NE(job.out.find("status:   COMPLETED"), std::string::npos) << job.out;
  EXPECT_NE(job.out.find("remove nodes from the ring"), std::string::npos) << job.out;

  Result cancel = Run({"job", "cancel", shrink_job});
  EXPECT_EQ(cancel.code, emsctl::kExitApiError);
  EXPECT_NE(cancel.out.find("not cancellable: 1"), std::string::npos) << cancel.out;

  Result del = Run({"cluster", "delete", id, "--wait"});
  EXPECT_EQ(del.code, 0) << del.err;
  Result again = Run({"cluster", "delete", id});
  EXPECT_EQ(again.code, emsctl::kExitApiError);
  EXPECT_NE(again.err.find("ems.00030034"), std::string::npos) << again.err;
}

TEST_F(EmsctlTest, ExitCodesScriptsCanUse) {
  EXPECT_EQ(Run({"cluster", "show", "0b0e7e4a-4a9e-4c1e-9a57-1c2d3e4f5a6b"}).code,
            emsctl::kExitNotFound);
  EXPECT_EQ(Run({"cluster", "create", "--nodes", "2"}).code, emsctl::kExitApiError);
  EXPECT_EQ(Run({"cluster", "create"}).code, emsctl::kExitUsage);
  EXPECT_EQ(Run({"bogus"}).code, emsctl::kExitUsage);
  EXPECT_EQ(Run({"cluster", "list"}, false).code, emsctl::kExitUsage) << "no token";
  std::ostringstream out, err;
  EXPECT_EQ(emsctl::Run({"--token", "nope", "--endpoint",
                         "http://127.0.0.1:" + std::to_string(server_->port()), "cluster", "list"},
                        out, err),
            emsctl::kExitAuth);
  EXPECT_NE(err.str().find("common.01010018"), std::string::npos);
  EXPECT_EQ(emsctl::Run({"--token", "x", "--endpoint", "http://127.0.0.1:1", "cluster", "list"},
                        out, err),
            emsctl::kExitUnavailable);
  backend_.HoldReady(true);
  StopAll();
  reconciler_options_.ready_timeout = absl::Milliseconds(30);
  Start();
  Result failed = Run({"cluster", "create", "--nodes", "3", "--wait"});
  EXPECT_EQ(failed.code, emsctl::kExitJobFailed) << failed.out;
  EXPECT_NE(failed.out.find("FAILED ems.00030002"), std::string::npos) << failed.out;
}

// The API answers at most 1000 clusters or jobs a call, oldest first, and keeps DELETED
// clusters and finished jobs listed. emsctl asked once: from the 1001st cluster on, the
// newest were missing from `cluster list` and their jobs from `job list`.
TEST_F(EmsctlTest, ListsPastTheFirstPage) {
  StopAll();
  run_reconciler_ = false;  // 1001 create jobs stay queued
  Start();
  std::string last;
  for (int i = 0; i < 1001; ++i) {
    ClusterSpec spec;
    spec.name = "c-" + std::to_string(i) + "-x";
    spec.k8s.k8s_cluster_id = "0b0e7e4a-4a9e-4c1e-9a57-1c2d3e4f5a6b";
    spec.k8s.node_count = 3;
    auto accepted = registry_->CreateCluster("proj-a", spec);
    ASSERT_TRUE(accepted.ok()) << accepted.status();
    last = accepted->cluster_id;
  }
  Result clusters = Run({"-o", "json", "cluster", "list"});
  ASSERT_EQ(clusters.code, 0) << clusters.err;
  Json c = Json::parse(clusters.out);
  EXPECT_EQ(c["clusters"].size(), 1001u);
  EXPECT_NE(clusters.out.find(last), std::string::npos) << "the newest cluster is missing";
  Result table = Run({"cluster", "list"});
  EXPECT_NE(table.out.find("c-1000-x"), std::string::npos) << "the newest cluster is missing";
  Result jobs = Run({"-o", "json", "job", "list"});
  ASSERT_EQ(jobs.code, 0) << jobs.err;
  EXPECT_EQ(Json::parse(jobs.out)["jobs"].size(), 1001u);
}

TEST_F(EmsctlTest, Credentials) {
  Result c = Run({"credential", "create"});
  ASSERT_EQ(c.code, 0) << c.err;
  EXPECT_NE(c.out.find("proj-a"), std::string::npos);
  Result s = Run({"-o", "json", "credential", "show"});
  ASSERT_EQ(s.code, 0);
  Json list = Json::parse(s.out);
  ASSERT_EQ(list.size(), 1u);
  EXPECT_NE(c.out.find(list[0]["cdKey"].get<std::string>()), std::string::npos);
  EXPECT_EQ(Run({"credential", "show", "--project", "proj-b"}).code, emsctl::kExitUnavailable)
      << "500 ems.00040003 for another project's path";
}

}  // namespace
}  // namespace ems::controller::testing
