#include "client/local_channel.h"

#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "common/prefix_hash.h"

namespace ems::client {
namespace {

constexpr size_t kMaxResponseBytes = 4 << 20;

void ToProto(const BlockKey& key, v1::Key* out) {
  out->set_ns(key.ns);
  out->set_digest(key.digest.bytes.data(), key.digest.bytes.size());
}

absl::Status GrantStatus(const v1::LocalGrant& g) {
  if (g.code() == 0) return absl::OkStatus();
  return absl::Status(static_cast<absl::StatusCode>(g.code()), g.message());
}

}  // namespace

absl::StatusOr<std::unique_ptr<LocalChannel>> LocalChannel::Connect(const Options& options) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (options.socket_path.empty() || options.socket_path.size() >= sizeof(addr.sun_path)) {
    return absl::InvalidArgumentError(
        absl::StrCat("local socket path '", options.socket_path, "' is empty or too long"));
  }
  std::memcpy(addr.sun_path, options.socket_path.c_str(), options.socket_path.size());
  int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
  if (fd < 0) return absl::InternalError(absl::StrCat("socket: ", std::strerror(errno)));
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    absl::Status s =
        absl::UnavailableError(absl::StrCat("cannot connect to the node's local socket ",
                                            options.socket_path, ": ", std::strerror(errno)));
    close(fd);
    return s;
  }
  // A channel half-built for the hello round trip: no arena yet.
  std::unique_ptr<LocalChannel> probe(new LocalChannel(fd, nullptr, 0, "", false));
  v1::LocalRequest hello;
  hello.mutable_hello();
  int arena_fd = -1;
  auto resp = probe->RoundTrip(hello, &arena_fd);
  if (!resp.ok()) return resp.status();
  if (arena_fd < 0 || resp->arena_bytes() == 0) {
    if (arena_fd >= 0) close(arena_fd);
    return absl::InternalError(
        absl::StrCat("node at ", options.socket_path, " did not pass its arena"));
  }
  // MAP_POPULATE maps the node's (prefaulted) pages now instead of faulting on each first
  // touch on the data path.
  void* base = mmap(nullptr, resp->arena_bytes(), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE,
                    arena_fd, 0);
  close(arena_fd);  // the mapping keeps the memory
  if (base == MAP_FAILED) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "cannot map the node's arena of ", resp->arena_bytes(), " bytes: ", std::strerror(errno)));
  }
  const int sock = probe->fd_;
  std::unique_ptr<LocalChannel> channel(new LocalChannel(sock, static_cast<uint8_t*>(base),
                                                         resp->arena_bytes(), resp->node_id(),
                                                         options.verify_checksums));
  // The probe must not close the socket the real channel now owns.
  probe->fd_ = -1;
  return channel;
}

LocalChannel::~LocalChannel() {
  if (base_ != nullptr) munmap(base_, arena_bytes_);
  if (fd_ >= 0) close(fd_);  // the node ends every lease still held
}

absl::StatusOr<v1::LocalResponse> LocalChannel::RoundTrip(v1::LocalRequest& req, int* received_fd) {
  absl::MutexLock lock(&mu_);
  req.set_id(next_id_++);
  const std::string out = req.SerializeAsString();
  if (send(fd_, out.data(), out.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(out.size())) {
    return absl::UnavailableError(
        absl::StrCat("local node socket send failed: ", std::strerror(errno)));
  }
  // One buffer for the channel's life: a fresh zeroed 4 MiB per round trip cost more than the
  // 2 MiB copy it served (mmap, page faults and memset, twice per read).
  if (recv_buf_ == nullptr) recv_buf_.reset(new char[kMaxResponseBytes]);
  char* const buf = recv_buf_.get();
  iovec iov{buf, kMaxResponseBytes};
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))];
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control;
  msg.msg_controllen = sizeof(control);
  ssize_t n = recvmsg(fd_, &msg, MSG_CMSG_CLOEXEC);
  if (n <= 0) {
    return absl::UnavailableError(
        n == 0 ? "local node closed the socket"
               : absl::StrCat("local node socket recv failed: ", std::strerror(errno)));
  }
  for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
    if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
      int fd;
      std::memcpy(&fd, CMSG_DATA(c), sizeof(fd));
      if (received_fd != nullptr) {
        *received_fd = fd;
      } else {
        close(fd);
      }
    }
  }
  v1::LocalResponse resp;
  if (!resp.ParseFromArray(buf, static_cast<int>(n)) || resp.id() != req.id()) {
    return absl::InternalError("local node sent a malformed or mismatched response");
  }
  if (resp.code() != 0) {
    return absl::Status(static_cast<absl::StatusCode>(resp.code()), resp.message());
  }
  return resp;
}

absl::StatusOr<absl::Span<uint8_t>> LocalChannel::Block(const v1::LocalGrant& g) const {
  // A grant outside the arena would be a node bug; never touch memory on its word alone.
  if (g.offset() > arena_bytes_ || g.size() > arena_bytes_ - g.offset()) {
    return absl::InternalError(absl::StrCat("node granted [", g.offset(), ", +", g.size(),
                                            ") outside its arena of ", arena_bytes_, " bytes"));
  }
  return absl::MakeSpan(base_ + g.offset(), g.size());
}

void LocalChannel::ReleaseLeases(const std::vector<uint64_t>& leases) {
  if (leases.empty()) return;
  v1::LocalRequest req;
  for (uint64_t l : leases) req.mutable_release()->add_leases(l);
  // A failed release is harmless: the lease expires, or ends when the socket closes.
  RoundTrip(req).IgnoreError();
}

