#include "node/membership_agent.h"

#include <grpcpp/grpcpp.h>

#include "common/grpc_status.h"
#include "spdlog/spdlog.h"

namespace ems::node {
namespace {

constexpr absl::Duration kRpcDeadline = absl::Seconds(2);

}  // namespace

void MembershipAgent::Prepare(grpc::ClientContext& ctx) const {
  ctx.set_deadline(std::chrono::system_clock::now() +
                   std::chrono::milliseconds(absl::ToInt64Milliseconds(kRpcDeadline)));
  if (options_.credential != nullptr) options_.credential->Present(ctx);
}

MembershipAgent::MembershipAgent(MembershipAgentOptions options, MapCallback on_map)
    : options_(std::move(options)),
      on_map_(std::move(on_map)),
      stub_(v1::Membership::NewStub(
          grpc::CreateChannel(options_.controller, grpc::InsecureChannelCredentials()))),
      interval_(options_.heartbeat_interval),
      thread_([this] { Run(); }) {}

MembershipAgent::~MembershipAgent() {
  stop_.Notify();
  thread_.join();
}

std::shared_ptr<const ClusterView> MembershipAgent::view() const {
  absl::MutexLock lock(&mu_);
  return view_;
}

void MembershipAgent::Adopt(const v1::ClusterMap& map) {
  {
    absl::MutexLock lock(&mu_);
    if (view_ != nullptr && view_->epoch() >= map.epoch()) return;
  }
  auto view = ClusterView::Build(map);
  if (!view.ok()) {
    spdlog::error("membership: ignoring map epoch {}: {}", map.epoch(), view.status().ToString());
    return;
  }
  {
    absl::MutexLock lock(&mu_);
    // Checked again: a heartbeat and a state report (SetState) may adopt at once, and the
    // newer map must win whichever of them finished building its view last.
    if (view_ != nullptr && view_->epoch() >= map.epoch()) return;
    view_ = *view;
  }
  spdlog::info("membership: adopted map epoch {} ({} nodes)", map.epoch(), map.nodes_size());
  if (on_map_) on_map_(*view);
}

bool MembershipAgent::RegisterOnce() {
  grpc::ClientContext ctx;
  Prepare(ctx);
  v1::RegisterRequest req;
  req.set_cluster(options_.cluster);
  *req.mutable_node() = options_.self;
  v1::RegisterResponse resp;
  grpc::Status s = stub_->Register(&ctx, req, &resp);
  if (!s.ok()) {
    spdlog::warn("membership: register with {} failed: {}", options_.controller, s.error_message());
    return false;
  }
  if (resp.heartbeat_interval_ms() > 0) {
    absl::MutexLock lock(&mu_);
    interval_ = absl::Milliseconds(resp.heartbeat_interval_ms());
  }
  Adopt(resp.map());
  return true;
}

void MembershipAgent::Run() {
  bool registered = false;
  while (true) {
    absl::Duration interval;
    bool left = false;
    {
      absl::MutexLock lock(&mu_);
      interval = interval_;
      left = left_;
    }
    if (left) {
      // Drained and reported DOWN: stay out of the map until the process restarts.
    } else if (!registered) {
      registered = RegisterOnce();
    } else {
      grpc::ClientContext ctx;
      Prepare(ctx);
      v1::HeartbeatRequest req;
      req.set_cluster(options_.cluster);
      req.set_node_id(options_.self.id());
      auto current = view();
      req.set_known_epoch(current ? current->epoch() : 0);
      v1::HeartbeatResponse resp;
      grpc::Status s = stub_->Heartbeat(&ctx, req, &resp);
      if (s.error_code() == grpc::StatusCode::NOT_FOUND) {
        registered = RegisterOnce();  // the controller forgot us (e.g. a fresh state dir)
      } else if (!s.ok()) {
        spdlog::debug("membership: heartbeat failed: {}", s.error_message());
      } else if (resp.has_map()) {
        Adopt(resp.map());
      }
    }
    if (stop_.WaitForNotificationWithTimeout(interval)) return;
  }
}

absl::Status MembershipAgent::SetState(v1::NodeState state) {
  grpc::ClientContext ctx;
  Prepare(ctx);
  v1::SetNodeStateRequest req;
  req.set_cluster(options_.cluster);
  req.set_node_id(options_.self.id());
  req.set_state(state);
  v1::SetNodeStateResponse resp;
  grpc::Status s = stub_->SetNodeState(&ctx, req, &resp);
  if (!s.ok()) return FromGrpcStatus(s);
  if (state == v1::DOWN) {
    absl::MutexLock lock(&mu_);
    left_ = true;
  }
  Adopt(resp.map());
  return absl::OkStatus();
}

}  // namespace ems::node
