// A whole EMS cluster on loopback for tests and benchmarks: one ems-controller and N ems-node
// processes registered with it.
#ifndef EMS_TESTS_TESTING_CLUSTER_H_
#define EMS_TESTS_TESTING_CLUSTER_H_

#include <signal.h>

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/cluster_view.h"
#include "ems/v1/membership.grpc.pb.h"
#include "grpcpp/grpcpp.h"
#include "testing/process.h"

namespace ems::testing {

struct ClusterOptions {
  int nodes = 3;
  int replication_factor = 1;
  int heartbeat_ms = 300;
  // Missed heartbeats before DOWN. Above the controller's default of 3: on a loaded 2-core CI
  // machine a starved node can miss 3 intervals of 300 ms while alive and well.
  int down_after_missed = 5;
  int node_pages = 32;  // 64 MiB per node
  std::vector<std::string> node_flags;
  // Each node also serves the same-machine path on a socket of its own in the cluster's
  // directory, so clients on this host read through shared memory and block directories.
  bool local_sockets = false;
};

class Cluster {
 public:
  static absl::StatusOr<std::unique_ptr<Cluster>> Start(const ClusterOptions& options) {
    std::unique_ptr<Cluster> c(new Cluster(options));
    c->dir_ = std::filesystem::temp_directory_path() /
              absl::StrCat("ems-cluster-", getpid(), "-", reinterpret_cast<uintptr_t>(c.get()));
    std::filesystem::create_directories(c->dir_);
    auto ctl = Process::Start(
        BinPath("ems-controller"),
        {"--listen=127.0.0.1:0", "--membership_listen=127.0.0.1:0",
         "--state_dir=" + (c->dir_ / "controller").string(),
         absl::StrCat("--heartbeat_ms=", options.heartbeat_ms),
         absl::StrCat("--down_after_missed=", options.down_after_missed),
         absl::StrCat("--replication_factor=", options.replication_factor), "--log_level=warn"},
        {"MEMBERSHIP", "REST"});
    if (!ctl.ok()) return ctl.status();
    c->controller_ = *std::move(ctl);
    c->membership_ = v1::Membership::NewStub(
        grpc::CreateChannel(c->controller_address(), grpc::InsecureChannelCredentials()));
    for (int i = 0; i < options.nodes; ++i) {
      if (absl::Status s = c->AddNode(); !s.ok()) return s;
    }
    if (!c->WaitForUp(options.nodes, absl::Seconds(15))) {
      return absl::DeadlineExceededError("nodes did not all register");
    }
    return c;
  }

  ~Cluster() {
    nodes_.clear();
    controller_.reset();
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }

  // Starts node-<n> (n = number of nodes started so far).
  absl::Status AddNode() {
    const std::string id = absl::StrCat("node-", nodes_.size());
    std::vector<std::string> flags = {"--controller=" + controller_address(), "--cluster=test",
                                      "--node_id=" + id,
                                      absl::StrCat("--huge_page_num=", options_.node_pages)};
    flags.insert(flags.end(), options_.node_flags.begin(), options_.node_flags.end());
    if (options_.local_sockets)
      flags.push_back("--local_socket=" + (dir_ / (id + ".sock")).string());
    auto node = StartNode(flags);
    if (!node.ok()) return node.status();
    nodes_.push_back(*std::move(node));
    flags_.push_back(std::move(flags));
    return absl::OkStatus();
  }

  // Kills node i (SIGKILL) and starts it again as the same node: its id, socket, gRPC address
  // and bulk port, as a DaemonSet pod restarted on its host ports. Its blocks are gone.
  absl::Status RestartNode(int i) {
    KillNode(i);
    return StartNodeAgain(i);
  }

  // SIGKILLs node i and reaps it; the map keeps it until the controller marks it DOWN.
  void KillNode(int i) {
    nodes_[i]->Signal(SIGKILL);
    nodes_[i]->Wait();
  }

