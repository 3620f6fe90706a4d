#include "node/local_server.h"

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <optional>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "common/key.h"
#include "common/key_proto.h"
#include "common/status_macros.h"
#include "ems/v1/local.pb.h"
#include "node/admission.h"
#include "spdlog/spdlog.h"

namespace ems::node {
namespace {

// Requests are small control messages; a batch of 4096 keys fits easily.
constexpr size_t kMaxMessageBytes = 1 << 20;
// Blanks one seal may ask for: a client keeps a few for its next puts, not a share of the pool.
constexpr uint32_t kMaxBlanksPerSeal = 64;
// A connection's leases end when it seals or releases them, or when it closes (its client
// exited, or dropped it), and never on a deadline (the requests' lease_ms are ignored): the
// client maps the arena, so while it is connected it may still be copying into or out of a
// granted block. A deadline gave a stalled client's space (a paused or swapping process) to
// another block, which the client then wrote over or read as its own. A client that dies
// closes its socket, and that ends every lease it held at once.
constexpr absl::Duration kConnectionLease = absl::InfiniteDuration();

// Bounds how long a blocking recv on `fd` waits; zero waits for ever.
void SetReceiveTimeout(int fd, absl::Duration wait) {
  struct timeval tv = absl::ToTimeval(wait);
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
}

// A write's key and, if it names one, its parent; the first that is malformed is the error.
struct WriteKeys {
  BlockKey key;
  std::optional<BlockKey> parent;
  const BlockKey* parent_ptr() const { return parent ? &*parent : nullptr; }
};
absl::StatusOr<WriteKeys> KeysOf(const v1::LocalWrite& item) {
  auto key = FromProto(item.key());
  if (!key.ok()) return key.status();
  WriteKeys w{*std::move(key), std::nullopt};
  if (item.has_parent()) {
    auto parent = FromProto(item.parent());
    if (!parent.ok()) return parent.status();
    w.parent = *std::move(parent);
  }
  return w;
}

// A grant's or a whole response's code and message.
template <typename Message>
void SetStatus(Message* m, const absl::Status& s) {
  m->set_code(static_cast<int>(s.code()));
  m->set_message(std::string(s.message()));
}

// Removes `lease` from the connection's set; a lease granted elsewhere is NOT_FOUND in `g`.
bool TakeOwned(absl::flat_hash_set<pool::LeaseId>& leases, pool::LeaseId lease, v1::LocalGrant* g) {
  g->set_lease(lease);
  if (leases.erase(lease) > 0) return true;
  SetStatus(
      g, absl::NotFoundError(absl::StrCat("lease ", lease, " was not granted on this connection")));
  return false;
}

// Sends `resp`, with `fds` (the arena's, then the directory's, on hello) as SCM_RIGHTS.
bool SendResponse(int fd, const v1::LocalResponse& resp, const std::vector<int>& fds) {
  std::string buf = resp.SerializeAsString();
  iovec iov{buf.data(), buf.size()};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  alignas(cmsghdr) char control[CMSG_SPACE(2 * sizeof(int))];
  if (!fds.empty()) {
    msg.msg_control = control;
    msg.msg_controllen = CMSG_SPACE(fds.size() * sizeof(int));
    cmsghdr* c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(fds.size() * sizeof(int));
    std::memcpy(CMSG_DATA(c), fds.data(), fds.size() * sizeof(int));
  }
  return sendmsg(fd, &msg, MSG_NOSIGNAL) == static_cast<ssize_t>(buf.size());
}

// Whether a live server takes connections on `addr`. A socket left by a process that exited
// refuses them; one that is frozen still queues them (or its queue is full: EAGAIN), and one
// of another socket type is someone else's.
bool Served(const sockaddr_un& addr) {
  const int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  const bool served = connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof(addr)) == 0 ||
                      errno == EAGAIN || errno == EPROTOTYPE;
  close(fd);
  return served;
}

}  // namespace

LocalServer::LocalServer(pool::Pool* pool, LocalServerOptions options, dev_t socket_dev,
                         ino_t socket_ino)
    : pool_(pool), options_(std::move(options)), socket_dev_(socket_dev), socket_ino_(socket_ino) {}

