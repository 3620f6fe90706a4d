#include "common/cluster_view.h"

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "common/status_macros.h"

namespace ems {

absl::StatusOr<std::shared_ptr<const ClusterView>> ClusterView::Build(const v1::ClusterMap& map) {
  std::shared_ptr<ClusterView> view(new ClusterView());
  view->map_ = map;
  std::vector<RingNode> up, readable;
  absl::flat_hash_set<std::string> ids;
  for (const v1::NodeInfo& n : map.nodes()) {
    if (!ids.insert(n.id()).second) {
      return absl::InvalidArgumentError(absl::StrCat("cluster map names node ", n.id(), " twice"));
    }
    if (n.address().empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat("cluster map node ", n.id(), " has no address"));
    }
    RingNode r{n.id(), std::max<uint64_t>(1, n.capacity_bytes()), n.zone()};
    if (n.state() == v1::UP) up.push_back(r);
    if (n.state() == v1::UP || n.state() == v1::DRAINING) readable.push_back(r);
    view->has_draining_ |= n.state() == v1::DRAINING;
  }
  const int vnodes = map.vnodes_per_node() > 0 ? static_cast<int>(map.vnodes_per_node())
                                               : HashRing::kDefaultVnodes;
  EMS_ASSIGN_OR_RETURN(view->write_ring_, HashRing::Build(std::move(up), vnodes));
  if (view->has_draining_) {
    EMS_ASSIGN_OR_RETURN(view->read_ring_, HashRing::Build(std::move(readable), vnodes));
  }
  return std::shared_ptr<const ClusterView>(std::move(view));
}

const v1::NodeInfo* ClusterView::Find(const std::string& node_id) const {
  for (const v1::NodeInfo& n : map_.nodes()) {
    if (n.id() == node_id) return &n;
  }
  return nullptr;
}

std::vector<const v1::NodeInfo*> ClusterView::Resolve(const HashRing& ring,
                                                      const std::vector<int>& idx) const {
  std::vector<const v1::NodeInfo*> out;
  out.reserve(idx.size());
  for (int i : idx) out.push_back(Find(ring.nodes()[i].id));
  return out;
}

std::vector<const v1::NodeInfo*> ClusterView::WriteOwners(uint64_t position) const {
  const int r = replication_factor();
  if (r == 1) {
    const int owner = write_ring_.Owner(position);
    if (owner < 0) return {};
    return {Find(write_ring_.nodes()[owner].id)};
  }
  return Resolve(write_ring_, write_ring_.Owners(position, r));
}

std::vector<const v1::NodeInfo*> ClusterView::WriteOwners(const BlockKey& key) const {
  return WriteOwners(HashRing::Position(key));
}

std::vector<const v1::NodeInfo*> ClusterView::ReadOwners(const BlockKey& key) const {
  const uint64_t pos = HashRing::Position(key);
  std::vector<const v1::NodeInfo*> out = WriteOwners(pos);
  if (!has_draining_) return out;
  for (const v1::NodeInfo* n : Resolve(read_ring_, read_ring_.Owners(pos, replication_factor()))) {
    if (n->state() == v1::DRAINING) out.push_back(n);
  }
  return out;
}

const v1::NodeInfo* ClusterView::PrimaryOwner(const BlockKey& key) const {
  const int owner = write_ring_.Owner(HashRing::Position(key));
  return owner < 0 ? nullptr : Find(write_ring_.nodes()[owner].id);
}

bool ClusterView::Owns(const std::string& node_id, const BlockKey& key) const {
  for (const v1::NodeInfo* n : WriteOwners(key)) {
    if (n->id() == node_id) return true;
  }
  return false;
}

}  // namespace ems
