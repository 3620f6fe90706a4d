#include "client/local_channel.h"

#include <poll.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "common/key_proto.h"
#include "common/prefix_hash.h"
#include "spdlog/spdlog.h"

namespace ems::client {
namespace {

constexpr size_t kMaxResponseBytes = 4 << 20;
// Blanks are given back unused after kBlankKeep. Nodes now keep a connection's leases until
// it closes and ignore the lease asked for; kBlankLease is for older nodes, which expire a
// blank after it: well after kBlankKeep, so never under a put that is copying into it.
constexpr absl::Duration kBlankLease = absl::Seconds(30);
constexpr absl::Duration kBlankKeep = absl::Seconds(10);
// How often idle connections are checked for blanks kept past kBlankKeep: each is given back
// within a quarter of it more.
constexpr absl::Duration kBlankSweep = absl::Milliseconds(2500);  // kBlankKeep / 4
// A channel holds at most this share of the arena in blanks, split evenly over its connections:
// space held ahead is space the cache cannot use.
constexpr uint64_t kBlankShare = 64;

// What the node needs to know of a put: its key, size and parent (a grant or a blank's seal).
void ToWrite(const LocalPutItem& item, v1::LocalWrite* w) {
  ToProto(item.key, w->mutable_key());
  w->set_size(item.value.size());
  if (item.parent != nullptr) ToProto(*item.parent, w->mutable_parent());
}

}  // namespace

absl::Status LocalChannel::GrantStatus(const v1::LocalGrant& g) {
  if (g.code() == 0) return absl::OkStatus();
  return absl::Status(static_cast<absl::StatusCode>(g.code()), g.message());
}

LocalChannel::Conn::~Conn() {
  if (fd >= 0) close(fd);  // the node ends every lease still held on it
}

absl::StatusOr<std::unique_ptr<LocalChannel::Conn>> LocalChannel::Dial(
    const std::string& socket_path, absl::Duration timeout) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (socket_path.empty() || socket_path.size() >= sizeof(addr.sun_path)) {
    return absl::InvalidArgumentError(
        absl::StrCat("local socket path '", socket_path, "' is empty or too long"));
  }
  std::memcpy(addr.sun_path, socket_path.c_str(), socket_path.size());
  int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
  if (fd < 0) return absl::InternalError(absl::StrCat("socket: ", std::strerror(errno)));
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    absl::Status s = absl::UnavailableError(absl::StrCat(
        "cannot connect to the node's local socket ", socket_path, ": ", std::strerror(errno)));
    close(fd);
    return s;
  }
  // Bounds every send and receive: a stalled node must not hang the caller.
  const struct timeval tv = absl::ToTimeval(timeout);
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
  return std::make_unique<Conn>(fd);
}

absl::StatusOr<LocalChannel::ArenaId> LocalChannel::IdOf(int arena_fd) {
  struct stat st;
  if (fstat(arena_fd, &st) != 0) {
    return absl::InternalError(absl::StrCat("fstat of the node's arena: ", std::strerror(errno)));
  }
  return ArenaId{static_cast<uint64_t>(st.st_dev), static_cast<uint64_t>(st.st_ino)};
}

absl::Status LocalChannel::GoneError() const {
  return absl::UnavailableError(
      absl::StrCat("local path: the node that served ", socket_path_,
                   " has exited (its arena, which this channel maps, is gone)"));
}

absl::Status LocalChannel::CheckSameArena(Conn& c) {
  v1::LocalRequest hello;
  hello.mutable_hello()->set_cd_key(cd_key_);
  std::vector<int> fds;
  auto resp = RoundTrip(c, hello, &fds);
  absl::StatusOr<ArenaId> id = fds.empty() ? absl::InternalError("no arena passed") : IdOf(fds[0]);
  for (int fd : fds) close(fd);
  if (!resp.ok()) return resp.status();
  if (id.ok() && *id == arena_id_) return absl::OkStatus();
  // Another arena behind the same socket: the node restarted. Grants from it name offsets in
  // an arena this channel does not map; copying at them would write a dead node's memory.
  node_gone_.store(true, std::memory_order_relaxed);
  return GoneError();
}