absl::StatusOr<std::unique_ptr<LocalServer>> LocalServer::Start(pool::Pool* pool,
                                                                LocalServerOptions options) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (options.socket_path.empty() || options.socket_path.size() >= sizeof(addr.sun_path)) {
    return absl::InvalidArgumentError(absl::StrCat("local socket path must be 1..",
                                                   sizeof(addr.sun_path) - 1, " bytes, got '",
                                                   options.socket_path, "'"));
  }
  std::memcpy(addr.sun_path, options.socket_path.c_str(), options.socket_path.size());
  // Only a stale socket of a previous run is replaced: unlinking one that a running node
  // serves took its local clients over to this node's arena, and left it serving nothing.
  if (Served(addr)) {
    return absl::FailedPreconditionError(
        absl::StrCat("local socket ", options.socket_path, " is served by a running process"));
  }
  int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
  if (fd < 0) return absl::InternalError(absl::StrCat("socket: ", std::strerror(errno)));
  unlink(options.socket_path.c_str());
  struct stat st {};
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 || listen(fd, 64) != 0 ||
      stat(options.socket_path.c_str(), &st) != 0) {
    absl::Status s = absl::UnavailableError(
        absl::StrCat("cannot listen on ", options.socket_path, ": ", std::strerror(errno)));
    close(fd);
    return s;
  }
  std::unique_ptr<LocalServer> server(
      new LocalServer(pool, std::move(options), st.st_dev, st.st_ino));
  LocalServer* raw = server.get();
  server->threads_ = std::make_unique<internal::ConnectionThreads>(
      fd, raw->options_.max_connections, "local path", [raw](int conn) { raw->Serve(conn); });
  spdlog::info("local path: serving the arena on {}", server->options_.socket_path);
  return server;
}

LocalServer::~LocalServer() {
  threads_.reset();  // ends every connection, and with it every lease it held
  // A successor may have bound the path meanwhile (a replacement started while this node
  // finished its calls): its socket is not ours to remove.
  struct stat st {};
  if (stat(options_.socket_path.c_str(), &st) == 0 && st.st_dev == socket_dev_ &&
      st.st_ino == socket_ino_) {
    unlink(options_.socket_path.c_str());
  }
}

void LocalServer::Record(const v1::LocalReadReport& report) {
  std::vector<BlockKey> hits;
  hits.reserve(report.hits_size());
  for (const v1::Key& k : report.hits()) {
    auto key = FromProto(k);
    if (key.ok()) hits.push_back(*std::move(key));  // a bad key names no block to touch
  }
  pool_->RecordLocalReads(hits, report.misses());
}

absl::Status LocalServer::CheckOwners(const v1::LocalRequest& req, v1::LocalResponse& resp) const {
  // Reads, lookups and seals of granted writes (checked when granted) name no key to place.
  const bool writes_keys = req.has_write() || (req.has_seal() && req.seal().keys_size() > 0);
  if (!writes_keys || req.epoch() == 0 || !options_.view) return absl::OkStatus();
  std::shared_ptr<const ClusterView> view = options_.view();
  if (view == nullptr || req.epoch() >= view->epoch()) return absl::OkStatus();
  const auto& writes = req.has_write() ? req.write().items() : req.seal().keys();
  std::vector<BlockKey> keys;
  keys.reserve(writes.size());
  for (const v1::LocalWrite& w : writes) {
    if (auto key = FromProto(w.key()); key.ok()) keys.push_back(*std::move(key));
  }
  absl::Status s = CheckOwnership(view.get(), options_.node_id, req.epoch(), keys);
  if (!s.ok()) resp.set_epoch(view->epoch());
  return s;
}

