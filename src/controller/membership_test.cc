#include "controller/membership.h"

#include <filesystem>

#include "absl/strings/match.h"
#include "gtest/gtest.h"

namespace ems::controller {
namespace {

class MembershipTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("ems_membership_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
    Reopen();
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  void Reopen() {
    membership_.reset();
    store_.reset();
    auto store = StateStore::Open((dir_ / "state.db").string());
    ASSERT_TRUE(store.ok()) << store.status();
    store_ = *std::move(store);
    MembershipOptions opts;
    opts.clock = &clock_;
    auto m = Membership::Create(store_.get(), opts);
    ASSERT_TRUE(m.ok()) << m.status();
    membership_ = *std::move(m);
  }

  static v1::NodeInfo Node(const std::string& id, const std::string& addr) {
    v1::NodeInfo n;
    n.set_id(id);
    n.set_address(addr);
    n.set_capacity_bytes(1 << 30);
    return n;
  }

  std::filesystem::path dir_;
  FakeClock clock_;
  std::unique_ptr<StateStore> store_;
  std::unique_ptr<Membership> membership_;
};

// Options every map is built from are checked once, naming the option: --vnodes_per_node=-1
// started a controller whose every map nodes and clients refused, and a heartbeat interval of
// 0 made nodes and the controller spin.
TEST_F(MembershipTest, CreateRefusesOptionsNoMapCouldBeBuiltFrom) {
  struct Case {
    const char* name;
    MembershipOptions opts;
  };
  const Case cases[] = {
      {"vnodes_per_node", {.vnodes_per_node = -1}},
      {"vnodes_per_node", {.vnodes_per_node = 0}},
      {"vnodes_per_node", {.vnodes_per_node = kMaxVnodesPerNode + 1}},
      {"replication_factor", {.replication_factor = 0}},
      {"replication_factor", {.replication_factor = -2}},
      {"heartbeat interval", {.heartbeat_interval = absl::ZeroDuration()}},
      {"down_after_missed", {.down_after_missed = 0}},
  };
  for (const Case& c : cases) {
    auto m = Membership::Create(store_.get(), c.opts);
    ASSERT_FALSE(m.ok()) << c.name;
    EXPECT_EQ(m.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_TRUE(absl::StrContains(m.status().message(), c.name)) << m.status();
  }
  MembershipOptions most;
  most.vnodes_per_node = kMaxVnodesPerNode;
  most.replication_factor = kMaxReplicationFactor;
  EXPECT_TRUE(Membership::Create(store_.get(), most).ok());
}

TEST_F(MembershipTest, RegisterBumpsEpochOnlyOnChange) {
  auto m1 = membership_->Register("c", Node("n1", "127.0.0.1:1"));
  ASSERT_TRUE(m1.ok()) << m1.status();
  const uint64_t first = m1->epoch();
  auto again = membership_->Register("c", Node("n1", "127.0.0.1:1"));
  EXPECT_EQ(again->epoch(), first) << "an identical re-register is not a change";
  auto m2 = membership_->Register("c", Node("n2", "127.0.0.1:2"));
  EXPECT_EQ(m2->epoch(), first + 1);
  ASSERT_EQ(m2->nodes_size(), 2);
  EXPECT_EQ(m2->nodes(1).state(), v1::UP);
}

TEST_F(MembershipTest, RejectsIncompleteRegistrations) {
  EXPECT_EQ(membership_->Register("", Node("n1", "a:1")).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(membership_->Register("c", Node("", "a:1")).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(membership_->Register("c", Node("n1", "")).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(membership_->Heartbeat("c", "ghost", 0).status().code(), absl::StatusCode::kNotFound);
}

// Register is open for maps nobody created through the API: whoever reaches the port must not
// grow the controller's memory and state file (and every map it sends) without end. A 1 MiB
// address went into the map, every commit of which rewrote the whole map.
TEST_F(MembershipTest, RegisterIsBoundedInFieldSizesNodesAndMaps) {
  const std::string huge(1 << 20, 'a');
  for (v1::NodeInfo n : {Node(huge, "a:1"), Node("n", huge + ":1")}) {
    auto r = membership_->Register("c", n);
    EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument)
        << "a registration of " << n.ByteSizeLong() << " bytes: " << r.status();
  }
  v1::NodeInfo zoned = Node("n", "a:1");
  zoned.set_zone(huge);
  EXPECT_EQ(membership_->Register("c", zoned).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(membership_->Register(huge, Node("n", "a:1")).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_FALSE(membership_->GetMap("c").ok()) << "no refused registration made a map";

  // Nodes of one map: a node already in it still re-registers when it is full.
  absl::Status refused;
  int i = 0;
  for (; i < 5000 && refused.ok(); ++i) {
    refused = membership_->Register("full", Node("n" + std::to_string(i), "a:1")).status();
  }
  EXPECT_EQ(refused.code(), absl::StatusCode::kResourceExhausted)
      << i << " nodes registered in one map: " << refused;
  EXPECT_TRUE(membership_->Register("full", Node("n0", "a:2")).ok());

  // Maps.
  refused = absl::OkStatus();
  for (i = 0; i < 10000 && refused.ok(); ++i) {
    refused = membership_->Register("m" + std::to_string(i), Node("n", "a:1")).status();
  }
  EXPECT_EQ(refused.code(), absl::StatusCode::kResourceExhausted)
      << i << " maps made by registrations: " << refused;
  EXPECT_TRUE(membership_->Register("m0", Node("n2", "a:2")).ok()) << "existing maps still grow";
  // Maps whose nodes are all down (deleted clusters', abandoned ones) make room.
  clock_.Advance(absl::Seconds(10));
  membership_->MarkSilentNodesDown();
  EXPECT_TRUE(membership_->Register("new", Node("n", "a:1")).ok());
}

TEST_F(MembershipTest, SilentNodeGoesDownAfterThreeMissedHeartbeatsAndComesBack) {
  const uint64_t first = membership_->Register("c", Node("n1", "a:1"))->epoch();
  ASSERT_TRUE(membership_->Register("c", Node("n2", "a:2")).ok());
  clock_.Advance(absl::Milliseconds(2500));
  ASSERT_TRUE(membership_->Heartbeat("c", "n1", first + 1).ok());
  EXPECT_EQ(membership_->MarkSilentNodesDown(), 0) << "2.5 s is under 3 intervals";
  clock_.Advance(absl::Milliseconds(600));
  EXPECT_EQ(membership_->MarkSilentNodesDown(), 1);
  auto map = membership_->GetMap("c");
  EXPECT_EQ(map->epoch(), first + 2);
  EXPECT_EQ(map->nodes(0).state(), v1::UP);
  EXPECT_EQ(map->nodes(1).state(), v1::DOWN);

  auto hb = membership_->Heartbeat("c", "n2", first + 2);
  ASSERT_TRUE(hb.ok());
  EXPECT_EQ(hb->epoch(), first + 3);
  EXPECT_TRUE(hb->has_map()) << "the caller's epoch is stale, so it gets the map";
  EXPECT_EQ(hb->map().nodes(1).state(), v1::UP);
}

TEST_F(MembershipTest, MapSurvivesRestart) {
  const uint64_t first = membership_->Register("c", Node("n1", "a:1"))->epoch();
  ASSERT_TRUE(membership_->Register("c", Node("n2", "a:2")).ok());
  ASSERT_TRUE(membership_->SetNodeState("c", "n2", v1::DRAINING).ok());
  Reopen();
  auto map = membership_->GetMap("c");
  ASSERT_TRUE(map.ok()) << map.status();
  EXPECT_EQ(map->epoch(), first + 2);
  ASSERT_EQ(map->nodes_size(), 2);
  EXPECT_EQ(map->nodes(1).state(), v1::DRAINING);
  // Restart gives nodes a full grace period before they can be marked DOWN.
  EXPECT_EQ(membership_->MarkSilentNodesDown(), 0);
  // A draining node that re-registers stays draining.
  EXPECT_EQ(membership_->Register("c", Node("n2", "a:2"))->nodes(1).state(), v1::DRAINING);
}

TEST_F(MembershipTest, ANodeThatDrainedItselfAndRegistersAgainIsUpAndAShrinkSurvivesIt) {
  ASSERT_TRUE(membership_->Register("c", Node("n1", "a:1")).ok());
  ASSERT_TRUE(membership_->Register("c", Node("n2", "a:2")).ok());
  // n1 drains itself (its pod is stopping) and is killed before it finishes; its replacement
  // registers under the same id, holding nothing. It used to stay DRAINING, report itself
  // drained at once and leave the ring for good.
  ASSERT_TRUE(membership_->SetNodeState("c", "n1", v1::DRAINING, /*by_node=*/true).ok());
  Reopen();  // the flag is in the stored map
  auto back = membership_->Register("c", Node("n1", "a:1"));
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->nodes(0).state(), v1::UP);
  EXPECT_FALSE(back->nodes(0).leaving());
  // A drain the controller started (a shrink) still survives a re-register.
  ASSERT_TRUE(membership_->SetNodeState("c", "n2", v1::DRAINING).ok());
  EXPECT_EQ(membership_->Register("c", Node("n2", "a:2"))->nodes(1).state(), v1::DRAINING);
}

TEST_F(MembershipTest, AHeartbeatSentBeforeANodesDrainedReportDoesNotBringItBack) {
  ASSERT_TRUE(membership_->Register("c", Node("n1", "a:1")).ok());
  ASSERT_TRUE(membership_->SetNodeState("c", "n1", v1::DRAINING).ok());
  ASSERT_TRUE(membership_->SetNodeState("c", "n1", v1::DOWN, /*by_node=*/true).ok());
  auto hb = membership_->Heartbeat("c", "n1", 0);  // in flight while it reported
  ASSERT_TRUE(hb.ok());
  EXPECT_EQ(membership_->GetMap("c")->nodes(0).state(), v1::DOWN);
  // A new process under that id does come back.
  EXPECT_EQ(membership_->Register("c", Node("n1", "a:1"))->nodes(0).state(), v1::UP);
}

TEST_F(MembershipTest, WaitForNewerSeesTheNextEpoch) {
  ASSERT_TRUE(membership_->Register("c", Node("n1", "a:1")).ok());
  v1::ClusterMap out;
  EXPECT_TRUE(membership_->WaitForNewer("c", 0, absl::ZeroDuration(), &out));
  const uint64_t first = out.epoch();
  EXPECT_FALSE(membership_->WaitForNewer("c", first, absl::Milliseconds(10), &out));
  ASSERT_TRUE(membership_->RemoveNode("c", "n1").ok());
  EXPECT_TRUE(membership_->WaitForNewer("c", first, absl::Milliseconds(10), &out));
  EXPECT_EQ(out.nodes_size(), 0);
}

TEST_F(MembershipTest, AControllerThatLostItsStateStartsAboveEveryEpochGivenOut) {
  // Nodes and clients ignore a map no newer than theirs. A controller whose state was lost
  // started again at epoch 1, and its maps were ignored until it had made as many changes.
  ASSERT_TRUE(membership_->Register("c", Node("n1", "a:1")).ok());
  uint64_t last = 0;
  for (int i = 0; i < 50; ++i) {  // a busy cluster: 50 map changes within the same second
    ASSERT_TRUE(membership_->SetNodeState("c", "n1", i % 2 ? v1::UP : v1::DRAINING).ok());
    last = membership_->GetMap("c")->epoch();
  }
  membership_.reset();
  store_.reset();
  std::filesystem::remove_all(dir_);  // the state is gone
  std::filesystem::create_directories(dir_);
  clock_.Advance(absl::Seconds(1));  // the new controller is up a second later
  Reopen();
  auto fresh = membership_->Register("c", Node("n1", "a:1"));
  ASSERT_TRUE(fresh.ok()) << fresh.status();
  EXPECT_GT(fresh->epoch(), last);
}

}  // namespace
}  // namespace ems::controller
