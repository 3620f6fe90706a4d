#include "controller/membership_service.h"

#include "absl/strings/str_cat.h"
#include "common/grpc_status.h"
#include "common/metadata.h"
#include "common/secret.h"

namespace ems::controller {

MapChangeAuthorizer ProjectCdKeyAuthorizer(Registry* registry, CredentialStore* credentials) {
  return [registry, credentials](const std::string& cluster, const std::string& cd_key,
                                 MapChange change) -> absl::Status {
    auto c = registry->GetClusterById(cluster);
    if (!c.ok()) return absl::OkStatus();  // a map nobody created through the API
    if (change == MapChange::kRegister && (c->status == kDeleting || c->status == kDeleted)) {
      return absl::FailedPreconditionError(
          absl::StrCat("cluster ", cluster, " is ", c->status, ": no node joins it"));
    }
    auto keys = credentials->List(c->project_id);
    if (!keys.ok()) return keys.status();  // cannot tell: refuse
    if (keys->empty()) return absl::OkStatus();
    for (const Credential& k : *keys) {
      if (SameSecret(k.cd_key, cd_key)) return absl::OkStatus();
    }
    return absl::UnauthenticatedError(absl::StrCat(
        cd_key.empty() ? "changing the map of cluster " : "the cdKey presented for cluster ",
        cluster,
        cd_key.empty() ? " needs its project's cdKey (gRPC metadata ems-cd-key)"
                       : " is not one of its project's"));
  };
}

grpc::Status MembershipService::Authorize(grpc::ServerContext* ctx, const std::string& cluster,
                                          MapChange change) const {
  if (!authorize_) return grpc::Status::OK;
  std::string cd_key;
  const auto& metadata = ctx->client_metadata();
  if (auto it = metadata.find(kCdKeyHeader); it != metadata.end()) {
    cd_key.assign(it->second.data(), it->second.size());
  }
  return ToGrpcStatus(authorize_(cluster, cd_key, change));
}

grpc::Status MembershipService::Register(grpc::ServerContext* ctx, const v1::RegisterRequest* req,
                                         v1::RegisterResponse* resp) {
  if (grpc::Status s = Authorize(ctx, req->cluster(), MapChange::kRegister); !s.ok()) return s;
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

grpc::Status MembershipService::SetNodeState(grpc::ServerContext* ctx,
                                             const v1::SetNodeStateRequest* req,
                                             v1::SetNodeStateResponse* resp) {
  if (grpc::Status s = Authorize(ctx, req->cluster(), MapChange::kSetState); !s.ok()) return s;
  auto map = membership_->SetNodeState(req->cluster(), req->node_id(), req->state(),
                                       /*by_node=*/true);
  if (!map.ok()) return ToGrpcStatus(map.status());
  *resp->mutable_map() = *std::move(map);
  return grpc::Status::OK;
}

}  // namespace ems::controller
