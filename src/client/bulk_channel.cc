#include "client/bulk_channel.h"

#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "common/prefix_hash.h"
#include "common/status_macros.h"

namespace ems::client {
namespace {

// Connects with a deadline (a blocking connect to a dead host waits minutes).
absl::StatusOr<int> Connect(const std::string& host, int port, absl::Duration timeout) {
  struct addrinfo hints = {};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  struct addrinfo* found = nullptr;
  const std::string service = absl::StrCat(port);
  if (int rc = getaddrinfo(host.c_str(), service.c_str(), &hints, &found); rc != 0) {
    return absl::UnavailableError(
        absl::StrCat("bulk channel: cannot resolve ", host, ": ", gai_strerror(rc)));
  }
  absl::Status last = absl::UnavailableError(absl::StrCat("bulk channel: no address for ", host));
  for (struct addrinfo* a = found; a != nullptr; a = a->ai_next) {
    const int fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) continue;
    int rc = connect(fd, a->ai_addr, a->ai_addrlen);
    if (rc != 0 && errno == EINPROGRESS) {
      // A signal (common in Python hosts) interrupts the wait: wait again for what is left,
      // never take the socket for connected.
      const absl::Time deadline = absl::Now() + timeout;
      struct pollfd p = {fd, POLLOUT, 0};
      do {
        const int64_t left_ms = absl::ToInt64Milliseconds(deadline - absl::Now());
        rc = poll(&p, 1, static_cast<int>(std::max<int64_t>(0, left_ms)));
      } while (rc < 0 && errno == EINTR);
      int err = rc == 0 ? ETIMEDOUT : rc < 0 ? errno : 0;
      socklen_t len = sizeof(err);
      if (rc > 0) getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
      errno = err;
      rc = err == 0 ? 0 : -1;
    }
    if (rc == 0) {
      fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
      freeaddrinfo(found);
      bulk::TuneSocket(fd, timeout);
      return fd;
    }
    last = absl::UnavailableError(
        absl::StrCat("bulk channel: connect to ", host, ":", port, ": ", std::strerror(errno)));
    close(fd);
  }
  freeaddrinfo(found);
  return last;
}

// Reads a ResponseHeader; a non-OK answer becomes the status, with the node's message.
absl::Status ReadHeader(bulk::Reader& in, const std::string& peer, bulk::ResponseHeader* h) {
  if (absl::Status s = in.Read(h, sizeof(*h)); !s.ok()) return s;
  if (h->code == 0) return absl::OkStatus();
  if (h->message_bytes > bulk::kMaxMessageBytes) {
    return absl::UnavailableError(absl::StrCat("bulk channel: ", peer, " sent a bad answer"));
  }
  std::string message(h->message_bytes, '\0');
  if (absl::Status s = in.Read(message.data(), message.size()); !s.ok()) return s;
  // A transport-like code from the node is not a transport failure of ours.
  auto code = static_cast<absl::StatusCode>(h->code);
  if (code == absl::StatusCode::kUnavailable || code == absl::StatusCode::kDeadlineExceeded) {
    code = absl::StatusCode::kInternal;
  }
  return absl::Status(code, absl::StrCat(peer, ": ", message));
}

}  // namespace

BulkChannel::~BulkChannel() {
  absl::MutexLock lock(&mu_);
  for (int fd : idle_) close(fd);
}

absl::StatusOr<int> BulkChannel::Open(absl::Duration timeout) {
  auto fd = Connect(options_.host, options_.port, timeout);
  if (!fd.ok()) return fd.status();
  bulk::RequestHeader h;
  h.op = static_cast<uint8_t>(bulk::Op::kHello);
  h.count = static_cast<uint32_t>(options_.cd_key.size());
  struct iovec iov[2] = {{&h, sizeof(h)},
                         {const_cast<char*>(options_.cd_key.data()), options_.cd_key.size()}};
  bulk::ResponseHeader rh;
  absl::Status s = bulk::WriteAll(*fd, iov, 2);
  bulk::Reader in(*fd);
  if (s.ok()) s = ReadHeader(in, absl::StrCat(options_.host, ":", options_.port), &rh);
  if (!s.ok()) {
    close(*fd);
    return s;
  }
  return fd;
}

