// Servers the harnesses start on loopback and stop when done: EMS clusters, redis-server,
// memcached.
#ifndef EMS_BENCH_HARNESS_SERVICES_H_
#define EMS_BENCH_HARNESS_SERVICES_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/subprocess.h"

namespace ems::bench {

// A free TCP port on 127.0.0.1 (bound and released; fine for a benchmark's own servers).
int FreePort();

// An ems-controller and `nodes` ems-node processes registered with it, in a temp directory.
// With `local_sockets`, every node also serves the same-machine path (and its block directory)
// on a socket in that directory, which clients on this host then use.
// The id LocalCluster gives its node `i`: it places blocks on the ring, so the replay's
// simulation of the same cluster (replay/live.h) builds its ring from these ids.
std::string LocalClusterNodeId(int i);

class LocalCluster {
 public:
  static absl::StatusOr<std::unique_ptr<LocalCluster>> Start(
      int nodes, int pages_per_node, const std::vector<std::string>& flags = {},
      bool local_sockets = false);
  // Stops the nodes, then the controller, with SIGTERM; waits for each. INTERNAL naming the
  // process if one did not exit with status 0. The destructor kills what is still running.
  absl::Status Stop();
  ~LocalCluster();
  const std::string& membership() const { return membership_; }
  std::string node_address(int i) const { return nodes_[i]->Value("LISTENING"); }
  int size() const { return static_cast<int>(nodes_.size()); }

 private:
  LocalCluster() = default;
  std::string dir_;
  std::string membership_;
  std::unique_ptr<Process> controller_;
  std::vector<std::unique_ptr<Process>> nodes_;
};

// redis-server or memcached on a free loopback port, persistence off.
struct Server {
  std::unique_ptr<Process> process;
  int port = 0;
};
absl::StatusOr<Server> StartRedis();
absl::StatusOr<Server> StartMemcached(int memory_mb);

}  // namespace ems::bench

#endif  // EMS_BENCH_HARNESS_SERVICES_H_
