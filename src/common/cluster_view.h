// An immutable, query-ready snapshot of a cluster map: who owns which key under one epoch.
#ifndef EMS_COMMON_CLUSTER_VIEW_H_
#define EMS_COMMON_CLUSTER_VIEW_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/hash_ring.h"
#include "common/key.h"
#include "ems/v1/membership.pb.h"

namespace ems {

// Built once per epoch and shared (std::shared_ptr<const ClusterView>) by every thread that
// routes requests; thread-safe because it never changes.
//
// Writes go to the ring of UP nodes. A DRAINING node is off that ring but still holds blocks
// until it has pushed them away, so reads also consider the ring of UP + DRAINING nodes.
// DOWN nodes own nothing.
class ClusterView {
 public:
  // INVALID_ARGUMENT if the map names a node twice or a node without an address.
  static absl::StatusOr<std::shared_ptr<const ClusterView>> Build(const v1::ClusterMap& map);

  uint64_t epoch() const { return map_.epoch(); }
  const v1::ClusterMap& map() const { return map_; }
  int replication_factor() const { return std::max<int>(1, map_.replication_factor()); }
  // True if some node is DRAINING: it may still hold blocks its successors do not have yet.
  bool has_draining() const { return has_draining_; }

  // Nodes that should hold `key` (owner first, then replicas). Empty if no node is UP.
  std::vector<const v1::NodeInfo*> WriteOwners(const BlockKey& key) const;
  std::vector<const v1::NodeInfo*> WriteOwners(uint64_t position) const;
  // Nodes that may hold `key`, in the order to ask: the write owners, then DRAINING nodes
  // that owned it before their drain began.
  std::vector<const v1::NodeInfo*> ReadOwners(const BlockKey& key) const;
  // The first of ReadOwners (the key's UP owner), without building the list; nullptr if no
  // node is UP.
  const v1::NodeInfo* PrimaryOwner(const BlockKey& key) const;
  // True if `node_id` is among WriteOwners(key).
  bool Owns(const std::string& node_id, const BlockKey& key) const;
  // The node with this id, or nullptr.
  const v1::NodeInfo* Find(const std::string& node_id) const;

 private:
  ClusterView() = default;
  std::vector<const v1::NodeInfo*> Resolve(const HashRing& ring, const std::vector<int>& idx) const;

  v1::ClusterMap map_;
  HashRing write_ring_ = *HashRing::Build({});  // UP nodes
  HashRing read_ring_ = *HashRing::Build({});   // UP and DRAINING nodes
  bool has_draining_ = false;
};

}  // namespace ems

#endif  // EMS_COMMON_CLUSTER_VIEW_H_
