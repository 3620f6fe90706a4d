// Same-machine data path, node side: a Unix socket (SOCK_SEQPACKET) through which co-located
// clients receive the arena's memfd and ask for write reservations and read pins. Bytes move
// by the client's own memcpy into or out of the shared arena; only control crosses the socket.
#ifndef EMS_NODE_LOCAL_SERVER_H_
#define EMS_NODE_LOCAL_SERVER_H_

#include <sys/types.h>

#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "absl/container/flat_hash_set.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/cluster_view.h"
#include "node/credential.h"
#include "node/internal/connection_threads.h"
#include "node/removed_keys.h"
#include "pool/pool.h"

namespace ems::v1 {
class LocalReadReport;
class LocalRequest;
class LocalResponse;
class LocalSeal;
}  // namespace ems::v1

namespace ems::node {

struct LocalServerOptions {
  std::string socket_path;  // created (and an existing stale socket replaced) at Start
  std::string node_id;
  int max_connections = 256;
  // How long a new connection may stay silent before its first request is admitted (a
  // client says hello as soon as it connects). Peers that connect and say nothing would
  // otherwise hold the max_connections slots for good, shutting every client out. Once
  // admitted, a connection may idle as long as it likes: clients pool them.
  absl::Duration first_request_timeout = absl::Seconds(5);
  // When set and holding a key, a connection is served only after its hello presented it, as
  // on gRPC and the bulk channel: the hello hands out the whole arena. Shared with them; it can
  // change while the node serves. nullptr = no key required.
  std::shared_ptr<const Credential> credential;
  // The node's current cluster map; nullptr or returning nullptr = standalone (owns all keys).
  std::function<std::shared_ptr<const ClusterView>()> view;
  // Keys clients removed lately (data_service.h); a put here ends a key's entry. Not owned;
  // nullptr = none kept.
  RemovedKeys* removed_keys = nullptr;
};

// One thread per connection (co-located clients are few: one per inference worker). Every
// grant is a pool lease owned by its connection; a closed connection ends all of its leases,
// so a client killed mid-write or mid-read leaks nothing. Thread-safe.
class LocalServer {
 public:
  // `pool` is not owned and must outlive the server.
  static absl::StatusOr<std::unique_ptr<LocalServer>> Start(pool::Pool* pool,
                                                            LocalServerOptions options);
  // Closes the socket, ends every connection (and its leases), joins threads, and removes the
  // socket's path if it still names this server's socket.
  ~LocalServer();

  int connections() const { return threads_->connections(); }
  const std::string& socket_path() const { return options_.socket_path; }

 private:
  LocalServer(pool::Pool* pool, LocalServerOptions options, dev_t socket_dev, ino_t socket_ino);
  void Serve(int fd);
  // What a connection has shown of its right to be served.
  struct Admission {
    std::string hello_key;                       // what the last hello presented ("" before any)
    std::optional<uint64_t> checked_generation;  // the credential's generation hello_key passed
    bool admitted = false;  // a request passed; before that, recv waits a bounded time
  };
  // OK if connection `fd` may make `req`: the key its last hello presented (a hello presents
  // its own) must pass the credential. Checked again only when a hello presents a key or the
  // credential changed since it last passed. The first request that passes lifts the
  // connection's first_request_timeout.
  absl::Status Admit(int fd, const v1::LocalRequest& req, Admission& admission) const;
  // Applies a client's report of reads it made through the block directory.
  void Record(const v1::LocalReadReport& report);
  // A write or blank seal from a client whose map is older than the node's must name only
  // keys this node owns (admission.h): otherwise FAILED_PRECONDITION, with the node's epoch
  // set in `resp`, and nothing is written. Malformed keys are left to the request's handler.
  absl::Status CheckOwners(const v1::LocalRequest& req, v1::LocalResponse& resp) const;
  // Seals the connection's write leases or blanks (one grant each in `resp`), then grants the
  // blanks asked for. An error is the whole request's (a malformed seal; nothing sealed).
  absl::Status Seal(const v1::LocalSeal& seal, absl::flat_hash_set<pool::LeaseId>& leases,
                    v1::LocalResponse& resp);

  pool::Pool* const pool_;
  const LocalServerOptions options_;
  // The socket file this server bound: another node may serve the path by the time it stops.
  const dev_t socket_dev_;
  const ino_t socket_ino_;
  std::unique_ptr<internal::ConnectionThreads> threads_;
};

}  // namespace ems::node

#endif  // EMS_NODE_LOCAL_SERVER_H_
