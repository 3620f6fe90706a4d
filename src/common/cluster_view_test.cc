#include "common/cluster_view.h"

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"

namespace ems {
namespace {

v1::ClusterMap Map(std::vector<std::pair<std::string, v1::NodeState>> nodes, uint32_t r = 1) {
  v1::ClusterMap map;
  map.set_epoch(7);
  map.set_replication_factor(r);
  for (auto& [id, state] : nodes) {
    v1::NodeInfo* n = map.add_nodes();
    n->set_id(id);
    n->set_address(absl::StrCat(id, ":1"));
    n->set_state(state);
    n->set_capacity_bytes(1 << 30);
  }
  return map;
}

BlockKey KeyN(int i) {
  Digest d;
  std::memcpy(d.bytes.data(), &i, sizeof(i));
  return BlockKey{"ns", d};
}

TEST(ClusterViewTest, DownNodesOwnNothingAndDrainingNodesOnlyServeReads) {
  auto view = ClusterView::Build(
      Map({{"a", v1::UP}, {"b", v1::UP}, {"c", v1::DRAINING}, {"d", v1::DOWN}}));
  ASSERT_TRUE(view.ok()) << view.status();
  int drained_reads = 0;
  for (int i = 0; i < 2000; ++i) {
    auto w = (*view)->WriteOwners(KeyN(i));
    ASSERT_EQ(w.size(), 1u);
    EXPECT_TRUE(w[0]->id() == "a" || w[0]->id() == "b");
    auto r = (*view)->ReadOwners(KeyN(i));
    EXPECT_EQ(r[0], w[0]);
    for (auto* n : r) EXPECT_NE(n->id(), "d");
    if (r.size() == 2) {
      EXPECT_EQ(r[1]->id(), "c");
      ++drained_reads;
    }
  }
  // c held about a third of the keys before draining.
  EXPECT_GT(drained_reads, 500);
  EXPECT_LT(drained_reads, 850);
}

TEST(ClusterViewTest, ReplicasAreDistinct) {
  auto view = ClusterView::Build(Map({{"a", v1::UP}, {"b", v1::UP}, {"c", v1::UP}}, 2));
  ASSERT_TRUE(view.ok());
  for (int i = 0; i < 500; ++i) {
    auto w = (*view)->WriteOwners(KeyN(i));
    ASSERT_EQ(w.size(), 2u);
    EXPECT_NE(w[0]->id(), w[1]->id());
    EXPECT_TRUE((*view)->Owns(w[1]->id(), KeyN(i)));
  }
}

TEST(ClusterViewTest, RejectsBrokenMaps) {
  auto dup = Map({{"a", v1::UP}, {"a", v1::UP}});
  EXPECT_EQ(ClusterView::Build(dup).status().code(), absl::StatusCode::kInvalidArgument);
  auto noaddr = Map({{"a", v1::UP}});
  noaddr.mutable_nodes(0)->clear_address();
  EXPECT_EQ(ClusterView::Build(noaddr).status().code(), absl::StatusCode::kInvalidArgument);
  auto empty = ClusterView::Build(Map({{"a", v1::DOWN}}));
  ASSERT_TRUE(empty.ok());
  EXPECT_TRUE((*empty)->WriteOwners(KeyN(1)).empty());
}

}  // namespace
}  // namespace ems
