// End to end on the local backend, with the real binaries: ems-controller (REST + membership +
// reconciler) starts ems-node processes; ems::Client stores and reads KV blocks over the
// cluster map. Create 3 nodes -> expand to 4 -> shrink to 3 -> delete, verifying every byte
// read at each step; and a SIGKILLed controller resumes its in-flight job.
#include <grpcpp/grpcpp.h>
#include <httplib.h>
#include <signal.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <set>

#include "client/client.h"
#include "common/cluster_view.h"
#include "controller/api/json_util.h"
#include "controller/e2e/controller_process.h"
#include "ems/v1/data.pb.h"
#include "ems/v1/membership.grpc.pb.h"
#include "gtest/gtest.h"

namespace ems::controller::testing {
namespace {

namespace fs = std::filesystem;

constexpr size_t kValueBytes = 4096;

BlockKey KeyOf(int i) {
  std::string raw(16, '\0');
  for (int b = 0; b < 16; ++b) raw[b] = static_cast<char>((i * 131 + b * 29 + (i >> 3)) & 0xff);
  raw[0] = static_cast<char>(i & 0xff);
  raw[1] = static_cast<char>((i >> 8) & 0xff);
  return BlockKey{"e2e/model", *Digest::FromBytes(raw)};
}

std::vector<uint8_t> ValueOf(int i) {
  std::vector<uint8_t> v(kValueBytes);
  for (size_t b = 0; b < v.size(); ++b) v[b] = static_cast<uint8_t>((i * 7919 + b * 31) >> 3);
  return v;
}

class LocalLifecycleTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!fs::exists(node_binary_)) GTEST_SKIP() << "no ems-node at " << node_binary_;
    dir_ = fs::temp_directory_path() /
           ("ems_e2e_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    StartController();
  }

  void TearDown() override {
    controller_.Stop(SIGKILL);
    // Nodes outlive a controller on purpose: end whatever a failed test left running.
    std::error_code ec;
    for (const auto& pidfile : fs::recursive_directory_iterator(dir_ / "state" / "local", ec)) {
      if (pidfile.path().filename() != "pid") continue;
      int pid = 0;
      std::ifstream(pidfile.path()) >> pid;
      if (pid > 0) kill(pid, SIGKILL);
    }
    fs::remove_all(dir_, ec);
  }

  // `membership` "" picks a free port; a restart passes the previous address, as a real
  // deployment's fixed port would, so the running nodes find the new controller.
  void StartController(const std::string& membership = "127.0.0.1:0") {
    ASSERT_TRUE(
        controller_.Start(std::string(EMS_BIN_DIR) + "/ems-controller",
                          {"--listen=127.0.0.1:0", "--membership_listen=" + membership,
                           "--state_dir=" + (dir_ / "state").string(), "--backend=local",
                           "--local_node_memory_cap_mb=16", "--ems_node_binary=" + node_binary_,
                           "--heartbeat_ms=500", "--drain_timeout_s=60", "--ready_timeout_s=60"},
                          (dir_ / "controller.log").string()))
        << "controller did not start; see " << (dir_ / "controller.log");
    http_ = std::make_unique<httplib::Client>("127.0.0.1", controller_.rest_port());
    http_->set_read_timeout(30);
  }

  Json Call(const std::string& method, const std::string& path, const std::string& body = "") {
    httplib::Headers h = {{"X-Auth-Token", token_}};
    auto r = method == "GET"    ? http_->Get(path.c_str(), h)
             : method == "POST" ? http_->Post(path.c_str(), h, body, "application/json")
                                : http_->Delete(path.c_str(), h);
    if (!r) {
      ADD_FAILURE() << method << " " << path << ": no answer";
      return Json();
    }
    last_status_ = r->status;
    return Json::parse(r->body.empty() ? "{}" : r->body, nullptr, false);
  }

  std::string NewToken() {
    auto r = http_->Post("/v1/tokens", R"({"project_id":"e2e"})", "application/json");
    EXPECT_TRUE(r && r->status == 201);
    return r ? Json::parse(r->body)["token"].get<std::string>() : "";
  }

  Json WaitJob(const std::string& id) {
    for (int i = 0; i < 1200; ++i) {
      Json j = Call("GET", "/v1/jobs/" + id);
      const std::string s = j.value("status", "");
      if (s == "COMPLETED" || s == "FAILED" || s == "STOPPED") return j;
      absl::SleepFor(absl::Milliseconds(100));
    }
    ADD_FAILURE() << "job " << id << " did not finish";
    return Json();
  }