absl::StatusOr<std::unique_ptr<LocalChannel>> LocalChannel::Connect(const Options& options) {
  if (options.max_connections < 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        "local channel max_connections must be at least 1, got ", options.max_connections));
  }
  if (options.timeout <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError(
        absl::StrCat("local channel timeout must be positive (InfiniteDuration for none), got ",
                     absl::FormatDuration(options.timeout)));
  }
  auto conn = Dial(options.socket_path, options.timeout);
  if (!conn.ok()) return conn.status();
  v1::LocalRequest hello;
  hello.mutable_hello()->set_cd_key(options.cd_key);
  std::vector<int> fds;
  auto resp = RoundTrip(**conn, hello, &fds);
  const int arena_fd = fds.empty() ? -1 : fds[0];
  const int directory_fd = fds.size() > 1 ? fds[1] : -1;
  auto close_fds = [&fds] {
    for (int fd : fds) close(fd);  // the mappings keep the memory
  };
  if (!resp.ok()) {
    close_fds();
    return resp.status();
  }
  if (arena_fd < 0 || resp->arena_bytes() == 0) {
    close_fds();
    return absl::InternalError(
        absl::StrCat("node at ", options.socket_path, " did not pass its arena"));
  }
  absl::StatusOr<ArenaId> arena_id = IdOf(arena_fd);
  if (!arena_id.ok()) {
    close_fds();
    return arena_id.status();
  }
  // MAP_POPULATE maps the node's (prefaulted) pages now instead of faulting on each first
  // touch on the data path.
  void* base = mmap(nullptr, resp->arena_bytes(), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE,
                    arena_fd, 0);
  if (base == MAP_FAILED) {
    const int err = errno;
    close_fds();
    return absl::ResourceExhaustedError(absl::StrCat(
        "cannot map the node's arena of ", resp->arena_bytes(), " bytes: ", std::strerror(err)));
  }
  std::unique_ptr<directory::Reader> dir;
  if (options.use_directory && directory_fd >= 0 && resp->directory_bytes() > 0) {
    auto mapped = directory::Reader::Map(directory_fd, resp->directory_bytes());
    if (mapped.ok()) {
      dir = *std::move(mapped);
    } else {
      spdlog::warn("local path: {}; asking the node for every read", mapped.status().ToString());
    }
  }
  close_fds();
  return std::unique_ptr<LocalChannel>(
      new LocalChannel(*std::move(conn), static_cast<uint8_t*>(base), resp->arena_bytes(),
                       *arena_id, resp->node_id(), std::move(dir), options));
}

LocalChannel::LocalChannel(std::unique_ptr<Conn> first, uint8_t* base, uint64_t bytes,
                           ArenaId arena_id, std::string node_id,
                           std::unique_ptr<directory::Reader> directory, const Options& options)
    : base_(base),
      arena_bytes_(bytes),
      arena_id_(arena_id),
      node_id_(std::move(node_id)),
      socket_path_(options.socket_path),
      cd_key_(options.cd_key),
      verify_(options.verify_checksums),
      max_connections_(options.max_connections),
      write_ahead_blocks_(std::clamp(options.write_ahead_blocks, 0, kMaxWriteAhead)),
      timeout_(options.timeout),
      directory_(std::move(directory)) {
  {
    absl::MutexLock lock(&mu_);
    idle_.push_back(std::move(first));
    open_ = 1;
  }
  sweeper_ = std::thread([this] { SweepLoop(); });
  if (directory_ == nullptr) return;
  flusher_ = std::thread([this] { FlushLoop(); });
  // The watch connection says hello like any other: the node closes a connection that stays
  // silent (it would hold one of its slots), and the arena the hello passes shows that this is
  // still the node whose arena the channel maps. The watcher polls: no timeout applies.
  auto watch = Dial(socket_path_, timeout_);
  if (watch.ok() && CheckSameArena(**watch).ok()) {
    watch_fd_ = (*watch)->fd;
    (*watch)->fd = -1;  // owned by watch_fd_ now
    watcher_ = std::thread([this] { WatchLoop(); });
  } else {
    node_gone_.store(true, std::memory_order_relaxed);  // cannot tell: do not trust the mapping
  }
}

