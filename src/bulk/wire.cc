#include "bulk/wire.h"

#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/check.h"

namespace ems::bulk {
namespace {

absl::Status IoError(const char* what, int err) {
  if (err == EAGAIN || err == EWOULDBLOCK) {
    return absl::DeadlineExceededError(absl::StrCat("bulk channel: ", what, " timed out"));
  }
  return absl::UnavailableError(absl::StrCat("bulk channel: ", what, ": ", strerror(err)));
}

// Loopback moves MiB values in a few system calls with buffers this size (measured in
// docs/zero-copy.md); the kernel caps them at net.core.[rw]mem_max.
constexpr int kSocketBufferBytes = 4 << 20;

// bulk::WriteAll. With `max_wait`: sends without blocking, and waits for room in the socket
// at most `(*max_wait)()` at a time (DEADLINE_EXCEEDED after that).
absl::Status WriteAllImpl(int fd, struct iovec* iov, int iovcnt,
                          const absl::FunctionRef<absl::Duration()>* max_wait) {
  while (iovcnt > 0) {
    struct msghdr msg = {};
    msg.msg_iov = iov;
    msg.msg_iovlen = static_cast<size_t>(std::min(iovcnt, IOV_MAX));
    const ssize_t n = sendmsg(fd, &msg, MSG_NOSIGNAL | (max_wait != nullptr ? MSG_DONTWAIT : 0));
    if (n < 0) {
      if (errno == EINTR) continue;
      if (max_wait != nullptr && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        const int ms = static_cast<int>(
            std::clamp<int64_t>(absl::ToInt64Milliseconds((*max_wait)()), 1, INT_MAX));
        struct pollfd p = {fd, POLLOUT, 0};
        const int ready = poll(&p, 1, ms);
        if (ready == 0) return IoError("send", EAGAIN);
        if (ready < 0 && errno != EINTR) return IoError("send", errno);
        continue;  // room (or an error the next send reports)
      }
      return IoError("send", errno);
    }
    size_t left = static_cast<size_t>(n);
    while (iovcnt > 0 && left >= iov->iov_len) {
      left -= iov->iov_len;
      ++iov;
      --iovcnt;
    }
    if (iovcnt > 0) {
      iov->iov_base = static_cast<char*>(iov->iov_base) + left;
      iov->iov_len -= left;
    }
  }
  return absl::OkStatus();
}

}  // namespace

void AppendKey(const BlockKey& key, std::string* out) {
  EMS_DCHECK(key.ns.size() <= UINT16_MAX, "a namespace too long for the wire");
  const uint16_t n = static_cast<uint16_t>(key.ns.size());
  out->append(reinterpret_cast<const char*>(&n), sizeof(n));
  out->append(key.ns);
  out->append(reinterpret_cast<const char*>(key.digest.bytes.data()), kDigestBytes);
}

absl::Status WriteAll(int fd, struct iovec* iov, int iovcnt) {
  return WriteAllImpl(fd, iov, iovcnt, nullptr);
}

absl::Status WriteAll(int fd, struct iovec* iov, int iovcnt,
                      absl::FunctionRef<absl::Duration()> max_wait) {
  return WriteAllImpl(fd, iov, iovcnt, &max_wait);
}

absl::Status WriteAll(int fd, const void* data, size_t n) {
  struct iovec iov = {const_cast<void*>(data), n};
  return WriteAll(fd, &iov, 1);
}

absl::Status ReadAll(int fd, void* data, size_t n) {
  char* p = static_cast<char*>(data);
  while (n > 0) {
    const ssize_t got = recv(fd, p, n, MSG_WAITALL);
    if (got == 0) return absl::UnavailableError("bulk channel: peer closed the connection");
    if (got < 0) {
      if (errno == EINTR) continue;
      return IoError("receive", errno);
    }
    p += got;
    n -= static_cast<size_t>(got);
  }
  return absl::OkStatus();
}

absl::Status Reader::Read(void* data, size_t n) {
  char* out = static_cast<char*>(data);
  while (n > 0) {
    if (begin_ == end_) {
      // Large reads skip the buffer: the value lands where it belongs with no copy.
      if (n >= kBufferBytes / 2) return ReadAll(fd_, out, n);
      begin_ = end_ = 0;
      const ssize_t got = recv(fd_, buf_.get(), kBufferBytes, 0);
      if (got == 0) return absl::UnavailableError("bulk channel: peer closed the connection");
      if (got < 0) {
        if (errno == EINTR) continue;
        return IoError("receive", errno);
      }
      end_ = static_cast<size_t>(got);
    }
    const size_t take = std::min(n, end_ - begin_);
    std::memcpy(out, buf_.get() + begin_, take);
    begin_ += take;
    out += take;
    n -= take;
  }
  return absl::OkStatus();
}

absl::Status Reader::Discard(uint64_t n) {
  std::vector<char> sink(static_cast<size_t>(std::min<uint64_t>(n, 1 << 20)));
  while (n > 0) {
    const size_t chunk = static_cast<size_t>(std::min<uint64_t>(n, sink.size()));
    if (absl::Status s = Read(sink.data(), chunk); !s.ok()) return s;
    n -= chunk;
  }
  return absl::OkStatus();
}

absl::StatusOr<BlockKey> Reader::ReadKey() {
  uint16_t ns_bytes = 0;
  if (absl::Status s = Read(&ns_bytes, sizeof(ns_bytes)); !s.ok()) return s;
  char buf[kMaxNamespaceBytes + kDigestBytes];
  if (ns_bytes > kMaxNamespaceBytes) {
    // Too long to be valid: consume it to stay in step, then refuse it.
    if (absl::Status s = Discard(ns_bytes + kDigestBytes); !s.ok()) return s;
    return absl::InvalidArgumentError(
        absl::StrCat("namespace of ", ns_bytes, " bytes (at most ", kMaxNamespaceBytes, ")"));
  }
  if (absl::Status s = Read(buf, ns_bytes + kDigestBytes); !s.ok()) return s;
  return MakeKey(absl::string_view(buf, ns_bytes), absl::string_view(buf + ns_bytes, kDigestBytes));
}

void TuneSocket(int fd, absl::Duration io_timeout) {
  const int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &kSocketBufferBytes, sizeof(kSocketBufferBytes));
  setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &kSocketBufferBytes, sizeof(kSocketBufferBytes));
  struct timeval tv = absl::ToTimeval(io_timeout);
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
  // A node waits for a pooled connection's next request with no timeout: a client host that
  // vanished without closing (a crash, a partition) would hold the node's thread and one of
  // its connection slots for good. Keepalive probes end such a connection in about a minute.
  const int idle_s = 30, interval_s = 10, probes = 3;
  setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof(one));
  setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle_s, sizeof(idle_s));
  setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &interval_s, sizeof(interval_s));
  setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &probes, sizeof(probes));
}

}  // namespace ems::bulk