absl::StatusOr<int> BulkChannel::Take(bool* reused, absl::Duration timeout) {
  {
    absl::MutexLock lock(&mu_);
    if (!idle_.empty()) {
      const int fd = idle_.back();
      idle_.pop_back();
      *reused = true;
      return fd;
    }
  }
  *reused = false;
  return Open(timeout);
}

void BulkChannel::Give(int fd) {
  {
    absl::MutexLock lock(&mu_);
    if (idle_.size() < kMaxIdle) {
      idle_.push_back(fd);
      return;
    }
  }
  close(fd);
}

BulkCall::BulkCall(BulkChannel* channel, bulk::Op op, uint64_t epoch)
    : channel_(channel), op_(op), epoch_(epoch) {}

BulkCall::~BulkCall() { Close(); }

void BulkCall::Close() {
  if (fd_ >= 0) close(fd_);
  fd_ = -1;
}

void BulkCall::AddGet(const BlockKey* key, absl::Span<uint8_t> out) {
  items_.push_back({key, nullptr, out.data(), out.size(), 0});
}

void BulkCall::AddPut(const BlockKey* key, absl::Span<const uint8_t> value, uint64_t checksum,
                      const BlockKey* parent) {
  items_.push_back({key, parent, const_cast<uint8_t*>(value.data()), value.size(), checksum});
}

void BulkCall::AddKey(const BlockKey* key) { items_.push_back({key, nullptr, nullptr, 0, 0}); }

absl::Status BulkCall::SendOn(int fd, absl::Time deadline) {
  bulk::RequestHeader h;
  h.op = static_cast<uint8_t>(op_);
  h.count = static_cast<uint32_t>(items_.size());
  h.epoch = epoch_;
  // Metadata goes into one string; PUT values are sent from the caller's memory in place.
  std::string meta(reinterpret_cast<const char*>(&h), sizeof(h));
  std::vector<size_t> ends;  // where each PUT item's metadata ends in `meta`
  for (const Item& item : items_) {
    bulk::AppendKey(*item.key, &meta);
    if (op_ != bulk::Op::kPut) continue;
    bulk::PutItemHeader ph;
    ph.size = item.size;
    ph.checksum = item.checksum;
    ph.has_parent = item.parent != nullptr;
    meta.append(reinterpret_cast<const char*>(&ph), sizeof(ph));
    if (item.parent != nullptr) bulk::AppendKey(*item.parent, &meta);
    ends.push_back(meta.size());
  }
  // Waits for the node to take the request only until the deadline (at least a floor at a
  // time, as Finish): with the socket's timeout per send, a stalled node cost several.
  auto left = [&] { return Left(deadline); };
  if (op_ != bulk::Op::kPut) {
    struct iovec one = {meta.data(), meta.size()};
    return bulk::WriteAll(fd, &one, 1, left);
  }
  std::vector<struct iovec> iov;
  iov.reserve(2 * items_.size());
  size_t begin = 0;
  for (size_t i = 0; i < items_.size(); ++i) {
    iov.push_back({meta.data() + begin, ends[i] - begin});
    iov.push_back({items_[i].data, items_[i].size});
    begin = ends[i];
  }
  return bulk::WriteAll(fd, iov.data(), static_cast<int>(iov.size()), left);
}

