// The reconciler with membership: shrink drains through DRAINING before stopping a node,
// cancel during a drain puts the node back UP, and required registration gates readiness.
#include <string>

#include "controller/api/test_env.h"

namespace ems::controller::testing {
namespace {

class ReconcilerTest : public ControlPlaneTest {
 protected:
  void SetUp() override {
    ControlPlaneTest::SetUp();
    token_ = Token("proj-a");
  }

  void RegisterNode(const std::string& cluster, const std::string& name) {
    v1::NodeInfo n;
    n.set_id(name);
    n.set_address("127.0.0.1:1");
    n.set_capacity_bytes(1 << 20);
    ASSERT_TRUE(membership_->Register(cluster, n).ok());
  }

  v1::NodeState StateOf(const std::string& cluster, const std::string& name) {
    auto map = membership_->GetMap(cluster);
    if (!map.ok()) return v1::NODE_STATE_UNSPECIFIED;
    for (const auto& n : map->nodes()) {
      if (n.id() == name) return n.state();
    }
    return v1::NODE_STATE_UNSPECIFIED;
  }

  template <typename Pred>
  bool Eventually(Pred pred) {
    for (int i = 0; i < 4000; ++i) {
      if (pred()) return true;
      absl::SleepFor(absl::Milliseconds(5));
    }
    return false;
  }

  std::string CreateRunning() {
    Reply r = Call("POST", "/v1/clusters", token_, CreateBody("alpha"));
    const std::string id = r.body["cluster_id"];
    for (int i = 0; i < 3; ++i) RegisterNode(id, "node-" + std::to_string(i));
    EXPECT_EQ(WaitJob(token_, r.body["job_id"])["status"], "COMPLETED");
    return id;
  }

