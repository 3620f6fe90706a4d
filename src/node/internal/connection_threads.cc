#include "node/internal/connection_threads.h"

#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>

#include "spdlog/spdlog.h"

namespace ems::node::internal {

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

void ConnectionThreads::AcceptLoop() {
  while (true) {
    const int fd = accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EINTR || errno == ECONNABORTED) continue;
      return;  // shut down
    }
    absl::MutexLock lock(&mu_);
    for (auto& t : finished_) t.join();  // reap threads of connections that ended
    finished_.clear();
    if (stopping_ || static_cast<int>(threads_.size()) >= max_connections_) {
      spdlog::warn("{}: refusing a connection ({} open)", name_, threads_.size());
      close(fd);
      continue;
    }
    threads_.emplace(fd, std::thread([this, fd] { Run(fd); }));
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