  v1::ClusterMap Map(const std::string& cluster) {
    auto stub = v1::Membership::NewStub(
        grpc::CreateChannel(controller_.membership(), grpc::InsecureChannelCredentials()));
    grpc::ClientContext ctx;
    v1::GetClusterMapRequest req;
    req.set_cluster(cluster);
    v1::ClusterMap map;
    EXPECT_TRUE(stub->GetClusterMap(&ctx, req, &map).ok());
    return map;
  }

  // Waits until the cluster map lists exactly `n` nodes, all UP.
  v1::ClusterMap WaitMap(const std::string& cluster, int n) {
    v1::ClusterMap map;
    for (int i = 0; i < 300; ++i) {
      map = Map(cluster);
      int up = 0;
      for (const auto& node : map.nodes()) up += node.state() == v1::UP;
      if (map.nodes_size() == n && up == n) return map;
      absl::SleepFor(absl::Milliseconds(100));
    }
    ADD_FAILURE() << "map never had " << n << " UP nodes: " << map.DebugString();
    return map;
  }

  std::unique_ptr<Client> ClusterClient(const std::string& cluster,
                                        const std::string& cd_key = "") {
    auto c = Client::Connect({.controller = controller_.membership(),
                              .cluster = cluster,
                              .cd_key = cd_key,
                              .use_local = false});
    EXPECT_TRUE(c.ok()) << c.status();
    return c.ok() ? *std::move(c) : nullptr;
  }

  void PutAll(Client& c, int from, int to) {
    std::vector<std::vector<uint8_t>> values;
    std::vector<PutItem> items;
    for (int i = from; i < to; ++i) values.push_back(ValueOf(i));
    for (int i = from; i < to; ++i) items.push_back({KeyOf(i), values[i - from]});
    std::vector<absl::Status> st = c.BatchPut(items);
    for (size_t i = 0; i < st.size(); ++i) ASSERT_TRUE(st[i].ok()) << from + i << ": " << st[i];
  }

  // Reads keys [from, to): returns which were found; fails on any wrong byte or error other
  // than NOT_FOUND.
  std::set<int> ReadAll(Client& c, int from, int to) {
    std::vector<std::vector<uint8_t>> bufs(to - from, std::vector<uint8_t>(kValueBytes));
    std::vector<GetItem> items;
    for (int i = from; i < to; ++i) items.push_back({KeyOf(i), absl::MakeSpan(bufs[i - from])});
    std::set<int> found;
    auto got = c.BatchGet(items);
    for (int i = from; i < to; ++i) {
      const auto& r = got[i - from];
      if (!r.ok()) {
        EXPECT_TRUE(absl::IsNotFound(r.status())) << i << ": " << r.status();
        continue;
      }
      EXPECT_EQ(*r, kValueBytes);
      EXPECT_TRUE(bufs[i - from] == ValueOf(i)) << "block " << i << " read back wrong bytes";
      found.insert(i);
    }
    return found;
  }

  uint64_t NodeKeys(const v1::NodeInfo& node) {
    auto c = Client::Connect({.address = node.address(), .use_local = false});
    EXPECT_TRUE(c.ok()) << c.status();
    auto stats = (*c)->Stats();
    EXPECT_TRUE(stats.ok()) << stats.status();
    return stats.ok() ? stats->keys() : 0;
  }

  static std::string OwnerOf(const v1::ClusterMap& map, int i) {
    auto view = ClusterView::Build(map);
    auto owners = (*view)->WriteOwners(KeyOf(i));
    return owners.empty() ? "" : owners[0]->id();
  }

  const std::string node_binary_ = std::string(EMS_BIN_DIR) + "/ems-node";
  fs::path dir_;
  ControllerProcess controller_;
  std::unique_ptr<httplib::Client> http_;
  std::string token_;
  int last_status_ = 0;
};