absl::Status BulkCall::ReceiveOn(int fd) {
  const BulkChannelOptions& o = channel_->options();
  const std::string peer = absl::StrCat(o.host, ":", o.port);
  bulk::Reader in(fd);
  bulk::ResponseHeader h;
  absl::Status s = ReadHeader(in, peer, &h);
  node_epoch_ = h.epoch;
  if (!s.ok()) return s;
  if (op_ == bulk::Op::kMatchPrefix) {
    matched_ = h.count;
    return absl::OkStatus();
  }
  if (h.count != items_.size()) {
    return absl::UnavailableError(
        absl::StrCat("bulk channel: ", peer, " answered ", h.count, " items for ", items_.size()));
  }
  results_.assign(items_.size(), absl::NotFoundError("not found"));
  for (size_t i = 0; i < items_.size(); ++i) {
    const Item& item = items_[i];
    if (op_ == bulk::Op::kPut) {
      bulk::ItemStatus st;
      EMS_RETURN_IF_ERROR(in.Read(&st, sizeof(st)));
      if (st.message_bytes > bulk::kMaxMessageBytes) {
        return absl::UnavailableError(absl::StrCat("bulk channel: ", peer, " sent a bad answer"));
      }
      std::string message(st.message_bytes, '\0');
      EMS_RETURN_IF_ERROR(in.Read(message.data(), message.size()));
      if (st.code == 0) {
        results_[i] = size_t{0};
      } else {
        results_[i] = absl::Status(static_cast<absl::StatusCode>(st.code),
                                   absl::StrCat("put to ", peer, ": ", message));
      }
      continue;
    }
    bulk::GetItemHeader gh;
    EMS_RETURN_IF_ERROR(in.Read(&gh, sizeof(gh)));
    if (gh.code != 0) {
      const auto code = static_cast<absl::StatusCode>(gh.code);
      results_[i] =
          code == absl::StatusCode::kNotFound
              ? absl::NotFoundError(absl::StrCat("key ", item.key->ToString(), " not found"))
              : absl::Status(code, absl::StrCat("get from ", peer, " failed"));
      continue;
    }
    if (gh.size > item.size) {
      EMS_RETURN_IF_ERROR(in.Discard(gh.size));
      results_[i] = absl::OutOfRangeError(absl::StrCat(
          "block ", item.key->ToString(), " is ", gh.size, " bytes; the buffer holds ", item.size));
      continue;
    }
    EMS_RETURN_IF_ERROR(in.Read(item.data, gh.size));
    if (o.verify_checksums && Checksum(item.data, gh.size) != gh.checksum) {
      results_[i] = absl::DataLossError(
          absl::StrCat("block ", item.key->ToString(), " from ", peer, " failed its checksum"));
    } else {
      results_[i] = static_cast<size_t>(gh.size);
    }
  }
  return absl::OkStatus();
}

absl::Duration BulkCall::Left(absl::Time deadline) const {
  const absl::Duration io_timeout = channel_->options().timeout;
  return std::clamp(deadline - absl::Now(), std::min(io_timeout, absl::Milliseconds(200)),
                    io_timeout);
}

void BulkCall::Send(absl::Time deadline) {
  // Requests to several nodes go out one after the other: each may wait (for a new
  // connection's HELLO, for a node to read a large put) only until the fan-out's deadline,
  // or stalled nodes cost the caller one timeout each.
  auto fd = channel_->Take(&reused_, Left(deadline));
  if (!fd.ok()) {
    status_ = fd.status();
    return;
  }
  fd_ = *fd;
  status_ = SendOn(fd_, deadline);
}

void BulkCall::Finish(absl::Time deadline) {
  const absl::Duration io_timeout = channel_->options().timeout;
  // The answer is awaited until the fan-out's deadline, not a fresh timeout per node: stalled
  // nodes finished one after another must not add up.
  auto limit = [&](int fd) {
    const struct timeval tv = absl::ToTimeval(Left(deadline));
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  };
  if (fd_ >= 0 && status_.ok()) {
    limit(fd_);
    status_ = ReceiveOn(fd_);
  }
  // Only a connection that died while idle is worth a second try (the peer closed it: a
  // restart, or the node's idle limit); a node that did not answer in time would only make
  // the caller wait a second timeout.
  if (absl::IsUnavailable(status_) && reused_ && !retried_) {
    // The pooled connection died while idle (the node restarted, or closed it): once more on
    // a fresh one.
    Close();
    retried_ = true;
    reused_ = false;
    auto fd = channel_->Open(Left(deadline));
    status_ = fd.ok() ? SendOn(*fd, deadline) : fd.status();
    if (fd.ok()) fd_ = *fd;
    if (status_.ok()) {
      limit(fd_);
      status_ = ReceiveOn(fd_);
    }
  }
  // After a whole answer the stream is in step and the connection can serve the next call.
  if (fd_ >= 0 && (status_.ok() || absl::IsFailedPrecondition(status_))) {
    const struct timeval tv = absl::ToTimeval(io_timeout);  // the pool's default again
    setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd_, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));  // Open may have set less
    channel_->Give(fd_);
    fd_ = -1;
  }
  Close();
}

}  // namespace ems::client
