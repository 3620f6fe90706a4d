// Contract tests of the job, resize, delete and credential APIs, run with the reconciler over
// a FakeBackend; restart persistence.
#include <string>

#include "controller/api/test_env.h"

namespace ems::controller::testing {
namespace {

class JobsTest : public ControlPlaneTest {
 protected:
  void SetUp() override {
    ControlPlaneTest::SetUp();
    token_ = Token("proj-a");
  }

  static void ExpectError(const Reply& r, int status, const std::string& code,
                          const std::string& mentions = "") {
    EXPECT_EQ(r.status, status) << r.raw;
    EXPECT_EQ(r.body.value("error_code", ""), code) << r.raw;
    if (!mentions.empty()) {
      EXPECT_NE(r.body.value("error_msg", "").find(mentions), std::string::npos) << r.raw;
    }
  }

  // Creates a cluster and waits until it is RUNNING; returns its id.
  std::string RunningCluster(const std::string& name, int nodes = 3) {
    Reply r = Call("POST", "/v1/clusters", token_, CreateBody(name, nodes));
    EXPECT_EQ(r.status, 202) << r.raw;
    Json job = WaitJob(token_, r.body["job_id"]);
    EXPECT_EQ(job["status"], "COMPLETED") << job;
    return r.body.value("cluster_id", "");
  }

  Json Show(const std::string& id) { return Call("GET", "/v1/clusters/" + id, token_).body; }

  // Restarts the control plane without a reconciler: jobs stay queued, or a test claims
  // them as a runner would. token_ is a new token of proj-a.
  void RestartWithoutReconciler() {
    StopAll();
    run_reconciler_ = false;
    Start();
    token_ = Token("proj-a");
  }

  static std::string Names(int from, int to) {
    Json list = Json::array();
    for (int i = from; i < to; ++i) list.push_back("node-" + std::to_string(i));
    return Json{{"node_name_list", list}}.dump();
  }

  static std::string Ids(const std::vector<std::string>& ids) {
    return Json{{"job_ids", ids}}.dump();
  }