TEST_F(LocalLifecycleTest, CreateExpandShrinkDeleteWithVerifiedData) {
  token_ = NewToken();
  Json body = {{"name", "e2e-cache"},
               {"k8s_cluster_specification",
                {{"k8s_cluster_id", "0b0e7e4a-4a9e-4c1e-9a57-1c2d3e4f5a6b"}, {"node_count", 3}}}};
  Json created = Call("POST", "/v1/clusters", body.dump());
  ASSERT_EQ(last_status_, 202) << created;
  const std::string id = created["cluster_id"];
  ASSERT_EQ(WaitJob(created["job_id"])["status"], "COMPLETED");
  Json show = Call("GET", "/v1/clusters/" + id);
  EXPECT_EQ(show["cluster_metadata"]["status"], "RUNNING");
  EXPECT_EQ(show["cluster_metadata"]["available_node_count"], 3);
  EXPECT_NE(show["cluster_metadata"]["reason"].get<std::string>().find("capped at 16 MB"),
            std::string::npos)
      << show;

  // 3 nodes, all serving data.
  v1::ClusterMap map3 = WaitMap(id, 3);
  auto client = ClusterClient(id);
  ASSERT_NE(client, nullptr);
  PutAll(*client, 0, 150);
  EXPECT_EQ(ReadAll(*client, 0, 150).size(), 150u);
  for (const auto& n : map3.nodes()) EXPECT_GT(NodeKeys(n), 0u) << n.id();

  // Expand to 4: blocks whose owner did not change stay readable; the new node serves.
  Json expand = Call("POST", "/v1/clusters/" + id + "/expand", R"({"node_name_list":["local-3"]})");
  ASSERT_EQ(last_status_, 202) << expand;
  ASSERT_EQ(WaitJob(expand["job_id"])["status"], "COMPLETED");
  // Live figure (backend + membership): give slow (sanitizer) runs a few resyncs.
  for (int i = 0; i < 100 && Call("GET", "/v1/clusters/" +
                                             id)["cluster_metadata"]["available_node_count"] != 4;
       ++i) {
    absl::SleepFor(absl::Milliseconds(100));
  }
  EXPECT_EQ(Call("GET", "/v1/clusters/" + id)["cluster_metadata"]["available_node_count"], 4);
  v1::ClusterMap map4 = WaitMap(id, 4);
  client = ClusterClient(id);
  std::set<int> found = ReadAll(*client, 0, 150);
  int moved = 0;
  for (int i = 0; i < 150; ++i) {
    if (OwnerOf(map3, i) == OwnerOf(map4, i)) {
      EXPECT_TRUE(found.contains(i)) << "block " << i << " did not move but is gone";
    } else {
      ++moved;
    }
  }
  EXPECT_GT(moved, 0) << "local-3 owns part of the ring";
  // The new node receives the ranges it now owns: soon every block is readable again.
  for (int i = 0; i < 150 && found.size() < 150; ++i) {
    absl::SleepFor(absl::Milliseconds(100));
    found = ReadAll(*client, 0, 150);
  }
  EXPECT_EQ(found.size(), 150u) << "blocks that moved to local-3 never arrived";
  PutAll(*client, 150, 300);
  EXPECT_EQ(ReadAll(*client, 150, 300).size(), 150u);
  for (const auto& n : map4.nodes()) EXPECT_GT(NodeKeys(n), 0u) << n.id();

  // Shrink to 3: local-0 drains (pushes its blocks to their next owners), then leaves.
  std::set<int> present = ReadAll(*client, 0, 300);
  Json shrink = Call("POST", "/v1/clusters/" + id + "/shrink", R"({"node_name_list":["local-0"]})");
  ASSERT_EQ(last_status_, 202) << shrink;
  Json shrunk = WaitJob(shrink["job_id"]);
  ASSERT_EQ(shrunk["status"], "COMPLETED");
  EXPECT_EQ(shrunk["task_list"][0]["message"], "1/1 nodes drained") << shrunk;
  v1::ClusterMap map3b = WaitMap(id, 3);
  for (const auto& n : map3b.nodes()) EXPECT_NE(n.id(), "local-0");
  client = ClusterClient(id);
  found = ReadAll(*client, 0, 300);
  // local-0 pushed its blocks to their new owners before it left: nothing is lost.
  EXPECT_EQ(present.size(), 300u);
  for (int i : present) {
    EXPECT_TRUE(found.contains(i))
        << "block " << i
        << (OwnerOf(map4, i) == "local-0" ? " was not drained from local-0"
                                          : " was not on local-0 but is gone");
  }
  PutAll(*client, 300, 400);
  EXPECT_EQ(ReadAll(*client, 300, 400).size(), 100u);

  // Delete: every node process ends and the cluster is DELETED.
  client.reset();
  Json del = Call("DELETE", "/v1/clusters/" + id);
  ASSERT_EQ(last_status_, 202) << del;
  ASSERT_EQ(WaitJob(del["job_id"])["status"], "COMPLETED");
  EXPECT_EQ(Call("GET", "/v1/clusters/" + id)["cluster_metadata"]["status"], "DELETED");
  EXPECT_FALSE(fs::exists(dir_ / "state" / "local" / id));
  EXPECT_EQ(Map(id).nodes_size(), 0);
}