  // Starts a process for node i again, under its id, addresses and socket as the map has them,
  // with an empty arena. REQUIRES: node i's process has exited (KillNode, or it drained).
  absl::Status StartNodeAgain(int i) {
    auto map = Map();
    if (!map.ok()) return map.status();
    const std::string id = absl::StrCat("node-", i);
    const v1::NodeInfo* info = nullptr;
    for (const v1::NodeInfo& n : map->nodes()) info = n.id() == id ? &n : info;
    if (info == nullptr) return absl::NotFoundError(absl::StrCat(id, " is not in the map"));
    std::vector<std::string> flags = flags_[i];
    flags.push_back("--listen=" + info->address());
    flags.push_back(absl::StrCat("--bulk_port=", info->bulk_port()));
    auto node = StartNode(flags);
    if (!node.ok()) return node.status();
    nodes_[i] = *std::move(node);
    return absl::OkStatus();
  }

  int node_count() const { return static_cast<int>(nodes_.size()); }

  // The state the controller's map gives node i; DOWN if the map has no such node.
  v1::NodeState StateOf(int i) {
    auto map = Map();
    if (map.ok()) {
      for (const auto& n : map->nodes()) {
        if (n.id() == absl::StrCat("node-", i)) return n.state();
      }
    }
    return v1::DOWN;
  }

  std::string controller_address() const { return controller_->Value("MEMBERSHIP"); }
  Process& node(int i) { return *nodes_[i]; }
  // Node i's local socket (ClusterOptions::local_sockets).
  std::string local_socket(int i) const {
    return (dir_ / absl::StrCat("node-", i, ".sock")).string();
  }
  Process& controller() { return *controller_; }

  absl::StatusOr<v1::ClusterMap> Map() {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
    v1::GetClusterMapRequest req;
    req.set_cluster("test");
    v1::ClusterMap map;
    grpc::Status s = membership_->GetClusterMap(&ctx, req, &map);
    if (!s.ok()) return absl::UnavailableError(s.error_message());
    return map;
  }
  // The controller's map as a client routes with it.
  absl::StatusOr<std::shared_ptr<const ClusterView>> View() {
    auto map = Map();
    if (!map.ok()) return map.status();
    return ClusterView::Build(*map);
  }

  int CountState(v1::NodeState state) {
    auto map = Map();
    int n = 0;
    if (map.ok()) {
      for (const auto& node : map->nodes()) n += node.state() == state;
    }
    return n;
  }

  // True once exactly `n` nodes are in `state`; false if `timeout` passes first.
  bool WaitForState(v1::NodeState state, int n, absl::Duration timeout) {
    const absl::Time deadline = absl::Now() + timeout;
    while (absl::Now() < deadline) {
      if (CountState(state) == n) return true;
      absl::SleepFor(absl::Milliseconds(50));
    }
    return false;
  }
  bool WaitForUp(int n, absl::Duration timeout) { return WaitForState(v1::UP, n, timeout); }

  absl::Status SetState(const std::string& id, v1::NodeState state) {
    grpc::ClientContext ctx;
    v1::SetNodeStateRequest req;
    req.set_cluster("test");
    req.set_node_id(id);
    req.set_state(state);
    v1::SetNodeStateResponse resp;
    grpc::Status s = membership_->SetNodeState(&ctx, req, &resp);
    return s.ok() ? absl::OkStatus() : absl::UnavailableError(s.error_message());
  }

 private:
  explicit Cluster(const ClusterOptions& options) : options_(options) {}

  const ClusterOptions options_;
  std::filesystem::path dir_;
  std::unique_ptr<Process> controller_;
  std::unique_ptr<v1::Membership::Stub> membership_;
  std::vector<std::unique_ptr<Process>> nodes_;
  std::vector<std::vector<std::string>> flags_;  // each node's, as started by AddNode
};

}  // namespace ems::testing

#endif  // EMS_TESTS_TESTING_CLUSTER_H_