  std::string token_;
};

TEST_F(JobsTest, CreateJobRunsAllTasksAndClusterBecomesRunning) {
  Reply r = Call("POST", "/v1/clusters", token_, CreateBody("alpha"));
  ASSERT_EQ(r.status, 202);
  const std::string id = r.body["cluster_id"];
  Json job = WaitJob(token_, r.body["job_id"]);
  EXPECT_EQ(job["status"], "COMPLETED");
  EXPECT_EQ(job["name"], "CreateCluster");
  EXPECT_EQ(job["cluster_id"], id);
  EXPECT_DOUBLE_EQ(job["progress"].get<double>(), 100.0);
  ASSERT_EQ(job["task_list"].size(), 5u);
  for (const Json& t : job["task_list"]) {
    EXPECT_EQ(t["status"], "COMPLETED") << t;
    EXPECT_EQ(t["id"].get<std::string>().rfind("short-", 0), 0u);
    EXPECT_LE(t["id"].get<std::string>().size(), 48u);
    const std::string msg = t["message"];
    EXPECT_TRUE(!msg.empty() && msg.size() <= 128) << msg;
  }
  for (const char* f : {"created_at", "begin_at", "end_at"}) EXPECT_TRUE(job.contains(f)) << f;
  Json c = Show(id);
  EXPECT_EQ(c["cluster_metadata"]["status"], "RUNNING");
  EXPECT_EQ(c["cluster_metadata"]["available_node_count"], 3);
  EXPECT_EQ(c["cluster_metadata"]["reason"], "fake backend");
  EXPECT_EQ(backend_.Running(id), (std::set<std::string>{"node-0", "node-1", "node-2"}));
  EXPECT_TRUE(backend_.Prepared(id));
}

TEST_F(JobsTest, ExpandAndShrinkChangeTheNodeSet) {
  const std::string id = RunningCluster("alpha");
  Reply e = Call("POST", "/v1/clusters/" + id + "/expand", token_, Names(3, 4));
  ASSERT_EQ(e.status, 202) << e.raw;
  const std::string ejob = e.body["job_id"];
  EXPECT_EQ(ejob.rfind("long-ems-custom-", 0), 0u);
  EXPECT_EQ(ejob.size(), 48u);
  Json done = WaitJob(token_, ejob);
  EXPECT_EQ(done["status"], "COMPLETED") << done;
  EXPECT_EQ(done["name"], "ExpandCluster");
  Json c = Show(id);
  EXPECT_EQ(c["cluster_metadata"]["status"], "RUNNING");
  EXPECT_EQ(c["cluster_specification"]["k8s_cluster_specification"]["node_count"], 4);
  EXPECT_EQ(backend_.Running(id).size(), 4u);

  Reply s = Call("POST", "/v1/clusters/" + id + "/shrink", token_, Names(0, 1));
  ASSERT_EQ(s.status, 202) << s.raw;
  EXPECT_EQ(WaitJob(token_, s.body["job_id"])["status"], "COMPLETED");
  EXPECT_EQ(backend_.Running(id), (std::set<std::string>{"node-1", "node-2", "node-3"}));
  EXPECT_EQ(Show(id)["cluster_specification"]["k8s_cluster_specification"]["node_count"], 3);

  Reply longs = Call("GET", "/v1/jobs?job_type=long", token_);
  ASSERT_EQ(longs.status, 200);
  ASSERT_EQ(longs.body["jobs"].size(), 2u);
  EXPECT_EQ(longs.body["jobs"][0]["id"], ejob);
  Reply shorts = Call("GET", "/v1/jobs", token_);
  ASSERT_EQ(shorts.body["jobs"].size(), 1u);
  EXPECT_EQ(shorts.body["jobs"][0]["name"], "CreateCluster");
  EXPECT_EQ(Call("GET", "/v1/jobs?job_type=long&limit=1&offset=1", token_).body["jobs"][0]["id"],
            s.body["job_id"]);
  ExpectError(Call("GET", "/v1/jobs?job_type=medium", token_), 400, "EMS.00004000", "job_type");
  ExpectError(Call("GET", "/v1/jobs?limit=0", token_), 400, "common.00000400", "limit");
  ExpectError(Call("GET", "/v1/jobs?offset=-1", token_), 400, "common.00000400", "offset");
}

TEST_F(JobsTest, ResizeBoundaries) {
  const std::string id = RunningCluster("alpha");
  const std::string path = "/v1/clusters/" + id;
  ExpectError(Call("POST", path + "/expand", token_, Names(3, 52)), 400, "common.00000400",
              "[node_name_list].[length]: must be less than or equal to [48]");
  ExpectError(Call("POST", path + "/expand", token_, R"({"node_name_list":[]})"), 400,
              "common.00000400", "node_name_list");
  ExpectError(Call("POST", path + "/expand", token_, R"({})"), 400, "EMS.00004000",
              "node_name_list is required");
  ExpectError(Call("POST", path + "/expand", token_, R"({"node_name_list":["Bad_Name"]})"), 400,
              "EMS.00004000", "node_name_list[0]");
  ExpectError(Call("POST", path + "/expand", token_, R"({"node_name_list":["a","a"]})"), 400,
              "EMS.00004000", "node_name_list[1]");
  ExpectError(Call("POST", path + "/expand", token_, Names(2, 3)), 400, "EMS.00004000",
              "already in the cluster");
  ExpectError(Call("POST", path + "/shrink", token_, Names(7, 8)), 400, "EMS.00004000",
              "not in the cluster");
  ExpectError(Call("POST", path + "/shrink", token_, Names(0, 1)), 400, "common.00000400",
              "[cluster].[node_count]: must be greater than or equal to [3]");
  ExpectError(Call("POST", "/v1/clusters/bad/expand", token_, Names(3, 4)), 400, "EMS.00004000",
              "cluster_id");
  Reply ok48 = Call("POST", path + "/expand", token_, Names(3, 51));
  ASSERT_EQ(ok48.status, 202) << ok48.raw;
  EXPECT_EQ(WaitJob(token_, ok48.body["job_id"])["status"], "COMPLETED");
  EXPECT_EQ(Show(id)["cluster_metadata"]["available_node_count"], 51);
}

TEST_F(JobsTest, ResizeNeedsARunningCluster) {
  RestartWithoutReconciler();
  Reply r = Call("POST", "/v1/clusters", token_, CreateBody("alpha"));
  const std::string id = r.body["cluster_id"];
  ExpectError(Call("POST", "/v1/clusters/" + id + "/expand", token_, Names(3, 4)), 400,
              "ems.00030036", "[CREATING]");
}

TEST_F(JobsTest, ResizeJobsQueuePerClusterAndCancelRollsBack) {
  const std::string id = RunningCluster("alpha");
  backend_.HoldReady(true);  // the expand waits in "wait for nodes ready"
  const std::string path = "/v1/clusters/" + id;
  Reply first = Call("POST", path + "/expand", token_, Names(3, 4));
  Reply second = Call("POST", path + "/expand", token_, Names(4, 5));
  ASSERT_EQ(first.status, 202);
  ASSERT_EQ(second.status, 202);
  const std::string a = first.body["job_id"], b = second.body["job_id"];
  for (int i = 0; i < 2000; ++i) {
    if (Call("GET", "/v1/jobs/" + a, token_).body["status"] == "RUNNING" &&
        Show(id)["cluster_metadata"]["status"] == "EXPANDING") {
      break;
    }
    absl::SleepFor(absl::Milliseconds(5));
  }
  EXPECT_EQ(Show(id)["cluster_metadata"]["status"], "EXPANDING");
  EXPECT_EQ(Call("GET", "/v1/jobs/" + b, token_).body["status"], "INIT") << "queued behind a";
  // The second expand was validated against the node set after the first.
  ExpectError(Call("POST", path + "/expand", token_, Names(4, 5)), 400, "EMS.00004000",
              "already in the cluster");

  Reply cancel = Call("POST", "/v1/jobs/cancel", token_, Ids({a}));
  ASSERT_EQ(cancel.status, 200) << cancel.raw;
  EXPECT_EQ(cancel.body["success_rows"], 1);
  EXPECT_EQ(cancel.body["failed_rows"], 0);
  EXPECT_EQ(cancel.body["failed_ids"].size(), 0u);
  backend_.HoldReady(false);
  Json stopped = WaitJob(token_, a);
  EXPECT_EQ(stopped["status"], "STOPPED") << stopped;
  Json completed = WaitJob(token_, b);
  EXPECT_EQ(completed["status"], "COMPLETED") << completed;
  EXPECT_EQ(backend_.Running(id), (std::set<std::string>{"node-0", "node-1", "node-2", "node-4"}))
      << "the cancelled expand's node-3 was stopped";
  Json c = Show(id);
  EXPECT_EQ(c["cluster_metadata"]["status"], "RUNNING");
  EXPECT_EQ(c["cluster_specification"]["k8s_cluster_specification"]["node_count"], 4);
}

TEST_F(JobsTest, AFailedExpandStopsTheNodesItStarted) {
  // Only a cancelled expand was undone: a failed one left the nodes it had started running,
  // in no cluster's list, until the cluster was deleted.
  StopAll();
  reconciler_options_.ready_timeout = absl::Milliseconds(300);
  Start();
  token_ = Token("proj-a");
  const std::string id = RunningCluster("alpha");
  backend_.SetUnstartable("node-4");  // node-3 starts, node-4 never does
  Reply r = Call("POST", "/v1/clusters/" + id + "/expand", token_, Names(3, 5));
  ASSERT_EQ(r.status, 202) << r.raw;
  Json failed = WaitJob(token_, r.body["job_id"]);
  EXPECT_EQ(failed["status"], "FAILED") << failed;
  EXPECT_EQ(backend_.Running(id), (std::set<std::string>{"node-0", "node-1", "node-2"}));
  EXPECT_EQ(Show(id)["cluster_specification"]["k8s_cluster_specification"]["node_count"], 3);
}

TEST_F(JobsTest, NodesRunningOutsideTheClusterAreStoppedOnceNoJobIsOpen) {
  // What an expand whose undo failed (or a controller that died in between) leaves behind.
  const std::string id = RunningCluster("alpha");
  Cluster c;
  c.id = id;
  backend_.FailStartedNodes(true);  // cannot be listed: nothing is stopped on a guess
  ASSERT_TRUE(backend_.StartNodes(c, {"node-7"}).ok());
  absl::SleepFor(absl::Milliseconds(100));  // five resync passes
  EXPECT_TRUE(backend_.Running(id).contains("node-7"));
  backend_.FailStartedNodes(false);
  for (int i = 0; i < 2000 && backend_.Running(id).contains("node-7"); ++i) {
    absl::SleepFor(absl::Milliseconds(5));
  }
  EXPECT_EQ(backend_.Running(id), (std::set<std::string>{"node-0", "node-1", "node-2"}));
}

TEST_F(JobsTest, AShrinkQueuedBehindAnExpandThatDidNotRunIsCheckedAgain) {
  // The shrink was accepted against 5 nodes (3 + the expand's 2); with the expand cancelled
  // it would have left 1, under the minimum of 3.
  const std::string id = RunningCluster("alpha");
  backend_.HoldReady(true);
  const std::string path = "/v1/clusters/" + id;
  Reply expand = Call("POST", path + "/expand", token_, Names(3, 5));
  Reply shrink = Call("POST", path + "/shrink", token_, Names(0, 2));
  ASSERT_EQ(expand.status, 202) << expand.raw;
  ASSERT_EQ(shrink.status, 202) << shrink.raw;
  ASSERT_EQ(Call("POST", "/v1/jobs/cancel", token_, Ids({expand.body["job_id"]})).status, 200);
  backend_.HoldReady(false);
  EXPECT_EQ(WaitJob(token_, expand.body["job_id"])["status"], "STOPPED");
  Json refused = WaitJob(token_, shrink.body["job_id"]);
  EXPECT_EQ(refused["status"], "FAILED") << refused;
  EXPECT_NE(refused.dump().find("leaves fewer than 3"), std::string::npos) << refused;
  EXPECT_EQ(backend_.Running(id), (std::set<std::string>{"node-0", "node-1", "node-2"}));
}

// A runner claims a job before it marks it RUNNING. A cancel in between used to mark the job
// STOPPED while the runner went on to run all its steps; now it asks the runner to stop.
TEST_F(JobsTest, ACancelOfAClaimedJobThatHasNotStartedIsLeftToItsRunner) {
  const std::string id = RunningCluster("alpha");
  RestartWithoutReconciler();  // this test claims the job as a runner would
  Reply expand = Call("POST", "/v1/clusters/" + id + "/expand", token_, Names(3, 5));
  ASSERT_EQ(expand.status, 202) << expand.raw;
  const std::string job = expand.body["job_id"];
  std::vector<Job> claimed = registry_->ClaimRunnableJobs();
  ASSERT_EQ(claimed.size(), 1u);
  ASSERT_EQ(claimed[0].id, job);
  ASSERT_EQ(claimed[0].status, kJobInit);
  Reply r = Call("POST", "/v1/jobs/cancel", token_, Ids({job}));
  ASSERT_EQ(r.status, 200) << r.raw;
  EXPECT_EQ(r.body["success_rows"], 1) << r.raw;
  auto after = registry_->GetJobById(job);
  ASSERT_TRUE(after.ok()) << after.status();
  EXPECT_EQ(after->status, kJobInit) << "the runner holding it must see the cancel, not a "
                                        "job that is already over";
  EXPECT_TRUE(after->cancel_requested);
  // Once released unstarted, a reconciler runs it, sees the cancel at its first step, and
  // stops it with nothing started.
  registry_->ReleaseJob(job);
  StopAll();
  run_reconciler_ = true;
  Start();
  EXPECT_EQ(WaitJob(token_, job)["status"], "STOPPED");
  EXPECT_EQ(backend_.Running(id), (std::set<std::string>{"node-0", "node-1", "node-2"}));
}

// A delete stops the resizes queued behind it like a cancel does: a queued one at once, tasks
// and all; one a runner has claimed is left to the runner, which sees the cancel.
TEST_F(JobsTest, ADeleteStopsQueuedResizesLikeACancel) {
  const std::string id = RunningCluster("alpha");
  RestartWithoutReconciler();  // this test claims a job as a runner would
  Reply claimed_expand = Call("POST", "/v1/clusters/" + id + "/expand", token_, Names(3, 4));
  ASSERT_EQ(claimed_expand.status, 202) << claimed_expand.raw;
  std::vector<Job> claimed = registry_->ClaimRunnableJobs();
  ASSERT_EQ(claimed.size(), 1u);
  Reply queued = Call("POST", "/v1/clusters/" + id + "/expand", token_, Names(4, 5));
  ASSERT_EQ(queued.status, 202) << queued.raw;
  ASSERT_EQ(Call("DELETE", "/v1/clusters/" + id, token_).status, 202);

  Json q = Call("GET", "/v1/jobs/" + queued.body["job_id"].get<std::string>(), token_).body;
  EXPECT_EQ(q["status"], "STOPPED") << q;
  for (const Json& t : q["task_list"]) EXPECT_EQ(t["status"], "STOPPED") << q;
  auto c = registry_->GetJobById(claimed[0].id);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->status, kJobInit) << "the runner holding it must see the cancel, not a job "
                                    "that is already over";
  EXPECT_TRUE(c->cancel_requested);
}

TEST_F(JobsTest, CancelJobsContract) {
  const std::string id = RunningCluster("alpha");
  RestartWithoutReconciler();  // jobs stay queued
  Reply queued = Call("POST", "/v1/clusters/" + id + "/expand", token_, Names(3, 4));
  const std::string q = queued.body["job_id"];
  const std::string create = Call("GET", "/v1/jobs", token_).body["jobs"][0]["id"];

  ExpectError(Call("POST", "/v1/jobs/cancel", token_, Ids({create})), 403, "ems.00030035",
              "only expand and shrink jobs can be cancelled");
  Reply r = Call("POST", "/v1/jobs/cancel", Token("proj-b"), Ids({q}));
  ASSERT_EQ(r.status, 200);
  EXPECT_EQ(r.body["failed_ids"], Json::array({q})) << "another project's job";
  r = Call("POST", "/v1/jobs/cancel", token_, Ids({q, "long-ems-custom-0000"}));
  ASSERT_EQ(r.status, 200) << r.raw;
  EXPECT_EQ(r.body["success_rows"], 1);
  EXPECT_EQ(r.body["failed_rows"], 1);
  EXPECT_EQ(r.body["failed_ids"], Json::array({"long-ems-custom-0000"}));
  EXPECT_EQ(Call("GET", "/v1/jobs/" + q, token_).body["status"], "STOPPED");
  // A finished job cannot be cancelled again.
  r = Call("POST", "/v1/jobs/cancel", token_, Ids({q}));
  EXPECT_EQ(r.body["failed_ids"], Json::array({q}));

  // A shrink that already stops nodes cannot be undone.
  ASSERT_EQ(Call("POST", "/v1/clusters/" + id + "/expand", token_, Names(3, 4)).status, 202);
  Reply shrink = Call("POST", "/v1/clusters/" + id + "/shrink", token_, Names(0, 1));
  ASSERT_EQ(shrink.status, 202) << shrink.raw;
  const std::string sj = shrink.body["job_id"];
  ASSERT_TRUE(registry_
                  ->MutateJob(sj,
                              [](Job& j) {
                                j.status = kJobRunning;
                                j.step = 1;
                              })
                  .ok());
  r = Call("POST", "/v1/jobs/cancel", token_, Ids({sj}));
  EXPECT_EQ(r.body["failed_ids"], Json::array({sj})) << r.raw;

  ExpectError(Call("POST", "/v1/jobs/cancel", token_, R"({"job_ids":["abc"]})"), 400,
              "EMS.00004000", "job_ids[0]");
  ExpectError(Call("POST", "/v1/jobs/cancel", token_, R"({"job_ids":[]})"), 400, "common.00000400",
              "job_ids");
  ExpectError(Call("POST", "/v1/jobs/cancel", token_, R"({"ids":[]})"), 400, "EMS.00004000",
              "job_ids is required");
  Json many = Json::array();
  for (int i = 0; i < 101; ++i) many.push_back("short-" + std::to_string(i));
  ExpectError(Call("POST", "/v1/jobs/cancel", token_, Json{{"job_ids", many}}.dump()), 400,
              "common.00000400", "[job_ids].[length]: must be less than or equal to [100]");
  ExpectError(Call("POST", "/v1/jobs/cancel", token_, Ids({"short-" + std::string(43, 'a')})), 400,
              "EMS.00004000", "job_ids[0]");
}

TEST_F(JobsTest, ShowJobContract) {
  Reply r = Call("POST", "/v1/clusters", token_, CreateBody("alpha"));
  const std::string job = r.body["job_id"];
  EXPECT_EQ(Call("GET", "/v1/jobs/" + job, token_).status, 200);
  ExpectError(Call("GET", "/v1/jobs/" + job, Token("proj-b")), 404, "ems.00030006", job);
  ExpectError(Call("GET", "/v1/jobs/short-unknown", token_), 404, "ems.00030006");
  ExpectError(Call("GET", "/v1/jobs/abc", token_), 400, "EMS.00004000", "job_id");
  EXPECT_EQ(Call("GET", "/v1/jobs", Token("proj-b")).body["jobs"].size(), 0u);
}

TEST_F(JobsTest, DeleteClusterContract) {
  const std::string id = RunningCluster("alpha");
  Reply d = Call("DELETE", "/v1/clusters/" + id, token_);
  ASSERT_EQ(d.status, 202) << d.raw;
  const std::string job = d.body["job_id"];
  EXPECT_EQ(job.rfind("short-", 0), 0u);
  Json done = WaitJob(token_, job);
  EXPECT_EQ(done["status"], "COMPLETED") << done;
  EXPECT_EQ(done["name"], "DeleteCluster");
  Json c = Show(id);
  EXPECT_EQ(c["cluster_metadata"]["status"], "DELETED");
  EXPECT_EQ(c["cluster_metadata"]["available_node_count"], 0);
  EXPECT_TRUE(backend_.Running(id).empty());
  EXPECT_FALSE(backend_.Prepared(id));
  ExpectError(Call("DELETE", "/v1/clusters/" + id, token_), 400, "ems.00030034", "[DELETED]");
  ExpectError(Call("POST", "/v1/clusters/" + id + "/expand", token_, Names(3, 4)), 400,
              "ems.00030036", "[DELETED]");
  ExpectError(Call("DELETE", "/v1/clusters/nope", token_), 400, "EMS.00004000", "cluster_id");
  // The name is free again once the cluster is DELETED.
  EXPECT_EQ(Call("POST", "/v1/clusters", token_, CreateBody("alpha")).status, 202);
}

TEST_F(JobsTest, DeleteOvertakesARunningCreate) {
  backend_.HoldReady(true);  // the create job waits for its nodes
  Reply r = Call("POST", "/v1/clusters", token_, CreateBody("alpha"));
  const std::string id = r.body["cluster_id"], create = r.body["job_id"];
  for (int i = 0; i < 2000 && backend_.Running(id).size() < 3; ++i) {
    absl::SleepFor(absl::Milliseconds(5));
  }
  ASSERT_EQ(backend_.Running(id).size(), 3u);
  Reply d = Call("DELETE", "/v1/clusters/" + id, token_);
  ASSERT_EQ(d.status, 202) << d.raw;
  EXPECT_EQ(WaitJob(token_, create)["status"], "STOPPED");
  EXPECT_EQ(WaitJob(token_, d.body["job_id"])["status"], "COMPLETED");
  EXPECT_EQ(Show(id)["cluster_metadata"]["status"], "DELETED");
  EXPECT_TRUE(backend_.Running(id).empty()) << "the nodes the create started are stopped";
}

TEST_F(JobsTest, DeleteWhileDeletingIsRejected) {
  RestartWithoutReconciler();
  Reply r = Call("POST", "/v1/clusters", token_, CreateBody("alpha"));
  const std::string id = r.body["cluster_id"];
  ASSERT_EQ(Call("DELETE", "/v1/clusters/" + id, token_).status, 202);
  EXPECT_EQ(Show(id)["cluster_metadata"]["status"], "DELETING");
  ExpectError(Call("DELETE", "/v1/clusters/" + id, token_), 400, "ems.00030034", "[DELETING]");
}

TEST_F(JobsTest, ANewCredentialIsHandedToTheProjectsRunningClusters) {
  const std::string id = RunningCluster("alpha");
  EXPECT_EQ(backend_.credential_refreshes(id), 0);
  ASSERT_EQ(Call("POST", "/v1/ems/proj-a/credentials", token_).status, 200);
  EXPECT_EQ(backend_.credential_refreshes(id), 1) << "its nodes must take the key now";
  // Another project's credential is not this cluster's business.
  ASSERT_EQ(Call("POST", "/v1/ems/proj-b/credentials", Token("proj-b")).status, 200);
  EXPECT_EQ(backend_.credential_refreshes(id), 1);
}

TEST_F(JobsTest, CredentialsContract) {
  Reply c = Call("POST", "/v1/ems/proj-a/credentials", token_);
  ASSERT_EQ(c.status, 200) << c.raw;
  EXPECT_EQ(c.body["projectId"], "proj-a");
  const std::string key = c.body["cdKey"];
  EXPECT_EQ(key.size(), 32u);
  EXPECT_TRUE(std::all_of(key.begin(), key.end(), ::isalnum));
  EXPECT_EQ(c.body["createAt"], absl::ToUnixMillis(clock_.Now()));
  Reply list = Call("GET", "/v1/ems/proj-a/credentials", token_);
  ASSERT_EQ(list.status, 200);
  ASSERT_TRUE(list.body.is_array());
  ASSERT_EQ(list.body.size(), 1u);
  EXPECT_EQ(list.body[0]["cdKey"], key);
  EXPECT_TRUE(credentials_->Verify("proj-a", key));
  EXPECT_FALSE(credentials_->Verify("proj-b", key));
  ExpectError(Call("GET", "/v1/ems/proj-b/credentials", token_), 500, "ems.00040003");
  ExpectError(Call("POST", "/v1/ems/proj-b/credentials", token_), 500, "ems.00040003");
  ExpectError(Call("GET", "/v1/ems/Proj_A/credentials", token_), 400, "EMS.00004000", "project_id");
  EXPECT_EQ(Call("GET", "/v1/ems/proj-b/credentials", Token("proj-b")).body.size(), 0u);
}

// Nodes take the project's first cdKey (CredentialStore::List()[0]); creating another must not
// change which one that is, or every client holding the first is refused. Keys created in the
// same millisecond were ordered by their random digits, and a wall clock stepped back (NTP) put
// a new key before the old ones.
TEST_F(JobsTest, ANewCredentialDoesNotDisplaceTheFirst) {
  const std::string first = Call("POST", "/v1/ems/proj-a/credentials", token_).body["cdKey"];
  clock_.Advance(absl::Seconds(-1));  // the wall clock steps back
  const std::string second = Call("POST", "/v1/ems/proj-a/credentials", token_).body["cdKey"];
  Reply list = Call("GET", "/v1/ems/proj-a/credentials", token_);
  ASSERT_EQ(list.body.size(), 2u) << list.raw;
  EXPECT_EQ(list.body[0]["cdKey"], first) << list.raw;
  EXPECT_EQ(list.body[1]["cdKey"], second) << list.raw;
  // Same millisecond (the fake clock stands still): 15 more keys, in several projects.
  for (const std::string project : {"proj-b", "proj-c", "proj-d"}) {
    const std::string token = Token(project);
    const std::string path = "/v1/ems/" + project + "/credentials";
    const std::string key = Call("POST", path, token).body["cdKey"];
    for (int i = 0; i < 15; ++i) ASSERT_EQ(Call("POST", path, token).status, 200);
    auto all = credentials_->List(project);
    ASSERT_TRUE(all.ok()) << all.status();
    ASSERT_EQ(all->size(), 16u);
    EXPECT_EQ((*all)[0].cd_key, key) << project << ": the nodes' key changed";
  }
}

TEST_F(JobsTest, AcknowledgedStateSurvivesARestartAndQueuedJobsResume) {
  RestartWithoutReconciler();
  Reply r = Call("POST", "/v1/clusters", token_, CreateBody("alpha"));
  ASSERT_EQ(r.status, 202);
  Reply cred = Call("POST", "/v1/ems/proj-a/credentials", token_);
  run_reconciler_ = true;
  Restart();
  // Token, cluster, job and credential are all back; the queued create job now runs.
  Json job = WaitJob(token_, r.body["job_id"]);
  EXPECT_EQ(job["status"], "COMPLETED") << job;
  EXPECT_EQ(Show(r.body["cluster_id"])["cluster_metadata"]["status"], "RUNNING");
  EXPECT_EQ(Call("GET", "/v1/ems/proj-a/credentials", token_).body[0]["cdKey"], cred.body["cdKey"]);
}

TEST_F(JobsTest, RunningJobResumesAtItsStepAfterRestart) {
  backend_.HoldReady(true);
  Reply r = Call("POST", "/v1/clusters", token_, CreateBody("alpha"));
  const std::string job = r.body["job_id"];
  for (int i = 0; i < 2000; ++i) {
    Json j = Call("GET", "/v1/jobs/" + job, token_).body;
    if (j["task_list"][3]["status"] == "RUNNING") break;
    absl::SleepFor(absl::Milliseconds(5));
  }
  Restart();  // the runner stops mid-wait; the job stays RUNNING at step 3
  EXPECT_EQ(Call("GET", "/v1/jobs/" + job, token_).body["status"], "RUNNING");
  backend_.HoldReady(false);
  EXPECT_EQ(WaitJob(token_, job)["status"], "COMPLETED");
  EXPECT_EQ(backend_.starts(), 3) << "steps already done are not redone";
}

TEST_F(JobsTest, FailedCreateLeavesReasonAndCanBeDeleted) {
  StopAll();
  reconciler_options_.ready_timeout = absl::Milliseconds(50);
  Start();
  token_ = Token("proj-a");
  backend_.HoldReady(true);
  Reply r = Call("POST", "/v1/clusters", token_, CreateBody("alpha"));
  Json job = WaitJob(token_, r.body["job_id"]);
  EXPECT_EQ(job["status"], "FAILED");
  EXPECT_EQ(job["message"], "ems.00030002");
  EXPECT_EQ(job["task_list"][3]["status"], "FAILED");
  EXPECT_NE(job["task_list"][3]["message"].get<std::string>().find("0 of 3 nodes ready"),
            std::string::npos)
      << job;
  Json c = Show(r.body["cluster_id"]);
  EXPECT_EQ(c["cluster_metadata"]["status"], "CREATING");
  EXPECT_NE(c["cluster_metadata"]["reason"].get<std::string>().find("failed"), std::string::npos);
  backend_.HoldReady(false);
  Reply d = Call("DELETE", "/v1/clusters/" + r.body["cluster_id"].get<std::string>(), token_);
  ASSERT_EQ(d.status, 202);
  EXPECT_EQ(WaitJob(token_, d.body["job_id"])["status"], "COMPLETED");
}

TEST_F(JobsTest, ResyncRestartsDeadNodes) {
  const std::string id = RunningCluster("alpha");
  const int starts = backend_.starts();
  backend_.Kill(id, "node-1");
  for (int i = 0; i < 2000 && backend_.Running(id).size() < 3; ++i) {
    absl::SleepFor(absl::Milliseconds(5));
  }
  EXPECT_EQ(backend_.Running(id).size(), 3u);
  EXPECT_EQ(backend_.starts(), starts + 1);
}

}  // namespace
}  // namespace ems::controller::testing