// One controller per state and per port. A second one given the running one's --state_dir
// ran the same clusters' jobs against it; one given its --listen or --membership_listen shared
// the port (gRPC and httplib set SO_REUSEPORT), so calls reached either controller.
TEST_F(LocalLifecycleTest, ASecondControllerOnTheSameStateOrPortsIsRefused) {
  const std::string rest = "127.0.0.1:" + std::to_string(controller_.rest_port());
  struct Case {
    std::string what, listen, membership, state, log_says;
  };
  const Case cases[] = {
      {"state", "127.0.0.1:0", "127.0.0.1:0", (dir_ / "state").string(), "is in use"},
      {"REST port", rest, "127.0.0.1:0", (dir_ / "state-2").string(), rest},
      {"membership port", "127.0.0.1:0", controller_.membership(), (dir_ / "state-3").string(),
       controller_.membership()},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.what);
    const fs::path log = dir_ / ("second-" + std::to_string(&c - cases) + ".log");
    ControllerProcess second;
    EXPECT_FALSE(second.Start(
        std::string(EMS_BIN_DIR) + "/ems-controller",
        {"--listen=" + c.listen, "--membership_listen=" + c.membership, "--state_dir=" + c.state,
         "--backend=local", "--ems_node_binary=" + node_binary_},
        log.string()))
        << "a second controller started on the same " << c.what;
    std::ifstream in(log);
    const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    EXPECT_NE(text.find(c.log_says), std::string::npos) << text;
  }
  // The first one still answers.
  token_ = NewToken();
  Call("GET", "/v1/clusters");
  EXPECT_EQ(last_status_, 200);
}

TEST_F(LocalLifecycleTest, SigkilledControllerResumesItsJobAndAdoptsNodes) {
  token_ = NewToken();
  Json body = {{"name", "crashy"},
               {"k8s_cluster_specification",
                {{"k8s_cluster_id", "0b0e7e4a-4a9e-4c1e-9a57-1c2d3e4f5a6b"}, {"node_count", 3}}}};
  Json created = Call("POST", "/v1/clusters", body.dump());
  ASSERT_EQ(last_status_, 202);
  // Crash as soon as the create is acknowledged: the job is queued or mid-flight.
  const std::string membership = controller_.membership();
  controller_.Stop(SIGKILL);
  StartController(membership);
  const std::string id = created["cluster_id"];
  Json job = WaitJob(created["job_id"]);  // the token survived the crash too
  ASSERT_EQ(job["status"], "COMPLETED") << job;
  WaitMap(id, 3);
  // Exactly one live process per node: nothing was started twice.
  int live = 0;
  for (const auto& node : fs::directory_iterator(dir_ / "state" / "local" / id)) {
    int pid = 0;
    std::ifstream(node.path() / "pid") >> pid;
    live += pid > 0 && kill(pid, 0) == 0;
  }
  EXPECT_EQ(live, 3);
  // A clean restart keeps the nodes serving and re-adopts them.
  controller_.Stop(SIGTERM);
  StartController(membership);
  WaitMap(id, 3);
  // Past three missed heartbeats (1.5 s): the nodes stay UP only if they heartbeat the new
  // controller.
  absl::SleepFor(absl::Seconds(2));
  v1::ClusterMap after = Map(id);
  ASSERT_EQ(after.nodes_size(), 3);
  for (const auto& n : after.nodes()) EXPECT_EQ(n.state(), v1::UP) << n.id();
  auto client = ClusterClient(id);
  ASSERT_NE(client, nullptr);
  PutAll(*client, 0, 30);
  EXPECT_EQ(ReadAll(*client, 0, 30).size(), 30u);
  client.reset();
  Json del = Call("DELETE", "/v1/clusters/" + id);
  ASSERT_EQ(WaitJob(del["job_id"])["status"], "COMPLETED");
}