absl::Status LocalServer::Seal(const v1::LocalSeal& seal,
                               absl::flat_hash_set<pool::LeaseId>& leases,
                               v1::LocalResponse& resp) {
  const bool blanks = seal.keys_size() > 0;
  if (blanks && seal.keys_size() != seal.leases_size()) {
    return absl::InvalidArgumentError(
        absl::StrCat("seal names ", seal.keys_size(), " keys for ", seal.leases_size(), " blanks"));
  }
  if (seal.blanks() > kMaxBlanksPerSeal) {
    return absl::InvalidArgumentError(
        absl::StrCat("seal asks for ", seal.blanks(), " blanks; at most ", kMaxBlanksPerSeal));
  }
  for (int i = 0; i < seal.leases_size(); ++i) {
    const pool::LeaseId lease = seal.leases(i);
    const uint64_t sum = i < seal.checksums_size() ? seal.checksums(i) : 0;
    v1::LocalGrant* g = resp.add_grants();
    if (!TakeOwned(leases, lease, g)) continue;
    if (!blanks) {
      absl::Status s = pool_->SealLease(lease, sum);
      if (absl::IsFailedPrecondition(s)) leases.insert(lease);  // not a write: still held
      SetStatus(g, s);
      continue;
    }
    auto keys = KeysOf(seal.keys(i));
    if (!keys.ok()) {
      SetStatus(g, keys.status());
      pool_->Release(lease).IgnoreError();  // the blank goes back; this put failed
      continue;
    }
    if (options_.removed_keys != nullptr) options_.removed_keys->Forget(keys->key);
    absl::Status s = pool_->SealBlank(lease, keys->key, keys->parent_ptr(), sum);
    if (absl::IsFailedPrecondition(s)) leases.insert(lease);  // not a blank: still held
    if (pool::StoredAlready(s)) {
      g->set_existed(true);  // stored already: the put succeeded without these bytes
    } else {
      SetStatus(g, s);
    }
  }
  for (uint32_t i = 0; i < seal.blanks(); ++i) {
    auto blank = pool_->AcquireBlank(seal.blank_size(), kConnectionLease);
    if (!blank.ok()) break;  // fewer blanks only cost the client's next put a round trip
    leases.insert(blank->first);
    v1::LocalGrant* g = resp.add_blanks();
    g->set_lease(blank->first);
    g->set_offset(blank->second.offset);
    g->set_size(blank->second.size);
  }
  return absl::OkStatus();
}

absl::Status LocalServer::Admit(int fd, const v1::LocalRequest& req, Admission& admission) const {
  if (options_.credential) {
    if (req.has_hello()) {
      admission.hello_key = req.hello().cd_key();
      admission.checked_generation.reset();
    }
    const uint64_t generation = options_.credential->generation();
    if (admission.checked_generation != generation) {
      EMS_RETURN_IF_ERROR(
          options_.credential->Check(options_.node_id, admission.hello_key, "its local hello"));
      admission.checked_generation = generation;
    }
  }
  if (!admission.admitted) {
    admission.admitted = true;
    SetReceiveTimeout(fd, absl::ZeroDuration());  // clients pool connections; idle is fine
  }
  return absl::OkStatus();
}

