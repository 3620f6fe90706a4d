#include "controller/membership.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "spdlog/spdlog.h"

namespace ems::controller {
namespace {

constexpr char kMapKind[] = "cluster_map";

v1::NodeInfo* FindNode(v1::ClusterMap& map, const std::string& id) {
  for (auto& n : *map.mutable_nodes()) {
    if (n.id() == id) return &n;
  }
  return nullptr;
}

// INVALID_ARGUMENT naming the first string of a registration longer than kMaxMapStringBytes.
absl::Status CheckSizes(const std::string& cluster, const v1::NodeInfo& node) {
  const std::pair<const char*, const std::string*> fields[] = {
      {"cluster name", &cluster}, {"node id", &node.id()}, {"address", &node.address()},
      {"zone", &node.zone()},     {"host", &node.host()},  {"local socket", &node.local_socket()}};
  for (const auto& [name, value] : fields) {
    if (value->size() > kMaxMapStringBytes) {
      return absl::InvalidArgumentError(absl::StrCat("register: ", name, " of ", value->size(),
                                                     " bytes (at most ", kMaxMapStringBytes, ")"));
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::unique_ptr<Membership>> Membership::Create(StateStore* store,
                                                               const MembershipOptions& options) {
  MembershipOptions opts = options;
  if (opts.clock == nullptr) opts.clock = Clock::Real();
  // Refused here, by name, rather than in every map: a vnodes_per_node below 1 made a map
  // every node and client refuses (ClusterView), and an interval of 0 had nodes heartbeat and
  // the controller check them in a busy loop.
  if (opts.down_after_missed < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("down_after_missed must be >= 1, got ", opts.down_after_missed));
  }
  if (opts.heartbeat_interval <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError(absl::StrCat("heartbeat interval must be above 0, got ",
                                                   absl::FormatDuration(opts.heartbeat_interval)));
  }
  if (opts.vnodes_per_node < 1 || opts.vnodes_per_node > kMaxVnodesPerNode) {
    return absl::InvalidArgumentError(absl::StrCat("vnodes_per_node must be 1..", kMaxVnodesPerNode,
                                                   ", got ", opts.vnodes_per_node));
  }
  if (opts.replication_factor < 1 || opts.replication_factor > kMaxReplicationFactor) {
    return absl::InvalidArgumentError(absl::StrCat("replication_factor must be 1..",
                                                   kMaxReplicationFactor, ", got ",
                                                   opts.replication_factor));
  }
  std::unique_ptr<Membership> m(new Membership(store, opts));
  EMS_ASSIGN_OR_RETURN(auto records, store->List(kMapKind));
  absl::MutexLock lock(&m->mu_);
  const absl::Time now = opts.clock->Now();
  for (auto& [name, blob] : records) {
    Cluster& c = m->clusters_[name];
    if (!c.map.ParseFromString(blob)) {
      return absl::DataLossError(absl::StrCat("persisted map of cluster ", name, " is corrupt"));
    }
    // A restarted controller has heard nobody yet: give every node a full grace period.
    for (const auto& n : c.map.nodes()) c.last_seen[n.id()] = now;
  }
  return m;
}

Membership::Cluster& Membership::GetOrCreate(const std::string& name) {
  Cluster& c = clusters_[name];
  if (c.map.cluster().empty()) {
    c.map.set_cluster(name);
    c.map.set_vnodes_per_node(options_.vnodes_per_node);
    c.map.set_replication_factor(options_.replication_factor);
  }
  return c;
}

absl::Status Membership::ForgetADeadMap(const std::string& wanted) {
  for (auto it = clusters_.begin(); it != clusters_.end(); ++it) {
    const auto& nodes = it->second.map.nodes();
    if (std::any_of(nodes.begin(), nodes.end(),
                    [](const v1::NodeInfo& n) { return n.state() != v1::DOWN; })) {
      continue;
    }
    // Should the cluster come back, its next map takes its epoch from the clock (Commit):
    // above every epoch this one gave out.
    EMS_RETURN_IF_ERROR(store_->Delete(kMapKind, it->first));
    spdlog::info("membership: forgot the map of {}, whose nodes are all down, for {}", it->first,
                 wanted);
    clusters_.erase(it);
    return absl::OkStatus();
  }
  return absl::ResourceExhaustedError(
      absl::StrCat("register: the controller holds ", clusters_.size(),
                   " maps with live nodes; no new one for ", wanted));
}

absl::Status Membership::Commit(Cluster& cluster) {
  // A cluster's first map takes its epoch from the clock (milliseconds since 1970); later
  // ones count up by one. Nodes and clients ignore a map no newer than the one they hold, so
  // a controller that lost its state (a state dir or volume gone, a cluster deleted and
  // created again) must not start again at 1: from the clock it starts above every epoch its
  // predecessor gave out, unless that one committed more maps than milliseconds went by.
  const uint64_t first =
      static_cast<uint64_t>(std::max<int64_t>(1, absl::ToUnixMillis(options_.clock->Now())));
  cluster.map.set_epoch(cluster.map.epoch() == 0 ? first : cluster.map.epoch() + 1);
  return store_->Put(kMapKind, cluster.map.cluster(), cluster.map.SerializeAsString());
}

absl::StatusOr<v1::ClusterMap> Membership::Register(const std::string& cluster,
                                                    const v1::NodeInfo& node) {
  if (cluster.empty()) return absl::InvalidArgumentError("register: cluster name is empty");
  if (node.id().empty()) return absl::InvalidArgumentError("register: node id is empty");
  if (node.address().empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("register: node ", node.id(), " has no address"));
  }
  EMS_RETURN_IF_ERROR(CheckSizes(cluster, node));
  absl::MutexLock lock(&mu_);
  if (!clusters_.contains(cluster) && clusters_.size() >= kMaxMaps) {
    EMS_RETURN_IF_ERROR(ForgetADeadMap(cluster));
  }
  Cluster& c = GetOrCreate(cluster);
  v1::NodeInfo* existing = FindNode(c.map, node.id());
  if (existing == nullptr && c.map.nodes_size() >= kMaxNodesPerMap) {
    return absl::ResourceExhaustedError(absl::StrCat("register: cluster ", cluster, " has ",
                                                     c.map.nodes_size(), " nodes; no room for ",
                                                     node.id()));
  }
  c.last_seen[node.id()] = options_.clock->Now();
  v1::NodeInfo wanted = node;
  // A node re-registering while the controller drains it stays DRAINING: only the controller
  // ends a drain it started. One that drained itself (a pod stopping) and registers again is a
  // new process, holding nothing, that nobody asked to leave: it is UP.
  const bool draining = existing && existing->state() == v1::DRAINING && !existing->leaving();
  wanted.set_state(draining ? v1::DRAINING : v1::UP);
  wanted.set_leaving(false);
  if (existing != nullptr && existing->SerializeAsString() == wanted.SerializeAsString()) {
    return c.map;
  }
  if (existing != nullptr) {
    *existing = wanted;
  } else {
    *c.map.add_nodes() = wanted;
  }
  EMS_RETURN_IF_ERROR(Commit(c));
  spdlog::info("membership: {} registered in {} at {} (epoch {})", node.id(), cluster,
               node.address(), c.map.epoch());
  return c.map;
}

absl::StatusOr<v1::HeartbeatResponse> Membership::Heartbeat(const std::string& cluster,
                                                            const std::string& node_id,
                                                            uint64_t known_epoch) {
  absl::MutexLock lock(&mu_);
  auto it = clusters_.find(cluster);
  v1::NodeInfo* node = it == clusters_.end() ? nullptr : FindNode(it->second.map, node_id);
  if (node == nullptr) {
    return absl::NotFoundError(
        absl::StrCat("heartbeat: node ", node_id, " is not registered in cluster ", cluster));
  }
  Cluster& c = it->second;
  c.last_seen[node_id] = options_.clock->Now();
  // DOWN for silence: back UP. DOWN by its own report that it drained: a heartbeat sent before
  // that report, arriving after it, must not put a node that is exiting back in the ring.
  if (node->state() == v1::DOWN && !node->leaving()) {
    node->set_state(v1::UP);
    EMS_RETURN_IF_ERROR(Commit(c));
    spdlog::info("membership: {} is back UP (epoch {})", node_id, c.map.epoch());
  }
  v1::HeartbeatResponse resp;
  resp.set_epoch(c.map.epoch());
  if (known_epoch < c.map.epoch()) *resp.mutable_map() = c.map;
  return resp;
}

absl::StatusOr<v1::ClusterMap> Membership::GetMap(const std::string& cluster) {
  absl::MutexLock lock(&mu_);
  auto it = clusters_.find(cluster);
  if (it == clusters_.end()) {
    return absl::NotFoundError(absl::StrCat("cluster ", cluster, " has no map"));
  }
  return it->second.map;
}

absl::StatusOr<v1::ClusterMap> Membership::SetNodeState(const std::string& cluster,
                                                        const std::string& node_id,
                                                        v1::NodeState state, bool by_node) {
  if (state == v1::NODE_STATE_UNSPECIFIED) {
    return absl::InvalidArgumentError("set node state: state is unspecified");
  }
  absl::MutexLock lock(&mu_);
  auto it = clusters_.find(cluster);
  v1::NodeInfo* node = it == clusters_.end() ? nullptr : FindNode(it->second.map, node_id);
  if (node == nullptr) {
    return absl::NotFoundError(absl::StrCat("node ", node_id, " is not in cluster ", cluster));
  }
  const bool leaving = by_node && (state == v1::DRAINING || state == v1::DOWN);
  if (node->state() != state || node->leaving() != leaving) {
    node->set_state(state);
    node->set_leaving(leaving);
    EMS_RETURN_IF_ERROR(Commit(it->second));
    spdlog::info("membership: {} is now {} (epoch {})", node_id, v1::NodeState_Name(state),
                 it->second.map.epoch());
  }
  return it->second.map;
}

absl::StatusOr<v1::ClusterMap> Membership::RemoveNode(const std::string& cluster,
                                                      const std::string& node_id) {
  absl::MutexLock lock(&mu_);
  auto it = clusters_.find(cluster);
  if (it == clusters_.end() || FindNode(it->second.map, node_id) == nullptr) {
    return absl::NotFoundError(absl::StrCat("node ", node_id, " is not in cluster ", cluster));
  }
  auto* nodes = it->second.map.mutable_nodes();
  for (int i = 0; i < nodes->size(); ++i) {
    if (nodes->Get(i).id() == node_id) {
      nodes->DeleteSubrange(i, 1);
      break;
    }
  }
  it->second.last_seen.erase(node_id);
  EMS_RETURN_IF_ERROR(Commit(it->second));
  return it->second.map;
}

bool Membership::WaitForNewer(const std::string& cluster, uint64_t known_epoch,
                              absl::Duration timeout, v1::ClusterMap* out) {
  absl::MutexLock lock(&mu_);
  auto newer = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    auto it = clusters_.find(cluster);
    return it != clusters_.end() && it->second.map.epoch() > known_epoch;
  };
  if (!mu_.AwaitWithTimeout(absl::Condition(&newer), timeout)) return false;
  *out = clusters_.find(cluster)->second.map;
  return true;
}

int Membership::MarkSilentNodesDown() {
  absl::MutexLock lock(&mu_);
  const absl::Time cutoff =
      options_.clock->Now() - options_.heartbeat_interval * options_.down_after_missed;
  int marked = 0;
  for (auto& [name, c] : clusters_) {
    bool changed = false;
    for (auto& n : *c.map.mutable_nodes()) {
      if (n.state() == v1::DOWN) continue;
      auto seen = c.last_seen.find(n.id());
      if (seen != c.last_seen.end() && seen->second >= cutoff) continue;
      n.set_state(v1::DOWN);
      changed = true;
      ++marked;
      spdlog::warn("membership: {} silent for {} heartbeats, marked DOWN", n.id(),
                   options_.down_after_missed);
    }
    if (changed) {
      if (absl::Status s = Commit(c); !s.ok()) spdlog::error("membership: {}", s.ToString());
    }
  }
  return marked;
}

}  // namespace ems::controller
