// ems-node: one pool served over gRPC, the local shared-memory socket and HTTP metrics.
#ifndef EMS_NODE_NODE_H_
#define EMS_NODE_NODE_H_

#include <atomic>
#include <memory>
#include <string>
#include <thread>

#include "absl/status/statusor.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "node/credential.h"
#include "pool/pool.h"

namespace grpc {
class Server;
}  // namespace grpc
namespace httplib {
class Server;
}  // namespace httplib

namespace ems::node {

class BulkServer;
class DataService;
class LocalServer;
class MembershipAgent;
class Migrator;
class RemovedKeys;

struct NodeOptions {
  std::string listen = "0.0.0.0:50051";  // port 0 picks a free port
  pool::PoolOptions pool;
  int metrics_port = 0;  // -1 disables the HTTP endpoint; 0 picks a port
  std::string metrics_host = "0.0.0.0";
  std::string node_id;       // "" = hostname:port
  std::string local_socket;  // "" disables the same-machine path
  int bulk_port = 0;         // bulk data channel; 0 picks a port, -1 disables
  std::string cd_key;        // "" = no credential required
  // The credential's file, re-read every cd_key_file_period so a key created later takes
  // effect without a restart; exclusive with cd_key. "" = none.
  std::string cd_key_file;
  absl::Duration cd_key_file_period = absl::Seconds(2);
  // Membership: empty controller = standalone node.
  std::string controller;
  std::string cluster = "default";
  std::string zone;
  std::string advertise;                     // address others use; "" = 127.0.0.1:<port>
  double migration_mbps = 0;                 // push rate limit when blocks move; 0 = unlimited
  uint64_t max_message_bytes = 80ull << 20;  // above the 64 MiB max value plus framing
};

// Owns every server of the process. Thread-safe.
class Node {
 public:
  // Creates the pool and starts serving. Errors name the flag or resource that failed.
  static absl::StatusOr<std::unique_ptr<Node>> Start(NodeOptions options);
  ~Node();  // Shutdown(0) if not yet shut down

  // Stops accepting calls, waits up to `grace` for in-flight ones, stops every thread.
  void Shutdown(absl::Duration grace);

  int port() const { return port_; }
  int metrics_port() const { return metrics_port_; }
  const std::string& node_id() const { return options_.node_id; }
  pool::Pool& pool() { return *pool_; }

 private:
  explicit Node(NodeOptions options);
  absl::Status StartMetrics();
  std::string MetricsText();

  NodeOptions options_;
  std::unique_ptr<pool::Pool> pool_;
  std::unique_ptr<RemovedKeys> removed_keys_;  // cluster mode only; outlives the servers
  std::unique_ptr<DataService> service_;
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<LocalServer> local_;
  std::unique_ptr<BulkServer> bulk_;
  std::shared_ptr<Credential> credential_;
  std::unique_ptr<CredentialFileWatcher> credential_watcher_;
  std::unique_ptr<MembershipAgent> agent_;
  std::atomic<MembershipAgent*> agent_raw_{nullptr};  // what RPC handlers read; acq/rel
  std::unique_ptr<Migrator> migrator_;                // cluster mode only; created before agent_
  std::unique_ptr<httplib::Server> http_;
  std::thread http_thread_;
  absl::Notification stop_;
  int port_ = 0;
  int metrics_port_ = -1;
  bool shut_down_ = false;
};

}  // namespace ems::node

#endif  // EMS_NODE_NODE_H_
