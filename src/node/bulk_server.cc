#include "node/bulk_server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <limits>
#include <vector>

#include "absl/strings/str_cat.h"
#include "bulk/wire.h"
#include "common/status_macros.h"
#include "node/admission.h"
#include "spdlog/spdlog.h"

namespace ems::node {
namespace {

using bulk::WriteAll;

// GET answers pin at most this many blocks at once and send them in one sendmsg.
constexpr size_t kGetChunk = 64;
// A PUT value the pool refuses is read and dropped to keep the stream in step; a size beyond
// this is not worth reading and ends the connection instead.
constexpr uint64_t kMaxDiscardBytes = 1ull << 30;

absl::Status SendStatus(int fd, const absl::Status& s, uint64_t epoch, uint32_t count) {
  bulk::ResponseHeader h;
  h.code = static_cast<uint32_t>(s.code());
  h.epoch = epoch;
  h.count = count;
  std::string message(s.message().substr(0, bulk::kMaxMessageBytes));
  h.message_bytes = static_cast<uint32_t>(message.size());
  struct iovec iov[2] = {{&h, sizeof(h)}, {message.data(), message.size()}};
  return WriteAll(fd, iov, 2);
}

// Reads `count` keys; the first bad one is named by its index (the stream stays in step).
absl::StatusOr<std::vector<BlockKey>> ReadKeys(bulk::Reader& in, uint32_t count,
                                               absl::Status* bad) {
  std::vector<BlockKey> keys;
  keys.reserve(count);
  for (uint32_t i = 0; i < count; ++i) {
    auto key = in.ReadKey();
    if (!key.ok()) {
      if (!absl::IsInvalidArgument(key.status())) return key.status();  // the socket failed
      if (bad->ok()) {
        *bad = absl::InvalidArgumentError(absl::StrCat("keys[", i, "]: ", key.status().message()));
      }
      continue;
    }
    keys.push_back(*std::move(key));
  }
  return keys;
}

// Waits until a request starts; false when the connection ends or `timeout` passes first.
bool WaitReadable(int fd, absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  struct pollfd p = {fd, POLLIN, 0};
  while (true) {
    const int64_t left_ms = absl::ToInt64Milliseconds(deadline - absl::Now());
    const int wait_ms = timeout == absl::InfiniteDuration()
                            ? -1
                            : static_cast<int>(std::clamp<int64_t>(left_ms, 0, INT32_MAX));
    const int n = poll(&p, 1, wait_ms);
    if (n > 0) return true;
    if (n == 0 || errno != EINTR) return false;
  }
}

// Appends a frame of `kind` with `keys` to `out`.
void AppendFrame(bulk::WatchKind kind, absl::Span<const BlockKey* const> keys, std::string* out) {
  bulk::WatchFrame f;
  f.kind = static_cast<uint32_t>(kind);
  f.count = static_cast<uint32_t>(keys.size());
  out->append(reinterpret_cast<const char*>(&f), sizeof(f));
  for (const BlockKey* k : keys) bulk::AppendKey(*k, out);
}

}  // namespace

absl::StatusOr<std::unique_ptr<BulkServer>> BulkServer::Start(pool::Pool* pool,
                                                              BulkServerOptions options) {
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(options.port));
  if (options.port < 0 || options.port > 65535 ||
      inet_pton(AF_INET, options.host.c_str(), &addr.sin_addr) != 1) {
    return absl::InvalidArgumentError(absl::StrCat("bulk channel: cannot listen on '", options.host,
                                                   ":", options.port,
                                                   "' (an IPv4 address and a port 0..65535)"));
  }
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return absl::InternalError(absl::StrCat("socket: ", std::strerror(errno)));
  const int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  socklen_t len = sizeof(addr);
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 || listen(fd, 128) != 0 ||
      getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    absl::Status s =
        absl::UnavailableError(absl::StrCat("bulk channel: cannot listen on ", options.host, ":",
                                            options.port, ": ", std::strerror(errno)));
    close(fd);
    return s;
  }
  std::unique_ptr<BulkServer> server(
      new BulkServer(pool, std::move(options), static_cast<int>(ntohs(addr.sin_port))));
  BulkServer* raw = server.get();
  server->threads_ = std::make_unique<internal::ConnectionThreads>(
      fd, raw->options_.max_connections, "bulk channel", [raw](int conn) { raw->Serve(conn); });
  spdlog::info("ems-node {}: bulk channel on {}:{}", raw->options_.node_id, raw->options_.host,
               raw->port_);
  return server;
}

