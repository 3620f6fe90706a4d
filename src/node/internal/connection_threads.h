// Thread-per-connection serving for the node's socket servers (the local shared-memory socket
// and the bulk TCP channel). Their clients are few (one per inference worker or client thread)
// and their calls block on large transfers, so a thread each is simpler and faster than an
// event loop.
#ifndef EMS_NODE_INTERNAL_CONNECTION_THREADS_H_
#define EMS_NODE_INTERNAL_CONNECTION_THREADS_H_

#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"

namespace ems::node::internal {

// Accepts on `listen_fd` (owned) and runs `serve(fd)` on a thread per connection; `serve`
// returns when its connection is done and the fd is then closed. Connections beyond
// `max_connections` are refused, and so is one whose thread cannot start. A failing accept
// (out of fds, memory or buffers) is logged and retried after a short wait: only the
// destructor stops the accepting. The destructor stops accepting, shuts every connection down
// (waking blocked reads) and joins all threads. Thread-safe.
class ConnectionThreads {
 public:
  ConnectionThreads(int listen_fd, int max_connections, std::string name,
                    std::function<void(int fd)> serve);
  ~ConnectionThreads();

  int connections() const;

 private:
  void AcceptLoop();
  void Run(int fd);

  const int listen_fd_;
  const int max_connections_;
  const std::string name_;  // for log lines
  const std::function<void(int)> serve_;

  mutable absl::Mutex mu_;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  absl::flat_hash_map<int, std::thread> threads_ ABSL_GUARDED_BY(mu_);  // by open fd
  std::vector<std::thread> finished_ ABSL_GUARDED_BY(mu_);  // threads of closed connections

  std::thread accept_thread_;
};

}  // namespace ems::node::internal

#endif  // EMS_NODE_INTERNAL_CONNECTION_THREADS_H_
