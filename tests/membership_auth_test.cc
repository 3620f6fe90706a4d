// Who may change a cluster's map: the controller's membership service with the project-cdKey
// rule (controller/membership_service.h), reached over gRPC by raw stubs and by the node's own
// MembershipAgent.
#include <grpcpp/grpcpp.h>

#include <filesystem>
#include <memory>
#include <string>

#include "absl/strings/match.h"
#include "absl/time/clock.h"
#include "common/metadata.h"
#include "controller/auth/credential_store.h"
#include "controller/jobs/registry.h"
#include "controller/membership.h"
#include "controller/membership_service.h"
#include "gtest/gtest.h"
#include "node/credential.h"
#include "node/membership_agent.h"

namespace ems {
namespace {

using controller::CredentialStore;
using controller::Membership;
using controller::MembershipService;
using controller::ProjectCdKeyAuthorizer;
using controller::Registry;
using controller::StateStore;

class MembershipAuthTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("ems_membership_auth_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
    auto store = StateStore::Open((dir_ / "state.db").string());
    ASSERT_TRUE(store.ok()) << store.status();
    store_ = *std::move(store);
    auto registry = Registry::Load(store_.get(), Clock::Real());
    ASSERT_TRUE(registry.ok()) << registry.status();
    registry_ = *std::move(registry);
    credentials_ = std::make_unique<CredentialStore>(store_.get(), Clock::Real());
    controller::MembershipOptions mo;
    mo.heartbeat_interval = absl::Milliseconds(100);
    auto membership = Membership::Create(store_.get(), mo);
    ASSERT_TRUE(membership.ok()) << membership.status();
    membership_ = *std::move(membership);
    service_ = std::make_unique<MembershipService>(
        membership_.get(), ProjectCdKeyAuthorizer(registry_.get(), credentials_.get()));
    grpc::ServerBuilder builder;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port_);
    builder.RegisterService(service_.get());
    server_ = builder.BuildAndStart();
    ASSERT_NE(server_, nullptr);
    stub_ =
        v1::Membership::NewStub(grpc::CreateChannel(Address(), grpc::InsecureChannelCredentials()));
  }
  void TearDown() override {
    service_->StopWatches();
    server_->Shutdown();
    std::filesystem::remove_all(dir_);
  }

  std::string Address() const { return "127.0.0.1:" + std::to_string(port_); }

  // A cluster created through the API, in `project`.
  std::string NewCluster(const std::string& project, const std::string& name) {
    controller::ClusterSpec spec;
    spec.name = name;
    auto accepted = registry_->CreateCluster(project, spec);
    EXPECT_TRUE(accepted.ok()) << accepted.status();
    return accepted.ok() ? accepted->cluster_id : "";
  }
  std::string NewKey(const std::string& project) {
    auto k = credentials_->Create(project);
    EXPECT_TRUE(k.ok()) << k.status();
    return k.ok() ? k->cd_key : "";
  }

  grpc::Status Register(const std::string& cluster, const std::string& node,
                        const std::string& cd_key) {
    grpc::ClientContext ctx;
    if (!cd_key.empty()) ctx.AddMetadata(kCdKeyHeader, cd_key);
    v1::RegisterRequest req;
    req.set_cluster(cluster);
    req.mutable_node()->set_id(node);
    req.mutable_node()->set_address("127.0.0.1:1");
    req.mutable_node()->set_capacity_bytes(1 << 30);
    v1::RegisterResponse resp;
    return stub_->Register(&ctx, req, &resp);
  }
  grpc::Status SetDown(const std::string& cluster, const std::string& node,
                       const std::string& cd_key) {
    grpc::ClientContext ctx;
    if (!cd_key.empty()) ctx.AddMetadata(kCdKeyHeader, cd_key);
    v1::SetNodeStateRequest req;
    req.set_cluster(cluster);
    req.set_node_id(node);
    req.set_state(v1::DOWN);
    v1::SetNodeStateResponse resp;
    return stub_->SetNodeState(&ctx, req, &resp);
  }
  grpc::Status Heartbeat(const std::string& cluster, const std::string& node) {
    grpc::ClientContext ctx;
    v1::HeartbeatRequest req;
    req.set_cluster(cluster);
    req.set_node_id(node);
    v1::HeartbeatResponse resp;
    return stub_->Heartbeat(&ctx, req, &resp);
  }
  // The ids and states of the cluster's map ("" if it has none).
  std::string MapOf(const std::string& cluster) {
    auto map = membership_->GetMap(cluster);
    if (!map.ok()) return "";
    std::string out;
    for (const auto& n : map->nodes()) out += n.id() + "=" + v1::NodeState_Name(n.state()) + " ";
    return out;
  }

  std::filesystem::path dir_;
  std::unique_ptr<StateStore> store_;
  std::unique_ptr<Registry> registry_;
  std::unique_ptr<CredentialStore> credentials_;
  std::unique_ptr<Membership> membership_;
  std::unique_ptr<MembershipService> service_;
  std::unique_ptr<grpc::Server> server_;
  int port_ = 0;
  std::unique_ptr<v1::Membership::Stub> stub_;
};