BulkServer::~BulkServer() { threads_.reset(); }

// The key can change while a connection is open (a credential created later): once it has,
// the HELLO's key is checked again. Unchanged, this costs one atomic load.
absl::Status BulkServer::Recheck(const std::string& hello_key, uint64_t* checked_generation) const {
  if (!options_.credential || options_.credential->generation() == *checked_generation) {
    return absl::OkStatus();
  }
  const uint64_t generation = options_.credential->generation();
  EMS_RETURN_IF_ERROR(options_.credential->Check(options_.node_id, hello_key, "its HELLO"));
  *checked_generation = generation;
  return absl::OkStatus();
}

// One request at a time. Any socket failure ends the connection; a WriteHandle not yet sealed
// is dropped with it, so a client that dies mid-put leaks nothing.
void BulkServer::Serve(int fd) {
  bulk::TuneSocket(fd, options_.io_timeout);
  bulk::Reader in(fd);
  bool hello = false;
  std::string hello_key;            // what the HELLO presented
  uint64_t checked_generation = 0;  // the credential's generation hello_key last passed
  // Pooled connections idle for long between requests, but only once they said HELLO: a peer
  // without the key that connects and says nothing would otherwise hold a connection slot for
  // good, and max_connections of them would shut the channel to every client.
  while (in.buffered() > 0 ||
         WaitReadable(fd, hello ? absl::InfiniteDuration() : options_.io_timeout)) {
    bulk::RequestHeader h;
    if (!in.Read(&h, sizeof(h)).ok()) return;
    if (h.magic != bulk::kMagic || h.version != bulk::kVersion) {
      SendStatus(fd,
                 absl::FailedPreconditionError(absl::StrCat(
                     "bulk channel: not an EMS bulk request of version ", bulk::kVersion)),
                 0, 0)
          .IgnoreError();
      return;
    }
    const bulk::Op op = static_cast<bulk::Op>(h.op);
    if (!hello && op != bulk::Op::kHello) {
      SendStatus(fd, absl::FailedPreconditionError("bulk channel: HELLO must come first"), 0, 0)
          .IgnoreError();
      return;
    }
    // A connection its key no longer passes is told so and closed before any of its values
    // is read.
    if (op != bulk::Op::kHello) {
      if (absl::Status s = Recheck(hello_key, &checked_generation); !s.ok()) {
        SendStatus(fd, s, 0, 0).IgnoreError();
        return;
      }
    }
    const uint32_t limit = op == bulk::Op::kHello ? bulk::kMaxCdKeyBytes : bulk::kMaxItems;
    if (h.count > limit) {
      SendStatus(fd,
                 absl::InvalidArgumentError(absl::StrCat("bulk channel: request of ", h.count,
                                                         " items (at most ", limit, ")")),
                 0, 0)
          .IgnoreError();
      return;
    }
    std::shared_ptr<const ClusterView> view = options_.view ? options_.view() : nullptr;
    const uint64_t epoch = view ? view->epoch() : 0;
    absl::Status io;
    switch (op) {
      case bulk::Op::kHello: {
        std::string cd_key(h.count, '\0');
        if (!in.Read(cd_key.data(), cd_key.size()).ok()) return;
        const uint64_t generation = options_.credential ? options_.credential->generation() : 0;
        absl::Status s = options_.credential
                             ? options_.credential->Check(options_.node_id, cd_key, "its HELLO")
                             : absl::OkStatus();
        if (!SendStatus(fd, s, epoch, 0).ok() || !s.ok()) return;
        hello = true;
        hello_key = std::move(cd_key);
        checked_generation = generation;
        continue;
      }
      case bulk::Op::kWatchKeys:
        Watch(fd, epoch, hello_key, checked_generation);
        return;
      case bulk::Op::kGet:
      case bulk::Op::kMatchPrefix: {
        absl::Status bad;
        auto keys = ReadKeys(in, h.count, &bad);
        if (!keys.ok()) return;
        if (bad.ok()) bad = CheckOwnership(view.get(), options_.node_id, h.epoch, *keys);
        if (!bad.ok()) {
          io = SendStatus(fd, bad, epoch, 0);
        } else if (op == bulk::Op::kMatchPrefix) {
          io = SendStatus(fd, absl::OkStatus(), epoch,
                          static_cast<uint32_t>(pool_->MatchPrefix(*keys)));
        } else {
          bulk::ResponseHeader rh;
          rh.epoch = epoch;
          rh.count = h.count;
          if (keys->empty()) io = SendStatus(fd, absl::OkStatus(), epoch, 0);
          // Pins live until their bytes are in the socket; a slow reader holds at most a chunk.
          // The answer's header goes out with the first chunk: one sendmsg for a small batch.
          for (size_t begin = 0; io.ok() && begin < keys->size(); begin += kGetChunk) {
            const size_t end = std::min(keys->size(), begin + kGetChunk);
            std::vector<pool::ReadHandle> pins;
            std::vector<bulk::GetItemHeader> heads(end - begin);
            std::vector<struct iovec> iov;
            if (begin == 0) iov.push_back({&rh, sizeof(rh)});
            for (size_t i = begin; i < end; ++i) {
              bulk::GetItemHeader& gh = heads[i - begin];
              auto pin = pool_->Get((*keys)[i]);
              if (pin.ok()) {
                gh.size = pin->size();
                gh.checksum = pin->info().checksum;
                iov.push_back({&gh, sizeof(gh)});
                iov.push_back({const_cast<uint8_t*>(pin->data()), pin->size()});
                pins.push_back(*std::move(pin));
              } else {
                gh.code = static_cast<uint32_t>(pin.status().code());
                iov.push_back({&gh, sizeof(gh)});
              }
            }
            io = WriteAll(fd, iov.data(), static_cast<int>(iov.size()));
          }
        }
        break;
      }
      case bulk::Op::kPut: {
        std::vector<absl::Status> results(h.count);
        absl::Status stale;
        for (uint32_t i = 0; i < h.count; ++i) {
          auto key = in.ReadKey();
          if (!key.ok() && !absl::IsInvalidArgument(key.status())) return;
          bulk::PutItemHeader ph;
          if (!in.Read(&ph, sizeof(ph)).ok()) return;
          absl::StatusOr<BlockKey> parent = absl::NotFoundError("no parent");
          if (ph.has_parent) {
            parent = in.ReadKey();
            if (!parent.ok() && !absl::IsInvalidArgument(parent.status())) return;
          }
          if (!key.ok() || (ph.has_parent && !parent.ok())) {
            results[i] = absl::InvalidArgumentError(
                absl::StrCat(key.ok() ? "parent: " : "key: ",
                             key.ok() ? parent.status().message() : key.status().message()));
          } else if (stale.ok()) {
            stale = CheckOwnership(view.get(), options_.node_id, h.epoch, {*key});
          }
          absl::StatusOr<pool::WriteHandle> block = absl::CancelledError("not stored");
          if (results[i].ok() && stale.ok()) {
            // A client's put: no migration push may undo it (removed_keys.h).
            if (options_.removed_keys != nullptr) options_.removed_keys->Forget(*key);
            block = pool_->Allocate(*key, ph.size, ph.has_parent ? &*parent : nullptr);
            if (!block.ok() && !pool::StoredAlready(block.status())) {
              results[i] = block.status();  // an existing block of the same size is a success
            }
          }
          if (block.ok()) {
            if (!in.Read(block->data(), ph.size).ok()) return;  // the block is freed
            results[i] = pool_->Seal(*std::move(block), ph.checksum);
          } else {
            if (ph.size > kMaxDiscardBytes) {
              SendStatus(fd,
                         absl::InvalidArgumentError(
                             absl::StrCat("bulk channel: value of ", ph.size, " bytes")),
                         epoch, 0)
                  .IgnoreError();
              return;
            }
            if (!in.Discard(ph.size).ok()) return;
          }
        }
        if (!stale.ok()) {
          io = SendStatus(fd, stale, epoch, 0);
          break;
        }
        std::string body;
        for (const absl::Status& s : results) {
          bulk::ItemStatus st;
          st.code = static_cast<uint32_t>(s.code());
          const absl::string_view msg = s.message().substr(0, bulk::kMaxMessageBytes);
          st.message_bytes = static_cast<uint32_t>(msg.size());
          body.append(reinterpret_cast<const char*>(&st), sizeof(st));
          body.append(msg.data(), msg.size());
        }
        bulk::ResponseHeader rh;
        rh.epoch = epoch;
        rh.count = h.count;
        struct iovec iov[2] = {{&rh, sizeof(rh)}, {body.data(), body.size()}};
        io = WriteAll(fd, iov, 2);
        break;
      }
      default:
        SendStatus(fd,
                   absl::InvalidArgumentError(
                       absl::StrCat("bulk channel: unknown operation ", static_cast<int>(h.op))),
                   epoch, 0)
            .IgnoreError();
        return;
    }
    if (!io.ok()) return;
  }
}

