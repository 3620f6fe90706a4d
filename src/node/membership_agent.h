// A node's link to ems-controller: registers, heartbeats, and keeps the latest cluster map.
#ifndef EMS_NODE_MEMBERSHIP_AGENT_H_
#define EMS_NODE_MEMBERSHIP_AGENT_H_

#include <functional>
#include <memory>
#include <string>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "common/cluster_view.h"
#include "ems/v1/membership.grpc.pb.h"
#include "node/credential.h"

namespace ems::node {

struct MembershipAgentOptions {
  std::string controller;  // host:port of the controller's membership service
  std::string cluster = "default";
  v1::NodeInfo self;  // id, address, zone, capacity, host, local_socket
  // Used until the controller states its own interval.
  absl::Duration heartbeat_interval = absl::Seconds(1);
  // The project's cdKey, presented with every call (nullptr or "" = none): the controller
  // takes Register and SetNodeState for a cluster whose project has keys only with one.
  std::shared_ptr<const Credential> credential;
};

// Runs one background thread. While the controller is unreachable the node keeps serving with
// its last map and keeps retrying. Thread-safe.
class MembershipAgent {
 public:
  // Called (on the agent thread) each time a newer map arrives.
  using MapCallback = std::function<void(std::shared_ptr<const ClusterView>)>;

  MembershipAgent(MembershipAgentOptions options, MapCallback on_map);
  ~MembershipAgent();  // stops the thread

  // The newest map seen; nullptr before the first one.
  std::shared_ptr<const ClusterView> view() const;
  // Asks the controller to set this node's state (DRAINING at shrink, DOWN when drained).
  // After DOWN the node has left: it stops heartbeating, since the controller takes a heartbeat
  // from a DOWN node as its return and would route writes to a node about to exit. A node that
  // left rejoins by restarting.
  absl::Status SetState(v1::NodeState state);

 private:
  void Run();
  // A deadline, and the cdKey if the node has one.
  void Prepare(grpc::ClientContext& ctx) const;
  bool RegisterOnce();
  void Adopt(const v1::ClusterMap& map);

  const MembershipAgentOptions options_;
  const MapCallback on_map_;
  std::unique_ptr<v1::Membership::Stub> stub_;
  absl::Notification stop_;

  mutable absl::Mutex mu_;
  std::shared_ptr<const ClusterView> view_ ABSL_GUARDED_BY(mu_);
  absl::Duration interval_ ABSL_GUARDED_BY(mu_);
  bool left_ ABSL_GUARDED_BY(mu_) = false;

  std::thread thread_;  // last: starts after every member above is ready
};

}  // namespace ems::node

#endif  // EMS_NODE_MEMBERSHIP_AGENT_H_
