#include "node/internal/connection_threads.h"

#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <system_error>

#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "spdlog/spdlog.h"

namespace ems::node::internal {
namespace {

// How long the accept loop waits after an error that is not the new connection's own (most
// often EMFILE/ENFILE: no fd left until some connection closes). Retrying at once would spin
// a core for as long as the shortage lasts.
constexpr absl::Duration kAcceptBackoff = absl::Milliseconds(50);
// A shortage can last minutes; one warning per interval says so without flooding the log.
constexpr absl::Duration kAcceptLogInterval = absl::Seconds(10);

// Errors of the connection being accepted, not of the listening socket: Linux's accept()
// reports a pending network error of the new connection (accept(2), "Error handling"). The
// next connection is unaffected, so the loop retries at once.
bool IsConnectionError(int err) {
  switch (err) {
    case EINTR:
    case ECONNABORTED:
    case EPROTO:
    case ENETDOWN:
    case ENETUNREACH:
    case ENOPROTOOPT:
    case EHOSTDOWN:
    case EHOSTUNREACH:
    case ENONET:
    case EOPNOTSUPP:
    case EPERM:
      return true;
    default:
      return false;
  }
}

}  // namespace

ConnectionThreads::ConnectionThreads(int listen_fd, int max_connections, std::string name,
                                     std::function<void(int fd)> serve)
    : listen_fd_(listen_fd),
      max_connections_(max_connections),
      name_(std::move(name)),
      serve_(std::move(serve)) {
  accept_thread_ = std::thread([this] { AcceptLoop(); });
}

ConnectionThreads::~ConnectionThreads() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
    for (auto& [fd, thread] : threads_) shutdown(fd, SHUT_RDWR);  // wakes its blocked call
  }
  shutdown(listen_fd_, SHUT_RDWR);
  accept_thread_.join();
  close(listen_fd_);
  // Connection threads leave the map on exit; wait for all of them.
  mu_.LockWhen(absl::Condition(
      +[](absl::flat_hash_map<int, std::thread>* m) { return m->empty(); }, &threads_));
  std::vector<std::thread> done = std::move(finished_);
  mu_.Unlock();
  for (auto& t : done) t.join();
}

int ConnectionThreads::connections() const {
  absl::MutexLock lock(&mu_);
  return static_cast<int>(threads_.size());
}

// The loop ends only when the destructor shuts the listening socket down. Every other failure
// passes (the fd table fills up under load and empties again), so it never stops serving for
// good while the node lives.
void ConnectionThreads::AcceptLoop() {
  absl::Time last_warning = absl::InfinitePast();
  int unreported = 0;  // errors since the last warning
  while (true) {
    const int fd = accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) {
      const int err = errno;
      if (IsConnectionError(err)) continue;
      absl::MutexLock lock(&mu_);
      if (stopping_) return;
      if (err == EBADF || err == EINVAL) {  // only the destructor's shutdown should cause these
        spdlog::error("{}: accept failed: {}; no longer accepting connections", name_,
                      std::strerror(err));
        return;
      }
      ++unreported;
      if (absl::Now() - last_warning >= kAcceptLogInterval) {
        spdlog::warn("{}: accept failed: {} ({} time(s) since the last warning); retrying", name_,
                     std::strerror(err), unreported);
        last_warning = absl::Now();
        unreported = 0;
      }
      mu_.AwaitWithTimeout(absl::Condition(&stopping_), kAcceptBackoff);
      if (stopping_) return;
      continue;
    }
    absl::MutexLock lock(&mu_);
    for (auto& t : finished_) t.join();  // reap threads of connections that ended
    finished_.clear();
    if (stopping_ || static_cast<int>(threads_.size()) >= max_connections_) {
      spdlog::warn("{}: refusing a connection ({} open)", name_, threads_.size());
      close(fd);
      continue;
    }
    // The slot first: the thread's constructor is then the only call that can fail (EAGAIN
    // when the process is out of threads), and that connection alone is refused.
    std::thread& slot = threads_[fd];
    try {
      slot = std::thread([this, fd] { Run(fd); });
    } catch (const std::system_error& e) {
      spdlog::warn("{}: refusing a connection: cannot start its thread: {} ({} open)", name_,
                   e.what(), threads_.size() - 1);
      threads_.erase(fd);
      close(fd);
    }
  }
}

void ConnectionThreads::Run(int fd) {
  serve_(fd);
  absl::MutexLock lock(&mu_);
  // Close under the lock: the destructor must never shut down an fd number already reused.
  close(fd);
  auto it = threads_.find(fd);
  finished_.push_back(std::move(it->second));
  threads_.erase(it);
}

}  // namespace ems::node::internal