// The feed's position is taken before the snapshot, so a change the snapshot misses is in the
// feed; one it already shows comes again as an event, which a mirror applies idempotently.
// Ends when the client goes away (a write fails; kIdle writes find that out within
// kWatchIdleInterval) or falls further behind than the feed keeps: it starts over.
void BulkServer::Watch(int fd, uint64_t epoch, const std::string& hello_key, uint64_t generation) {
  pool::KeyFeed* feed = pool_->key_feed();
  if (feed == nullptr) {
    SendStatus(fd, absl::FailedPreconditionError("bulk channel: this node keeps no key feed"),
               epoch, 0)
        .IgnoreError();
    return;
  }
  uint64_t from = feed->next();
  if (!SendStatus(fd, absl::OkStatus(), epoch, 0).ok()) return;
  const std::vector<BlockKey> keys = pool_->Keys(std::numeric_limits<size_t>::max());
  std::vector<const BlockKey*> batch;
  std::string out;
  for (size_t begin = 0; begin < keys.size(); begin += bulk::kWatchFrameKeys) {
    batch.clear();
    for (size_t i = begin; i < std::min(keys.size(), begin + bulk::kWatchFrameKeys); ++i) {
      batch.push_back(&keys[i]);
    }
    out.clear();
    AppendFrame(bulk::WatchKind::kSnapshot, batch, &out);
    if (!WriteAll(fd, out.data(), out.size()).ok()) return;
  }
  out.clear();
  AppendFrame(bulk::WatchKind::kSynced, {}, &out);
  if (!WriteAll(fd, out.data(), out.size()).ok()) return;
  while (true) {
    // As on every request: a key that no longer passes loses the stream too.
    if (!Recheck(hello_key, &generation).ok()) return;
    auto events = feed->Read(from, bulk::kWatchFrameKeys, bulk::kWatchIdleInterval);
    if (!events.ok()) {
      spdlog::info("ems-node {}: a key watcher fell behind ({}); it will start over",
                   options_.node_id, events.status().ToString());
      return;
    }
    out.clear();
    if (events->empty()) AppendFrame(bulk::WatchKind::kIdle, {}, &out);
    // Runs of one kind share a frame.
    for (size_t begin = 0; begin < events->size();) {
      const bool present = (*events)[begin].present;
      batch.clear();
      size_t end = begin;
      for (; end < events->size() && (*events)[end].present == present; ++end) {
        batch.push_back(&(*events)[end].key);
      }
      AppendFrame(present ? bulk::WatchKind::kAdded : bulk::WatchKind::kRemoved, batch, &out);
      begin = end;
    }
    if (!events->empty()) from = events->back().seq + 1;
    if (!WriteAll(fd, out.data(), out.size()).ok()) return;
  }
}

}  // namespace ems::node
