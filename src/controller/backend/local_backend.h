// The `local` backend: each node of a cluster is an ems-node process on this machine, named
// local-0, local-1, ... (or as named by expand). A node's directory
// <work_dir>/<cluster_id>/<node>/ holds its pid file, stdout (with the LISTENING line) and
// stderr, so a restarted controller re-adopts the processes its predecessor started; nodes
// keep serving while the controller is down. Each node's arena is capped at
// --local_node_memory_cap_mb, so a 256 GB spec runs on a small machine. Thread-safe.
#ifndef EMS_CONTROLLER_BACKEND_LOCAL_BACKEND_H_
#define EMS_CONTROLLER_BACKEND_LOCAL_BACKEND_H_

#include <functional>
#include <string>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "controller/backend/backend.h"

namespace ems::controller {

struct LocalBackendOptions {
  std::string node_binary;  // path of ems-node
  std::string work_dir;     // node directories live below
  int64_t node_memory_cap_mb = 256;
  std::string host = "127.0.0.1";  // nodes listen on host:0
  // Membership address passed as --controller (with --cluster <id>) so nodes register; ""
  // = do not pass (for ems-node builds without those flags).
  std::string membership_address;
  std::vector<std::string> extra_args;
  // The cdKey a project's nodes require from clients (passed as --cd_key), "" for none.
  // Called when a node starts; nodes started before the project had a credential need none.
  std::function<std::string(const std::string& project_id)> cd_key_of;
  absl::Duration stop_grace = absl::Seconds(5);  // SIGTERM, then SIGKILL after this
};

class LocalBackend : public Backend {
 public:
  explicit LocalBackend(LocalBackendOptions options) : options_(std::move(options)) {}

  const char* name() const override { return "local"; }
  absl::StatusOr<std::vector<std::string>> PlanNodes(const Cluster& c) override;
  absl::StatusOr<std::vector<std::string>> DiscoverNodes(const Cluster& c) override;
  absl::Status Prepare(const Cluster& c) override;
  absl::Status StartNodes(const Cluster& c, const std::vector<std::string>& names) override;
  absl::Status StopNodes(const Cluster& c, const std::vector<std::string>& names) override;
  // The node directories of `c` with a live process (as DiscoverNodes).
  absl::StatusOr<std::vector<std::string>> StartedNodes(const Cluster& c) override {
    return DiscoverNodes(c);
  }
  absl::StatusOr<std::vector<NodeStatus>> Status(const Cluster& c,
                                                 const std::vector<std::string>& names) override;
  absl::Status Release(const Cluster& c) override;
  absl::StatusOr<std::vector<NodeLabel>> ListLabels(const std::string& k8s_cluster_id) override;
  std::string Note(const Cluster& c) override;
  absl::Status RefreshCredential(const Cluster& c) override;

  // huge_page_num a node of `c` is started with: the spec's, capped to the memory cap.
  int64_t NodeHugePages(const Cluster& c) const;
  // Stops every node process below work_dir (tests, and `ems-controller --local_stop_nodes`).
  void StopAll();

 private:
  std::string NodeDir(const std::string& cluster_id, const std::string& node) const;
  // The pid of the node's live process, or 0.
  int LivePid(const std::string& dir);
  absl::Status Spawn(const Cluster& c, const std::string& node, const std::string& dir)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // SIGTERM to the process of each node directory, SIGKILL to those still alive after
  // stop_grace; their pid files are removed.
  void Stop(const std::vector<std::string>& dirs) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The project's current cdKey ("" = none) into `dir`'s key file, which the node re-reads.
  absl::Status WriteCdKey(const Cluster& c, const std::string& dir)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const LocalBackendOptions options_;
  absl::Mutex mu_;  // serializes spawns and stops, so two callers never start one node twice
};

}  // namespace ems::controller

#endif  // EMS_CONTROLLER_BACKEND_LOCAL_BACKEND_H_