void LocalServer::Serve(int fd) {
  // Leases granted on this connection and not yet sealed or released.
  absl::flat_hash_set<pool::LeaseId> leases;
  std::string buf(kMaxMessageBytes, '\0');
  Admission admission;
  SetReceiveTimeout(fd, options_.first_request_timeout);
  while (true) {
    ssize_t n = recv(fd, buf.data(), buf.size(), MSG_TRUNC);
    // Closed, reset or shut down; a silent new peer's wait ran out; or a zero-length packet,
    // which SOCK_SEQPACKET cannot tell from the end of the stream and no client sends: the
    // connection ends either way.
    if (n <= 0) break;
    v1::LocalRequest req;
    v1::LocalResponse resp;
    std::vector<int> pass_fds;
    bool silent = false;  // a release that asked for no answer, or a read report
    if (static_cast<size_t>(n) > buf.size() ||
        !req.ParseFromArray(buf.data(), static_cast<int>(n))) {
      resp.set_code(static_cast<int>(absl::StatusCode::kInvalidArgument));
      resp.set_message(static_cast<size_t>(n) > buf.size()
                           ? absl::StrCat("local request of ", n, " bytes exceeds ", buf.size())
                           : "local request is not a valid LocalRequest message");
    } else if (absl::Status s = Admit(fd, req, admission); !s.ok()) {
      // Refused before anything is granted or recorded; the connection ends with its leases,
      // like a bulk connection whose key no longer passes.
      resp.set_id(req.id());
      SetStatus(&resp, s);
      SendResponse(fd, resp, {});
      break;
    } else if (absl::Status stale = CheckOwners(req, resp); !stale.ok()) {
      // Before anything is granted or sealed: the client routes these keys again.
      resp.set_id(req.id());
      if (req.has_report()) Record(req.report());
      SetStatus(&resp, stale);
    } else {
      resp.set_id(req.id());
      if (req.has_report()) Record(req.report());
      switch (req.op_case()) {
        case v1::LocalRequest::kHello:
          resp.set_arena_bytes(pool_->arena_bytes());
          resp.set_node_id(options_.node_id);
          pass_fds.push_back(pool_->arena_fd());
          if (pool_->directory_fd() >= 0) {
            resp.set_directory_bytes(pool_->directory_bytes());
            pass_fds.push_back(pool_->directory_fd());
          }
          break;
        case v1::LocalRequest::kWrite: {
          for (const v1::LocalWrite& item : req.write().items()) {
            v1::LocalGrant* g = resp.add_grants();
            auto keys = KeysOf(item);
            if (!keys.ok()) {
              SetStatus(g, keys.status());
              continue;
            }
            // A client's put: no migration push may undo it (removed_keys.h).
            if (options_.removed_keys != nullptr) options_.removed_keys->Forget(keys->key);
            auto grant =
                pool_->AcquireWrite(keys->key, item.size(), keys->parent_ptr(), kConnectionLease);
            if (!grant.ok()) {
              if (pool::StoredAlready(grant.status())) {
                g->set_existed(true);  // already stored: nothing to write
              } else {
                SetStatus(g, grant.status());
              }
              continue;
            }
            leases.insert(grant->first);
            g->set_lease(grant->first);
            g->set_offset(grant->second.offset);
            g->set_size(grant->second.size);
          }
          break;
        }
        case v1::LocalRequest::kSeal:
          if (absl::Status s = Seal(req.seal(), leases, resp); !s.ok()) {
            SetStatus(&resp, s);
          }
          break;
        case v1::LocalRequest::kRead: {
          for (const v1::Key& k : req.read().keys()) {
            v1::LocalGrant* g = resp.add_grants();
            auto key = FromProto(k);
            if (!key.ok()) {
              SetStatus(g, key.status());
              continue;
            }
            auto grant = pool_->AcquireRead(*key, kConnectionLease);
            if (!grant.ok()) {
              SetStatus(g, grant.status());
              continue;
            }
            leases.insert(grant->first);
            g->set_lease(grant->first);
            g->set_offset(grant->second.offset);
            g->set_size(grant->second.size);
            g->set_checksum(grant->second.checksum);
          }
          break;
        }
        case v1::LocalRequest::kRelease:
          silent = req.release().no_reply();
          for (pool::LeaseId lease : req.release().leases()) {
            v1::LocalGrant* g = resp.add_grants();
            if (!TakeOwned(leases, lease, g)) continue;
            absl::Status s = pool_->Release(lease);
            // An expired lease is already gone: releasing it is not the client's error.
            if (!s.ok() && !absl::IsNotFound(s)) SetStatus(g, s);
          }
          break;
        case v1::LocalRequest::kMatchPrefix: {
          std::vector<BlockKey> keys;
          keys.reserve(req.match_prefix().keys_size());
          absl::Status bad;
          for (const v1::Key& k : req.match_prefix().keys()) {
            auto key = FromProto(k);
            if (!key.ok()) {
              bad = key.status();
              break;
            }
            keys.push_back(*std::move(key));
          }
          if (!bad.ok()) {
            resp.set_code(static_cast<int>(bad.code()));
            resp.set_message(std::string(bad.message()));
          } else {
            resp.set_matched(static_cast<uint32_t>(pool_->MatchPrefix(keys)));
          }
          break;
        }
        case v1::LocalRequest::kReadReport:
          silent = true;
          Record(req.read_report());
          break;
        case v1::LocalRequest::OP_NOT_SET:
          resp.set_code(static_cast<int>(absl::StatusCode::kInvalidArgument));
          resp.set_message("local request names no operation");
          break;
      }
    }
    if (silent) continue;
    if (!SendResponse(fd, resp, pass_fds)) break;
  }
  // The client is gone: end whatever it still held.
  for (pool::LeaseId lease : leases) pool_->Release(lease).IgnoreError();
}

}  // namespace ems::node