// A credential created while a cluster runs reaches its nodes without a restart (the backend
// rewrites each node's key file, which ems-node re-reads); blocks stored before stay readable.
TEST_F(LocalLifecycleTest, NodesRequireTheProjectsCdKeyEvenWhenCreatedLater) {
  token_ = NewToken();
  Json body = {{"name", "locked"},
               {"k8s_cluster_specification",
                {{"k8s_cluster_id", "0b0e7e4a-4a9e-4c1e-9a57-1c2d3e4f5a6b"}, {"node_count", 3}}}};
  Json created = Call("POST", "/v1/clusters", body.dump());
  ASSERT_EQ(WaitJob(created["job_id"])["status"], "COMPLETED");
  const std::string id = created["cluster_id"];
  v1::ClusterMap map = WaitMap(id, 3);
  {
    auto open = ClusterClient(id);  // no credential yet: no key needed
    ASSERT_NE(open, nullptr);
    PutAll(*open, 0, 30);
  }

  Json cred = Call("POST", "/v1/ems/e2e/credentials");
  ASSERT_EQ(last_status_, 200) << cred;
  const std::string cd_key = cred["cdKey"];
  // Without the key every node refuses (once it re-read its key file); with it the cluster
  // serves, the blocks stored before the key included.
  for (const auto& n : map.nodes()) {
    auto anonymous = Client::Connect({.address = n.address(), .use_local = false});
    ASSERT_TRUE(anonymous.ok());
    const std::vector<uint8_t> v = ValueOf(1000);
    absl::Status put;
    for (int i = 0; i < 200; ++i) {  // nodes re-read the file every 2 s
      put = (*anonymous)->Put(KeyOf(1000), v);
      if (put.code() == absl::StatusCode::kUnauthenticated) break;
      absl::SleepFor(absl::Milliseconds(50));
    }
    EXPECT_EQ(put.code(), absl::StatusCode::kUnauthenticated) << n.id();
    auto wrong = Client::Connect({.address = n.address(), .cd_key = "0123", .use_local = false});
    EXPECT_EQ((*wrong)->Put(KeyOf(1), v).code(), absl::StatusCode::kUnauthenticated) << n.id();
  }
  auto client = ClusterClient(id, cd_key);
  ASSERT_NE(client, nullptr);
  EXPECT_EQ(ReadAll(*client, 0, 30).size(), 30u) << "stored before the key, read with it";
  PutAll(*client, 30, 60);
  EXPECT_EQ(ReadAll(*client, 0, 60).size(), 60u);

  // The map takes no node from a caller without the key (controller/membership_service.h)...
  auto membership = v1::Membership::NewStub(
      grpc::CreateChannel(controller_.membership(), grpc::InsecureChannelCredentials()));
  grpc::ClientContext ctx;
  v1::RegisterRequest intruder;
  intruder.set_cluster(id);
  intruder.mutable_node()->set_id("intruder");
  intruder.mutable_node()->set_address("127.0.0.1:1");
  intruder.mutable_node()->set_capacity_bytes(1 << 30);
  v1::RegisterResponse registered;
  EXPECT_EQ(membership->Register(&ctx, intruder, &registered).error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
  // ...while its own nodes, which present it, still join it (a node started now gets the key
  // in its key file) and leave it when drained (node_count is at least 3: expand, then shrink).
  Json expand = Call("POST", "/v1/clusters/" + id + "/expand", R"({"node_name_list":["local-3"]})");
  ASSERT_EQ(last_status_, 202) << expand;
  ASSERT_EQ(WaitJob(expand["job_id"])["status"], "COMPLETED");
  WaitMap(id, 4);
  Json shrink = Call("POST", "/v1/clusters/" + id + "/shrink", R"({"node_name_list":["local-0"]})");
  ASSERT_EQ(last_status_, 202) << shrink;
  Json shrunk = WaitJob(shrink["job_id"]);
  ASSERT_EQ(shrunk["status"], "COMPLETED") << shrunk;
  EXPECT_EQ(shrunk["task_list"][0]["message"], "1/1 nodes drained") << shrunk;
  const v1::ClusterMap map3 = WaitMap(id, 3);
  for (const auto& n : map3.nodes()) EXPECT_NE(n.id(), "local-0");
  client = ClusterClient(id, cd_key);
  ASSERT_NE(client, nullptr);
  EXPECT_EQ(ReadAll(*client, 0, 60).size(), 60u) << "drained with the key, nothing lost";
  client.reset();
  Json del = Call("DELETE", "/v1/clusters/" + id);
  EXPECT_EQ(WaitJob(del["job_id"])["status"], "COMPLETED");
}

}  // namespace
}  // namespace ems::controller::testing
