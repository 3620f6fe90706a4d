// gRPC front of Membership (ems.v1.Membership). Synchronous service: watchers are few (one
// per node and client process) and each stream waits on the map's condition.
#ifndef EMS_CONTROLLER_MEMBERSHIP_SERVICE_H_
#define EMS_CONTROLLER_MEMBERSHIP_SERVICE_H_

#include <atomic>

#include "controller/membership.h"
#include "ems/v1/membership.grpc.pb.h"

namespace ems::controller {

// Thread-safe. `membership` is not owned and must outlive the service.
class MembershipService final : public v1::Membership::Service {
 public:
  explicit MembershipService(Membership* membership) : membership_(membership) {}

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
  Membership* const membership_;
  std::atomic<bool> stopping_{false};  // release/acquire: watchers see the stop promptly
};

}  // namespace ems::controller

#endif  // EMS_CONTROLLER_MEMBERSHIP_SERVICE_H_