std::vector<absl::Status> LocalChannel::BatchPut(absl::Span<const LocalPutItem> items) {
  std::vector<absl::Status> out(items.size());
  v1::LocalRequest req;
  for (const LocalPutItem& item : items) {
    v1::LocalWrite* w = req.mutable_write()->add_items();
    ToProto(item.key, w->mutable_key());
    w->set_size(item.value.size());
    if (item.parent != nullptr) ToProto(*item.parent, w->mutable_parent());
  }
  auto resp = RoundTrip(req);
  if (!resp.ok() || resp->grants_size() != static_cast<int>(items.size())) {
    absl::Status s = resp.ok() ? absl::InternalError("local node answered a different item count")
                               : resp.status();
    for (auto& o : out) o = s;
    return out;
  }
  v1::LocalRequest seal;
  std::vector<size_t> sealed_items;
  std::vector<uint64_t> abandoned;
  for (size_t i = 0; i < items.size(); ++i) {
    const v1::LocalGrant& g = resp->grants(static_cast<int>(i));
    out[i] = GrantStatus(g);
    if (!out[i].ok() || g.existed()) continue;
    auto block = Block(g);
    if (!block.ok() || block->size() != items[i].value.size()) {
      out[i] = block.ok() ? absl::InternalError("local node granted a block of the wrong size")
                          : block.status();
      abandoned.push_back(g.lease());
      continue;
    }
    std::memcpy(block->data(), items[i].value.data(), block->size());
    seal.mutable_seal()->add_leases(g.lease());
    // The node verifies the bytes it seals against the checksum of the caller's buffer, so a
    // torn copy can never become visible.
    seal.mutable_seal()->add_checksums(
        verify_ ? Checksum(items[i].value.data(), items[i].value.size()) : 0);
    sealed_items.push_back(i);
  }
  ReleaseLeases(abandoned);
  if (sealed_items.empty()) return out;
  auto sealed = RoundTrip(seal);
  for (size_t j = 0; j < sealed_items.size(); ++j) {
    absl::Status s = !sealed.ok() ? sealed.status()
                     : j < static_cast<size_t>(sealed->grants_size())
                         ? GrantStatus(sealed->grants(static_cast<int>(j)))
                         : absl::InternalError("local node answered too few seals");
    out[sealed_items[j]] = s;
  }
  return out;
}

absl::Status LocalChannel::Put(const BlockKey& key, absl::Span<const uint8_t> value,
                               const BlockKey* parent) {
  LocalPutItem item{key, value, parent};
  return BatchPut(absl::MakeConstSpan(&item, 1))[0];
}

std::vector<absl::StatusOr<size_t>> LocalChannel::BatchGet(
    absl::Span<const BlockKey> keys, absl::Span<const absl::Span<uint8_t>> buffers) {
  std::vector<absl::StatusOr<size_t>> out(keys.size(), absl::InternalError("not read"));
  if (buffers.size() != keys.size()) {
    for (auto& o : out) {
      o = absl::InvalidArgumentError(
          absl::StrCat("batch get of ", keys.size(), " keys got ", buffers.size(), " buffers"));
    }
    return out;
  }
  v1::LocalRequest req;
  for (const BlockKey& k : keys) ToProto(k, req.mutable_read()->add_keys());
  auto resp = RoundTrip(req);
  if (!resp.ok() || resp->grants_size() != static_cast<int>(keys.size())) {
    absl::Status s = resp.ok() ? absl::InternalError("local node answered a different key count")
                               : resp.status();
    for (auto& o : out) o = s;
    return out;
  }
  std::vector<uint64_t> leases;
  for (size_t i = 0; i < keys.size(); ++i) {
    const v1::LocalGrant& g = resp->grants(static_cast<int>(i));
    if (absl::Status s = GrantStatus(g); !s.ok()) {
      out[i] = s;
      continue;
    }
    leases.push_back(g.lease());
    auto block = Block(g);
    if (!block.ok()) {
      out[i] = block.status();
    } else if (block->size() > buffers[i].size()) {
      out[i] =
          absl::OutOfRangeError(absl::StrCat("block ", keys[i].ToString(), " is ", block->size(),
                                             " bytes; the buffer holds ", buffers[i].size()));
    } else {
      std::memcpy(buffers[i].data(), block->data(), block->size());
      if (verify_ && Checksum(buffers[i].data(), block->size()) != g.checksum()) {
        out[i] = absl::DataLossError(
            absl::StrCat("block ", keys[i].ToString(), " failed its checksum on the local path"));
      } else {
        out[i] = block->size();
      }
    }
  }
  ReleaseLeases(leases);
  return out;
}

absl::StatusOr<size_t> LocalChannel::Get(const BlockKey& key, absl::Span<uint8_t> out) {
  return BatchGet(absl::MakeConstSpan(&key, 1), absl::MakeConstSpan(&out, 1))[0];
}

absl::StatusOr<size_t> LocalChannel::MatchPrefix(absl::Span<const BlockKey> keys) {
  v1::LocalRequest req;
  for (const BlockKey& k : keys) ToProto(k, req.mutable_match_prefix()->add_keys());
  auto resp = RoundTrip(req);
  if (!resp.ok()) return resp.status();
  return static_cast<size_t>(resp->matched());
}

}  // namespace ems::client
