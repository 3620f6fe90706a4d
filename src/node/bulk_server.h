// The bulk data channel, node side (wire format in bulk/wire.h): GET writes blocks to the
// socket straight from the pinned arena, PUT reads values straight into allocated blocks.
#ifndef EMS_NODE_BULK_SERVER_H_
#define EMS_NODE_BULK_SERVER_H_

#include <functional>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/cluster_view.h"
#include "node/credential.h"
#include "node/internal/connection_threads.h"
#include "node/removed_keys.h"
#include "pool/pool.h"

namespace ems::node {

struct BulkServerOptions {
  std::string host = "0.0.0.0";
  int port = 0;  // 0 picks a free port
  std::string node_id;
  std::shared_ptr<const Credential> credential;  // nullptr or no key = none required
  // The node's current cluster map; nullptr or returning nullptr = standalone (owns all keys).
  std::function<std::shared_ptr<const ClusterView>()> view;
  // A peer that stalls longer than this mid-request loses its connection, and with it any
  // block it was writing (an idle pooled connection may wait for its next request forever).
  absl::Duration io_timeout = absl::Seconds(30);
  int max_connections = 1024;
  // Keys clients removed lately (data_service.h); a put here ends a key's entry. Not owned;
  // nullptr = none kept.
  RemovedKeys* removed_keys = nullptr;
};

// Thread-safe. `pool` is not owned and must outlive the server.
class BulkServer {
 public:
  static absl::StatusOr<std::unique_ptr<BulkServer>> Start(pool::Pool* pool,
                                                           BulkServerOptions options);
  ~BulkServer();  // stops accepting, ends every connection, joins threads

  int port() const { return port_; }
  int connections() const { return threads_->connections(); }

 private:
  BulkServer(pool::Pool* pool, BulkServerOptions options, int port)
      : pool_(pool), options_(std::move(options)), port_(port) {}
  void Serve(int fd);
  // OK if `hello_key` passes the current credential: at once while its generation is still
  // `*checked_generation`, otherwise after a check that advances it.
  absl::Status Recheck(const std::string& hello_key, uint64_t* checked_generation) const;
  // WATCH_KEYS: from here on the connection carries the pool's key changes (bulk/wire.h).
  // `hello_key` passed the credential of `generation`; a newer credential it fails ends it.
  void Watch(int fd, uint64_t epoch, const std::string& hello_key, uint64_t generation);

  pool::Pool* const pool_;
  const BulkServerOptions options_;
  const int port_;
  std::unique_ptr<internal::ConnectionThreads> threads_;
};

}  // namespace ems::node

#endif  // EMS_NODE_BULK_SERVER_H_