TEST_F(MembershipAuthTest, AClusterOfAProjectWithCdKeysTakesMapChangesOnlyWithOne) {
  const std::string locked = NewCluster("p1", "locked");
  ASSERT_TRUE(Register(locked, "n1", "").ok()) << "no cdKey yet: open, like the data plane";
  const std::string key = NewKey("p1");
  const std::string other_project_key = NewKey("p2");

  grpc::Status s = Register(locked, "intruder", "");
  EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_TRUE(absl::StrContains(s.error_message(), "needs its project's cdKey"))
      << s.error_message();
  EXPECT_TRUE(absl::StrContains(s.error_message(), locked)) << s.error_message();
  s = Register(locked, "intruder", other_project_key);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_TRUE(absl::StrContains(s.error_message(), "is not one of its project's"))
      << s.error_message();
  s = SetDown(locked, "n1", "");
  EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(MapOf(locked), "n1=UP ") << "nothing changed";

  // Heartbeats stay open: a node started before the key keeps its place while it catches up.
  EXPECT_TRUE(Heartbeat(locked, "n1").ok());
  // With the key (or a later one of the same project) the changes go through.
  EXPECT_TRUE(Register(locked, "n2", key).ok());
  EXPECT_TRUE(Register(locked, "n3", NewKey("p1")).ok());
  EXPECT_TRUE(SetDown(locked, "n1", key).ok());
  EXPECT_EQ(MapOf(locked), "n1=DOWN n2=UP n3=UP ");

  // A map nobody created through the API (membership alone, as ems-bench uses it) is open.
  EXPECT_TRUE(Register("ad-hoc", "n1", "").ok());
}

// A pod still terminating after its drain timed out heartbeats into the map its cluster's
// delete job emptied, is told NOT_FOUND, and registers again: it rejoined the map of a deleted
// cluster for good. No node joins a cluster being deleted; its state reports still count.
TEST_F(MembershipAuthTest, NoNodeJoinsAClusterBeingDeleted) {
  const std::string id = NewCluster("proj-a", "alpha");
  ASSERT_TRUE(Register(id, "node-0", "").ok());
  ASSERT_TRUE(registry_->DeleteCluster("proj-a", id).ok());
  grpc::Status late = Register(id, "node-1", "");
  EXPECT_EQ(late.error_code(), grpc::StatusCode::FAILED_PRECONDITION) << late.error_message();
  EXPECT_NE(late.error_message().find(id), std::string::npos) << late.error_message();
  EXPECT_TRUE(SetDown(id, "node-0", "").ok()) << "a node's drain is still reported";
  auto map = membership_->GetMap(id);
  ASSERT_TRUE(map.ok()) << map.status();
  ASSERT_EQ(map->nodes_size(), 1) << "node-1 is not in the map";
  EXPECT_EQ(map->nodes(0).state(), v1::DOWN);
  // Maps nobody created through the API stay open.
  EXPECT_TRUE(Register("adhoc", "node-0", "").ok());
}

TEST_F(MembershipAuthTest, ANodePresentsItsCdKeyAndRegistersOnceItHasTheRightOne) {
  const std::string cluster = NewCluster("p1", "c");
  const std::string key = NewKey("p1");
  auto agent_with = [&](const std::string& id, std::shared_ptr<node::Credential> credential) {
    node::MembershipAgentOptions o;
    o.controller = Address();
    o.cluster = cluster;
    o.self.set_id(id);
    o.self.set_address("127.0.0.1:2");
    o.self.set_capacity_bytes(1 << 30);
    o.heartbeat_interval = absl::Milliseconds(50);
    o.credential = std::move(credential);
    return std::make_unique<node::MembershipAgent>(o, nullptr);
  };
  auto wait_for = [&](const std::string& text) {
    for (absl::Time end = absl::Now() + absl::Seconds(10); absl::Now() < end;) {
      if (absl::StrContains(MapOf(cluster), text)) return true;
      absl::SleepFor(absl::Milliseconds(20));
    }
    return false;
  };
  auto good = agent_with("good", std::make_shared<node::Credential>(key));
  EXPECT_TRUE(wait_for("good=UP")) << MapOf(cluster);
  // A node whose key file still holds an old key is refused until the file is rewritten.
  auto stale_key = std::make_shared<node::Credential>("0123456789abcdef0123456789abcdef");
  auto stale = agent_with("stale", stale_key);
  absl::SleepFor(absl::Milliseconds(500));  // ten attempts at least
  EXPECT_FALSE(absl::StrContains(MapOf(cluster), "stale")) << MapOf(cluster);
  stale_key->Set(key);
  EXPECT_TRUE(wait_for("stale=UP")) << MapOf(cluster);
  // Leaving (drained) is a map change too: it carries the key.
  EXPECT_TRUE(good->SetState(v1::DOWN).ok());
  EXPECT_TRUE(absl::StrContains(MapOf(cluster), "good=DOWN")) << MapOf(cluster);
}

}  // namespace
}  // namespace ems
