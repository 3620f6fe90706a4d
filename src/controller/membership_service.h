// gRPC front of Membership (ems.v1.Membership). Synchronous service: watchers are few (one
// per node and client process) and each stream waits on the map's condition.
#ifndef EMS_CONTROLLER_MEMBERSHIP_SERVICE_H_
#define EMS_CONTROLLER_MEMBERSHIP_SERVICE_H_

#include <atomic>
#include <functional>
#include <string>

#include "absl/status/status.h"
#include "controller/auth/credential_store.h"
#include "controller/jobs/registry.h"
#include "controller/membership.h"
#include "ems/v1/membership.grpc.pb.h"

namespace ems::controller {

// The map changes a caller may ask for.
enum class MapChange { kRegister, kSetState };

// Decides whether a caller presenting `cd_key` ("" = none) may make `change` to the map of
// `cluster`: OK, or the error to answer with.
using MapChangeAuthorizer = std::function<absl::Status(
    const std::string& cluster, const std::string& cd_key, MapChange change)>;

// Who may add a node to a cluster's map (Register) or set a node's state (SetNodeState): an
// unauthenticated caller that could would take a cluster's nodes out of the ring, or put its
// own in to receive the cluster's blocks. A cluster created through the REST API whose project
// holds cdKeys takes these calls only with one of them, which its nodes hold (the backends
// hand them the project's first). Open, like their data plane: clusters of a project with no
// cdKey yet, and maps nobody created through the API (a controller used for membership alone,
// as in tests and ems-bench). Heartbeats and map reads stay open: a heartbeat only keeps a
// registered node UP, and a node that started before its project's first cdKey keeps
// heartbeating while its key file catches up; the map holds addresses, not data.
// No node registers into a cluster being deleted or deleted: a pod still terminating after its
// drain timed out would otherwise rejoin the map its delete job emptied, for good. Its state
// reports (a drain on SIGTERM) still go through.
MapChangeAuthorizer ProjectCdKeyAuthorizer(Registry* registry, CredentialStore* credentials);

// Thread-safe. `membership` is not owned and must outlive the service.
class MembershipService final : public v1::Membership::Service {
 public:
  // `authorize` (nullptr = every change allowed) checks Register and SetNodeState calls.
  explicit MembershipService(Membership* membership, MapChangeAuthorizer authorize = nullptr)
      : membership_(membership), authorize_(std::move(authorize)) {}

  // Ends open watch streams promptly (called before server shutdown).
  void StopWatches() { stopping_.store(true, std::memory_order_release); }

  grpc::Status Register(grpc::ServerContext* ctx, const v1::RegisterRequest* req,
                        v1::RegisterResponse* resp) override;
  grpc::Status Heartbeat(grpc::ServerContext* ctx, const v1::HeartbeatRequest* req,
                         v1::HeartbeatResponse* resp) override;
  grpc::Status GetClusterMap(grpc::ServerContext* ctx, const v1::GetClusterMapRequest* req,
                             v1::ClusterMap* resp) override;
  grpc::Status WatchClusterMap(grpc::ServerContext* ctx, const v1::WatchClusterMapRequest* req,
                               grpc::ServerWriter<v1::ClusterMap>* writer) override;
  grpc::Status SetNodeState(grpc::ServerContext* ctx, const v1::SetNodeStateRequest* req,
                            v1::SetNodeStateResponse* resp) override;

 private:
  // OK if the caller of `ctx` may change the map of `cluster`.
  grpc::Status Authorize(grpc::ServerContext* ctx, const std::string& cluster,
                         MapChange change) const;

  Membership* const membership_;
  const MapChangeAuthorizer authorize_;
  std::atomic<bool> stopping_{false};  // release/acquire: watchers see the stop promptly
};

}  // namespace ems::controller

#endif  // EMS_CONTROLLER_MEMBERSHIP_SERVICE_H_
