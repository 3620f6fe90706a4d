#include "controller/membership_service.h"

#include "common/grpc_status.h"

namespace ems::controller {

grpc::Status MembershipService::Register(grpc::ServerContext*, const v1::RegisterRequest* req,
                                         v1::RegisterResponse* resp) {
  auto map = membership_->Register(req->cluster(), req->node());
  if (!map.ok()) return ToGrpcStatus(map.status());
  *resp->mutable_map() = *std::move(map);
  resp->set_heartbeat_interval_ms(
      static_cast<uint32_t>(absl::ToInt64Milliseconds(membership_->options().heartbeat_interval)));
  return grpc::Status::OK;
}

grpc::Status MembershipService::Heartbeat(grpc::ServerContext*, const v1::HeartbeatRequest* req,
                                          v1::HeartbeatResponse* resp) {
  auto r = membership_->Heartbeat(req->cluster(), req->node_id(), req->known_epoch());
  if (!r.ok()) return ToGrpcStatus(r.status());
  *resp = *std::move(r);
  return grpc::Status::OK;
}

grpc::Status MembershipService::GetClusterMap(grpc::ServerContext*,
                                              const v1::GetClusterMapRequest* req,
                                              v1::ClusterMap* resp) {
  auto map = membership_->GetMap(req->cluster());
  if (!map.ok()) return ToGrpcStatus(map.status());
  *resp = *std::move(map);
  return grpc::Status::OK;
}

grpc::Status MembershipService::WatchClusterMap(grpc::ServerContext* ctx,
                                                const v1::WatchClusterMapRequest* req,
                                                grpc::ServerWriter<v1::ClusterMap>* writer) {
  uint64_t known = req->known_epoch();
  // Short waits so a cancelled stream or a stopping server frees its thread quickly.
  while (!ctx->IsCancelled() && !stopping_.load(std::memory_order_acquire)) {
    v1::ClusterMap map;
    if (!membership_->WaitForNewer(req->cluster(), known, absl::Milliseconds(200), &map)) {
      continue;
    }
    if (!writer->Write(map)) break;  // the watcher went away
    known = map.epoch();
  }
  return grpc::Status::OK;
}

grpc::Status MembershipService::SetNodeState(grpc::ServerContext*,
                                             const v1::SetNodeStateRequest* req,
                                             v1::SetNodeStateResponse* resp) {
  auto map = membership_->SetNodeState(req->cluster(), req->node_id(), req->state(),
                                       /*by_node=*/true);
  if (!map.ok()) return ToGrpcStatus(map.status());
  *resp->mutable_map() = *std::move(map);
  return grpc::Status::OK;
}

}  // namespace ems::controller