void LocalChannel::SweepLoop() {
  while (true) {
    std::vector<std::unique_ptr<Conn>> holding;  // idle, with a blank kept too long
    absl::Time now;
    {
      absl::MutexLock lock(&mu_);
      if (mu_.AwaitWithTimeout(absl::Condition(&closing_), kBlankSweep)) return;
      now = absl::Now();
      for (auto it = idle_.begin(); it != idle_.end();) {
        const bool stale = std::any_of((*it)->blanks.begin(), (*it)->blanks.end(),
                                       [&](const Blank& b) { return b.taken + kBlankKeep < now; });
        if (!stale) {
          ++it;
          continue;
        }
        holding.push_back(std::move(*it));  // borrowed as by a call: no send under mu_
        it = idle_.erase(it);
      }
    }
    for (std::unique_ptr<Conn>& c : holding) {
      std::vector<uint64_t> give_back;
      std::erase_if(c->blanks, [&](const Blank& b) {
        const bool drop = b.taken + kBlankKeep < now;
        if (drop) give_back.push_back(b.lease);
        return drop;
      });
      ReleaseLeases(*c, give_back);
      GiveBack(std::move(c));
    }
  }
}

void LocalChannel::WatchLoop() {
  // The node never writes to this connection, so it only ever reads as hung up: when the node
  // exits (or crashes), or when the destructor shuts it down.
  pollfd p{watch_fd_, POLLRDHUP, 0};
  while (poll(&p, 1, -1) < 0 && errno == EINTR) {
  }
  node_gone_.store(true, std::memory_order_relaxed);
}

LocalChannel::~LocalChannel() {
  {
    absl::MutexLock lock(&mu_);
    closing_ = true;
  }
  sweeper_.join();
  if (watcher_.joinable()) {
    shutdown(watch_fd_, SHUT_RDWR);  // wakes the watcher
    watcher_.join();
  }
  if (watch_fd_ >= 0) close(watch_fd_);
  if (flusher_.joinable()) {
    {
      absl::MutexLock lock(&report_mu_);
      stopping_ = true;
    }
    flusher_.join();
    v1::LocalReadReport report;
    if (TakeReport(&report)) SendReport(report);
  }
  {
    absl::MutexLock lock(&mu_);
    idle_.clear();
  }
  munmap(base_, arena_bytes_);
}

int LocalChannel::open_connections() const {
  absl::MutexLock lock(&mu_);
  return open_;
}

LocalChannel::Counters LocalChannel::counters() const {
  auto get = [](const std::atomic<uint64_t>& a) { return a.load(std::memory_order_relaxed); };
  return {get(counters_.round_trips), get(counters_.directory_reads), get(counters_.leased_reads),
          get(counters_.blank_puts)};
}

absl::StatusOr<LocalChannel::Borrowed> LocalChannel::Borrow() {
  if (!node_alive()) return GoneError();
  {
    absl::MutexLock lock(&mu_);
    auto usable = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      return !idle_.empty() || open_ < max_connections_;
    };
    if (!mu_.AwaitWithTimeout(absl::Condition(&usable), timeout_)) {
      return absl::DeadlineExceededError(
          absl::StrCat("local path: no control connection to the node at ", socket_path_,
                       " came free within ", absl::FormatDuration(timeout_)));
    }
    if (!idle_.empty()) {
      std::unique_ptr<Conn> c = std::move(idle_.back());
      idle_.pop_back();
      return Borrowed(this, std::move(c));
    }
    ++open_;  // a slot for the connection dialled below
  }
  auto c = Dial(socket_path_, timeout_);
  absl::Status same = c.ok() ? CheckSameArena(**c) : c.status();
  if (!same.ok()) {
    absl::MutexLock lock(&mu_);
    --open_;
    return same;
  }
  return Borrowed(this, *std::move(c));
}

