// The cluster maps the controller owns: which nodes exist, their states, and the epoch.
#ifndef EMS_CONTROLLER_MEMBERSHIP_H_
#define EMS_CONTROLLER_MEMBERSHIP_H_

#include <memory>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/clock.h"
#include "controller/state_store.h"
#include "ems/v1/membership.pb.h"

namespace ems::controller {

// Every node and client builds the ring of each map it gets: this many points a node keeps
// that cheap (64 nodes: a million points, 16 MiB).
inline constexpr int kMaxVnodesPerNode = 16384;
inline constexpr int kMaxReplicationFactor = 8;
// Register is open for maps nobody created through the API (tests, ems-bench, the static
// default cluster), so what one call may make the controller hold - in memory, in its state
// file, and in every map it sends - is bounded: a cluster name and each NodeInfo string
// (a K8s node name is at most 253 bytes, host:port at most 261) ...
inline constexpr size_t kMaxMapStringBytes = 512;
// ... the maps held (the API's clusters and ad-hoc ones; a map none of whose nodes is alive,
// as a deleted cluster's, makes room for a new one) ...
inline constexpr size_t kMaxMaps = 4096;
// ... and the nodes of one map.
inline constexpr int kMaxNodesPerMap = 1024;

struct MembershipOptions {
  absl::Duration heartbeat_interval = absl::Seconds(1);
  // A node silent for this many intervals is marked DOWN.
  int down_after_missed = 3;
  // Ring points per node of mean capacity (HashRing), 1..kMaxVnodesPerNode.
  int vnodes_per_node = 2048;
  // Copies of each block in new maps, 1..kMaxReplicationFactor.
  int replication_factor = 1;
  Clock* clock = nullptr;  // nullptr = Clock::Real(); not owned
};

// Per-cluster maps with epochs. Every epoch bump is persisted before the call that caused it
// returns, so a restarted controller serves the same map. Thread-safe.
class Membership {
 public:
  // Loads the persisted maps from `store` (not owned; must outlive this).
  static absl::StatusOr<std::unique_ptr<Membership>> Create(StateStore* store,
                                                            const MembershipOptions& options);

  // Adds the node, or updates its address/zone/capacity and marks it UP. Bumps the epoch when
  // anything changed. INVALID_ARGUMENT for an empty id, address or cluster, or one of them (or
  // another field) longer than kMaxMapStringBytes; RESOURCE_EXHAUSTED for a new map beyond
  // kMaxMaps or a new node beyond kMaxNodesPerMap.
  absl::StatusOr<v1::ClusterMap> Register(const std::string& cluster, const v1::NodeInfo& node);
  // Records a heartbeat. NOT_FOUND if the node is unknown (it should Register). A DOWN node
  // that heartbeats again is UP again (new epoch).
  absl::StatusOr<v1::HeartbeatResponse> Heartbeat(const std::string& cluster,
                                                  const std::string& node_id, uint64_t known_epoch);
  // NOT_FOUND if the cluster has no map.
  absl::StatusOr<v1::ClusterMap> GetMap(const std::string& cluster);
  // Sets a node's state (UP, DRAINING, DOWN). NOT_FOUND for an unknown node. `by_node`: the
  // node asked itself (the membership RPC); the reconciler's shrinks are the controller's.
  absl::StatusOr<v1::ClusterMap> SetNodeState(const std::string& cluster,
                                              const std::string& node_id, v1::NodeState state,
                                              bool by_node = false);
  // Forgets a node entirely (after a shrink has drained it).
  absl::StatusOr<v1::ClusterMap> RemoveNode(const std::string& cluster, const std::string& node_id);
  // Waits until the map's epoch exceeds `known_epoch` or `timeout` passes. True and fills
  // `out` if a newer map exists.
  bool WaitForNewer(const std::string& cluster, uint64_t known_epoch, absl::Duration timeout,
                    v1::ClusterMap* out);
  // Marks nodes silent for down_after_missed intervals DOWN; returns how many. The owner calls
  // this periodically.
  int MarkSilentNodesDown();

  const MembershipOptions& options() const { return options_; }

 private:
  struct Cluster {
    v1::ClusterMap map;
    absl::flat_hash_map<std::string, absl::Time> last_seen;
  };
  Membership(StateStore* store, const MembershipOptions& options)
      : store_(store), options_(options) {}
  Cluster& GetOrCreate(const std::string& name) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Forgets a map with no node UP or DRAINING, to make room for `wanted`; RESOURCE_EXHAUSTED if
  // every map has one.
  absl::Status ForgetADeadMap(const std::string& wanted) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Bumps the epoch and persists the map.
  absl::Status Commit(Cluster& cluster) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  StateStore* const store_;
  const MembershipOptions options_;

  absl::Mutex mu_;
  absl::flat_hash_map<std::string, Cluster> clusters_ ABSL_GUARDED_BY(mu_);
};

}  // namespace ems::controller

#endif  // EMS_CONTROLLER_MEMBERSHIP_H_