  std::string token_;
};

TEST_F(ReconcilerTest, ShrinkDrainsBeforeStoppingAndForgetsTheNode) {
  const std::string id = CreateRunning();
  RegisterNode(id, "node-3");
  Reply e =
      Call("POST", "/v1/clusters/" + id + "/expand", token_, R"({"node_name_list":["node-3"]})");
  ASSERT_EQ(WaitJob(token_, e.body["job_id"])["status"], "COMPLETED");

  Reply s =
      Call("POST", "/v1/clusters/" + id + "/shrink", token_, R"({"node_name_list":["node-0"]})");
  ASSERT_EQ(s.status, 202);
  const std::string job = s.body["job_id"];
  ASSERT_TRUE(Eventually([&] { return StateOf(id, "node-0") == v1::DRAINING; }));
  EXPECT_TRUE(backend_.Running(id).contains("node-0")) << "a draining node keeps running";
  EXPECT_EQ(Call("GET", "/v1/clusters/" + id, token_).body["cluster_metadata"]["status"],
            "SHRINKING");
  // The reconciler marks the node DRAINING, then reports the step's progress: wait for the
  // report rather than read the job in between (a slow build did).
  Json mid;
  ASSERT_TRUE(Eventually([&] {
    mid = Call("GET", "/v1/jobs/" + job, token_).body;
    return mid["task_list"][0]["message"] == "0/1 nodes drained";
  })) << mid;
  EXPECT_EQ(mid["status"], "RUNNING");
  EXPECT_LT(mid["progress"].get<double>(), 34.0);

  // The node pushed its blocks to their new owners and reports itself done.
  ASSERT_TRUE(membership_->SetNodeState(id, "node-0", v1::DOWN).ok());
  EXPECT_EQ(WaitJob(token_, job)["status"], "COMPLETED");
  EXPECT_EQ(StateOf(id, "node-0"), v1::NODE_STATE_UNSPECIFIED) << "removed from the map";
  EXPECT_EQ(backend_.Running(id), (std::set<std::string>{"node-1", "node-2", "node-3"}));
  EXPECT_EQ(Call("GET", "/v1/clusters/" + id, token_).body["cluster_metadata"]["status"],
            "RUNNING");
}

TEST_F(ReconcilerTest, CancelDuringDrainPutsTheNodeBackUp) {
  const std::string id = CreateRunning();
  RegisterNode(id, "node-3");
  Reply e =
      Call("POST", "/v1/clusters/" + id + "/expand", token_, R"({"node_name_list":["node-3"]})");
  ASSERT_EQ(WaitJob(token_, e.body["job_id"])["status"], "COMPLETED");
  Reply s =
      Call("POST", "/v1/clusters/" + id + "/shrink", token_, R"({"node_name_list":["node-1"]})");
  const std::string job = s.body["job_id"];
  ASSERT_TRUE(Eventually([&] { return StateOf(id, "node-1") == v1::DRAINING; }));
  Reply c = Call("POST", "/v1/jobs/cancel", token_, Json{{"job_ids", Json::array({job})}}.dump());
  EXPECT_EQ(c.body["success_rows"], 1);
  Json done = WaitJob(token_, job);
  EXPECT_EQ(done["status"], "STOPPED") << done;
  EXPECT_EQ(StateOf(id, "node-1"), v1::UP);
  EXPECT_EQ(backend_.Running(id).size(), 4u);
  Json cluster = Call("GET", "/v1/clusters/" + id, token_).body;
  EXPECT_EQ(cluster["cluster_metadata"]["status"], "RUNNING");
  EXPECT_NE(cluster["cluster_metadata"]["reason"].get<std::string>().find("cancelled"),
            std::string::npos);
}

// A shrink of two nodes is cancelled after one of them has drained: that node reported
// itself DOWN and its agent stopped heartbeating (it stays out of the map until its process
// restarts). The rollback put it back UP in the map; it then went silent, was marked DOWN,
// and, its process still alive, no resync ever restarted it: the cluster stayed a node short.
TEST_F(ReconcilerTest, CancelAfterANodeDrainedBringsThatNodeBack) {
  StopAll();
  membership_options_.clock = &clock_;  // the test decides when nodes fall silent
  Start();
  token_ = Token("proj-a");
  Reply r = Call("POST", "/v1/clusters", token_, CreateBody("alpha", 5));
  ASSERT_EQ(r.status, 202) << r.raw;
  const std::string id = r.body["cluster_id"];
  for (int i = 0; i < 5; ++i) RegisterNode(id, "node-" + std::to_string(i));
  ASSERT_EQ(WaitJob(token_, r.body["job_id"])["status"], "COMPLETED");

  Reply s = Call("POST", "/v1/clusters/" + id + "/shrink", token_,
                 R"({"node_name_list":["node-3","node-4"]})");
  ASSERT_EQ(s.status, 202) << s.raw;
  const std::string job = s.body["job_id"];
  ASSERT_TRUE(Eventually([&] {
    return StateOf(id, "node-3") == v1::DRAINING && StateOf(id, "node-4") == v1::DRAINING;
  }));
  // node-3 handed its blocks over and left, as ems-node does (SetState(DOWN) by the node).
  ASSERT_TRUE(membership_->SetNodeState(id, "node-3", v1::DOWN, /*by_node=*/true).ok());
  ASSERT_TRUE(Eventually([&] {
    return Call("GET", "/v1/jobs/" + job, token_).body["task_list"][0]["message"] ==
           "1/2 nodes drained";
  }));
  Reply c = Call("POST", "/v1/jobs/cancel", token_, Json{{"job_ids", Json::array({job})}}.dump());
  ASSERT_EQ(c.body["success_rows"], 1) << c.raw;
  ASSERT_EQ(WaitJob(token_, job)["status"], "STOPPED");

  // Time passes: every node whose agent still runs heartbeats; node-3's left for good.
  clock_.Advance(absl::Seconds(10));
  for (const char* n : {"node-0", "node-1", "node-2", "node-4"}) {
    ASSERT_TRUE(membership_->Heartbeat(id, n, 0).ok()) << n;
  }
  membership_->MarkSilentNodesDown();
  absl::SleepFor(absl::Milliseconds(200));  // ten resync passes
  Json meta = Call("GET", "/v1/clusters/" + id, token_).body["cluster_metadata"];
  EXPECT_EQ(meta["available_node_count"], 5)
      << meta << "; node-3 is " << v1::NodeState_Name(StateOf(id, "node-3"));
  EXPECT_NE(StateOf(id, "node-3"), v1::DOWN) << "a node the cluster lists, left for good";
}

TEST_F(ReconcilerTest, RequiredRegistrationGatesReadiness) {
  StopAll();
  reconciler_options_.require_registration = true;
  Start();
  token_ = Token("proj-a");
  Reply r = Call("POST", "/v1/clusters", token_, CreateBody("alpha"));
  const std::string id = r.body["cluster_id"], job = r.body["job_id"];
  ASSERT_TRUE(Eventually([&] {
    Json j = Call("GET", "/v1/jobs/" + job, token_).body;
    return j["task_list"][3]["message"].get<std::string>().find("0/3 nodes ready") == 0;
  }));
  EXPECT_NE(Call("GET", "/v1/jobs/" + job, token_)
                .body["task_list"][3]["message"]
                .get<std::string>()
                .find("not registered"),
            std::string::npos);
  for (int i = 0; i < 3; ++i) RegisterNode(id, "node-" + std::to_string(i));
  EXPECT_EQ(WaitJob(token_, job)["status"], "COMPLETED");
  Json c = Call("GET", "/v1/clusters/" + id, token_).body;
  EXPECT_EQ(c["cluster_metadata"]["available_node_count"], 3);
}

TEST_F(ReconcilerTest, AvailableNodeCountFollowsMembership) {
  const std::string id = CreateRunning();
  ASSERT_TRUE(membership_->SetNodeState(id, "node-2", v1::DOWN).ok());
  EXPECT_TRUE(Eventually([&] {
    return Call("GET", "/v1/clusters/" + id, token_)
               .body["cluster_metadata"]["available_node_count"] == 2;
  }));
}

}  // namespace
}  // namespace ems::controller::testing