void LocalChannel::GiveBack(std::unique_ptr<Conn> conn) {
  absl::MutexLock lock(&mu_);
  if (conn->broken) {
    --open_;
    return;  // closed as it goes
  }
  idle_.push_back(std::move(conn));
}

absl::StatusOr<v1::LocalResponse> LocalChannel::CountedRoundTrip(Conn& c, v1::LocalRequest& req) {
  counters_.round_trips.fetch_add(1, std::memory_order_relaxed);
  return RoundTrip(c, req);
}

absl::StatusOr<v1::LocalResponse> LocalChannel::RoundTrip(Conn& c, v1::LocalRequest& req,
                                                          std::vector<int>* received_fds) {
  req.set_id(c.next_id++);
  const std::string out = req.SerializeAsString();
  if (send(c.fd, out.data(), out.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(out.size())) {
    c.broken = true;
    if (errno == EAGAIN || errno == EWOULDBLOCK) {
      return absl::DeadlineExceededError("local node did not take the request in time");
    }
    return absl::UnavailableError(
        absl::StrCat("local node socket send failed: ", std::strerror(errno)));
  }
  // One buffer per connection for its life: a fresh zeroed 4 MiB per round trip cost more than
  // the 2 MiB copy it served (mmap, page faults and memset, twice per read).
  if (c.recv_buf == nullptr) c.recv_buf.reset(new char[kMaxResponseBytes]);
  char* const buf = c.recv_buf.get();
  v1::LocalResponse resp;
  while (true) {
    iovec iov{buf, kMaxResponseBytes};
    alignas(cmsghdr) char control[CMSG_SPACE(2 * sizeof(int))];
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control;
    msg.msg_controllen = sizeof(control);
    ssize_t n = recvmsg(c.fd, &msg, MSG_CMSG_CLOEXEC);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      c.broken = true;  // closed: the node ends the leases taken on it
      return absl::DeadlineExceededError("local node did not answer in time");
    }
    if (n <= 0) {
      c.broken = true;
      return absl::UnavailableError(
          n == 0 ? "local node closed the socket"
                 : absl::StrCat("local node socket recv failed: ", std::strerror(errno)));
    }
    for (cmsghdr* m = CMSG_FIRSTHDR(&msg); m != nullptr; m = CMSG_NXTHDR(&msg, m)) {
      if (m->cmsg_level != SOL_SOCKET || m->cmsg_type != SCM_RIGHTS) continue;
      const size_t count = (m->cmsg_len - CMSG_LEN(0)) / sizeof(int);
      for (size_t i = 0; i < count; ++i) {
        int fd;
        std::memcpy(&fd, CMSG_DATA(m) + i * sizeof(int), sizeof(fd));
        if (received_fds != nullptr) {
          received_fds->push_back(fd);
        } else {
          close(fd);
        }
      }
    }
    if (!resp.ParseFromArray(buf, static_cast<int>(n)) || resp.id() > req.id()) {
      c.broken = true;
      return absl::InternalError("local node sent a malformed or mismatched response");
    }
    // An answer to an earlier no-reply release, from a node that predates no_reply.
    if (resp.id() < req.id()) continue;
    break;
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

void LocalChannel::SendNoReply(Conn& c, v1::LocalRequest& req) {
  req.set_id(c.next_id++);
  const std::string out = req.SerializeAsString();
  if (send(c.fd, out.data(), out.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(out.size())) {
    c.broken = true;
  }
}

void LocalChannel::ReleaseLeases(Conn& c, const std::vector<uint64_t>& leases) {
  if (leases.empty()) return;
  v1::LocalRequest req;
  for (uint64_t l : leases) req.mutable_release()->add_leases(l);
  req.mutable_release()->set_no_reply(true);
  SendNoReply(c, req);  // a lost release is harmless: the lease expires or ends with the socket
}

void LocalChannel::AttachReport(v1::LocalRequest& req) {
  if (v1::LocalReadReport r; TakeReport(&r)) {
    req.mutable_report()->Swap(&r);  // this client's reads count before its writes evict
  }
}

uint64_t LocalChannel::CopyIn(uint8_t* dst, absl::Span<const uint8_t> value) const {
  // The node verifies the block against the checksum of the bytes as copied when it seals it,
  // so nothing that touched the block after the copy becomes visible.
  if (verify_) return CopyAndChecksum(dst, value.data(), value.size());
  std::memcpy(dst, value.data(), value.size());
  return 0;
}

std::vector<absl::Status> LocalChannel::BatchPut(absl::Span<const LocalPutItem> all,
                                                 uint64_t epoch) {
  std::vector<absl::Status> out(all.size());
  auto conn = Borrow();
  if (!conn.ok()) {
    for (auto& o : out) o = conn.status();
    return out;
  }
  Conn& c = **conn;
  for (size_t first = 0; first < all.size(); first += kItemsPerRequest) {
    const absl::Span<const LocalPutItem> items = all.subspan(first, kItemsPerRequest);
    std::vector<absl::Status> part(items.size());
    std::vector<size_t> rest;
    if (FitsBlanks(c, items)) {
      PutIntoBlanks(c, items, epoch, part, rest);
    } else {
      for (size_t i = 0; i < items.size(); ++i) rest.push_back(i);
    }
    if (!rest.empty()) PutWithGrants(c, items, rest, epoch, part);
    std::move(part.begin(), part.end(), out.begin() + static_cast<ptrdiff_t>(first));
  }
  return out;
}

bool LocalChannel::FitsBlanks(const Conn& c, absl::Span<const LocalPutItem> items) const {
  if (items.empty() || items.size() > c.blanks.size()) return false;
  const absl::Time now = absl::Now();
  for (size_t i = 0; i < items.size(); ++i) {
    if (c.blanks[c.blanks.size() - 1 - i].taken + kBlankKeep < now) return false;  // stale
  }
  for (const LocalPutItem& item : items) {
    if (item.value.size() != c.blank_size) return false;
    if (directory_ != nullptr && Contains(item.key) == std::optional<bool>(true)) return false;
  }
  return true;
}

void LocalChannel::PutIntoBlanks(Conn& c, absl::Span<const LocalPutItem> items, uint64_t epoch,
                                 std::vector<absl::Status>& out, std::vector<size_t>& retry) {
  v1::LocalRequest req;
  req.set_epoch(epoch);
  AttachReport(req);
  v1::LocalSeal* seal = req.mutable_seal();
  for (const LocalPutItem& item : items) {
    const Blank blank = c.blanks.back();  // the oldest first: none waits until it is stale
    c.blanks.pop_back();
    seal->add_leases(blank.lease);
    seal->add_checksums(CopyIn(base_ + blank.offset, item.value));
    ToWrite(item, seal->add_keys());
  }
  AskForBlanks(c, items.front().value.size(), seal);
  auto resp = CountedRoundTrip(c, req);
  if (resp.ok() && resp->grants_size() != static_cast<int>(items.size())) {
    resp = absl::InternalError("local node answered a different number of seals");
  }
  if (!resp.ok()) {
    for (auto& o : out) o = resp.status();
    // Refused whole: give the blanks back now, not when this connection closes (a broken
    // one ends them on the node as it closes).
    if (!c.broken) ReleaseLeases(c, {seal->leases().begin(), seal->leases().end()});
    return;
  }
  counters_.blank_puts.fetch_add(items.size(), std::memory_order_relaxed);
  for (size_t i = 0; i < items.size(); ++i) {
    const v1::LocalGrant& g = resp->grants(static_cast<int>(i));
    out[i] = GrantStatus(g);  // `existed`: stored already, which is what the put asked for
    if (absl::IsNotFound(out[i])) retry.push_back(i);  // the blank expired: the long way
  }
  TakeBlanks(c, *resp);
}

void LocalChannel::PutWithGrants(Conn& c, absl::Span<const LocalPutItem> items,
                                 const std::vector<size_t>& idx, uint64_t epoch,
                                 std::vector<absl::Status>& out) {
  v1::LocalRequest req;
  req.set_epoch(epoch);
  AttachReport(req);
  for (size_t i : idx) ToWrite(items[i], req.mutable_write()->add_items());
  auto resp = CountedRoundTrip(c, req);
  if (!resp.ok() || resp->grants_size() != static_cast<int>(idx.size())) {
    absl::Status s = resp.ok() ? absl::InternalError("local node answered a different item count")
                               : resp.status();
    for (size_t i : idx) out[i] = s;
    return;
  }
  v1::LocalRequest seal;
  std::vector<size_t> sealed_items;
  std::vector<uint64_t> abandoned;
  for (size_t j = 0; j < idx.size(); ++j) {
    const size_t i = idx[j];
    const v1::LocalGrant& g = resp->grants(static_cast<int>(j));
    out[i] = GrantStatus(g);
    if (!out[i].ok() || g.existed()) continue;
    auto block = Block(g);
    if (!block.ok() || block->size() != items[i].value.size()) {
      out[i] = block.ok() ? absl::InternalError("local node granted a block of the wrong size")
                          : block.status();
      abandoned.push_back(g.lease());
      continue;
    }
    seal.mutable_seal()->add_leases(g.lease());
    seal.mutable_seal()->add_checksums(CopyIn(block->data(), items[i].value));
    sealed_items.push_back(i);
  }
  ReleaseLeases(c, abandoned);
  if (sealed_items.empty()) return;
  AskForBlanks(c, items[sealed_items.front()].value.size(), seal.mutable_seal());
  auto sealed = CountedRoundTrip(c, seal);
  if (!sealed.ok() && !c.broken) {
    // Refused whole: end the write leases now. Held, they would keep the keys "being
    // written", and a retried put of one would be told it is stored when it is not.
    ReleaseLeases(c, {seal.seal().leases().begin(), seal.seal().leases().end()});
  }
  for (size_t j = 0; j < sealed_items.size(); ++j) {
    absl::Status s = !sealed.ok() ? sealed.status()
                     : j < static_cast<size_t>(sealed->grants_size())
                         ? GrantStatus(sealed->grants(static_cast<int>(j)))
                         : absl::InternalError("local node answered too few seals");
    out[sealed_items[j]] = s;
  }
  if (sealed.ok()) TakeBlanks(c, *sealed);
}

void LocalChannel::AskForBlanks(Conn& c, uint64_t size, v1::LocalSeal* seal) const {
  std::vector<uint64_t> give_back;
  const absl::Time now = absl::Now();
  std::erase_if(c.blanks, [&](const Blank& b) {
    const bool drop = c.blank_size != size || b.taken + kBlankKeep < now;
    if (drop) give_back.push_back(b.lease);
    return drop;
  });
  ReleaseLeases(c, give_back);
  c.blank_size = size;
  const uint64_t share = size == 0 ? 0 : arena_bytes_ / kBlankShare / max_connections_ / size;
  const uint64_t target = std::min<uint64_t>(write_ahead_blocks_, share);
  if (target <= c.blanks.size()) return;
  seal->set_blanks(static_cast<uint32_t>(target - c.blanks.size()));
  seal->set_blank_size(size);
  seal->set_blank_lease_ms(static_cast<uint32_t>(absl::ToInt64Milliseconds(kBlankLease)));
}

void LocalChannel::TakeBlanks(Conn& c, const v1::LocalResponse& resp) const {
  const absl::Time now = absl::Now();
  std::vector<uint64_t> bad;
  for (const v1::LocalGrant& g : resp.blanks()) {
    if (!Block(g).ok() || g.size() != c.blank_size) {
      bad.push_back(g.lease());  // a node bug; never write where it cannot vouch for
      continue;
    }
    // Oldest first: PutIntoBlanks takes from the back.
    c.blanks.insert(c.blanks.begin(), Blank{g.lease(), g.offset(), now});
  }
  ReleaseLeases(c, bad);
}

absl::Status LocalChannel::Put(const BlockKey& key, absl::Span<const uint8_t> value,
                               const BlockKey* parent) {
  LocalPutItem item{key, value, parent};
  return BatchPut(absl::MakeConstSpan(&item, 1))[0];
}

}  // namespace ems::client
