// The bulk data channel's wire format and socket I/O, shared by ems-node and the client.
//
// Why a second channel beside gRPC: a gRPC message copies a value into a protobuf `bytes`
// field, into gRPC's slices, out of them and into the pool (docs/zero-copy.md measures it).
// Over this channel the node writes a block to the socket straight from the pinned arena and
// reads a put straight into the allocated block; the client reads into the caller's buffer.
// The kernel's socket copy is the only one left on each side.
//
// A connection starts with HELLO (protocol version and the project's cdKey). Then requests
// and answers alternate, one at a time per connection (clients pool connections):
//   request  = RequestHeader, then per op:
//     HELLO: `count` bytes of cdKey
//     GET / MATCH_PREFIX: `count` keys
//     PUT: `count` × (key, PutItemHeader, [parent key], `size` value bytes)
//   answer   = ResponseHeader (+ `message_bytes` of text when code != 0), then if code == 0:
//     GET: `count` × (GetItemHeader, `size` value bytes when found)
//     PUT: `count` × (ItemStatus, message bytes)
//     MATCH_PREFIX, HELLO: nothing (`count` carries the match)
//   key      = uint16 namespace length, namespace bytes, 16 digest bytes
// WATCH_KEYS (no request body) turns the connection into a stream from the node, until it
// ends: a ResponseHeader (code != 0: refused, with its message), then WatchFrames, each
// followed by `count` keys: kSnapshot frames with the sealed keys the node holds, one kSynced,
// then kAdded / kRemoved as blocks seal and leave, and kIdle (no keys) every
// kWatchIdleInterval with nothing to say, so the client can tell a quiet node from a dead one.
// A FAILED_PRECONDITION answer carries the node's newer map epoch: the caller's map is stale.
// Integers are little-endian (the structs are host order; the build requires little-endian).
#ifndef EMS_BULK_WIRE_H_
#define EMS_BULK_WIRE_H_

#include <sys/uio.h>

#include <bit>
#include <cstdint>
#include <memory>
#include <string>

#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/key.h"

namespace ems::bulk {

static_assert(std::endian::native == std::endian::little, "the bulk wire format is little-endian");

inline constexpr uint32_t kMagic = 0x42534d45;  // "EMSB"
inline constexpr uint8_t kVersion = 1;

enum class Op : uint8_t { kHello = 1, kGet = 2, kPut = 3, kMatchPrefix = 4, kWatchKeys = 5 };

struct RequestHeader {
  uint32_t magic = kMagic;
  uint8_t op = 0;
  uint8_t version = kVersion;
  uint16_t reserved = 0;
  uint32_t count = 0;
  uint32_t reserved2 = 0;
  uint64_t epoch = 0;  // the caller's map epoch; 0 = no map (standalone)
};
static_assert(sizeof(RequestHeader) == 24);

struct ResponseHeader {
  uint32_t code = 0;           // absl::StatusCode of the whole request
  uint32_t message_bytes = 0;  // text that follows when code != 0
  uint64_t epoch = 0;          // the node's epoch (meaningful with FAILED_PRECONDITION)
  uint32_t count = 0;          // items that follow, or MATCH_PREFIX's answer
  uint32_t reserved = 0;
};
static_assert(sizeof(ResponseHeader) == 24);

struct PutItemHeader {
  uint64_t size = 0;
  uint64_t checksum = 0;  // XXH3-64 of the value; 0 = unchecked
  uint8_t has_parent = 0;
  uint8_t reserved[7] = {};
};
static_assert(sizeof(PutItemHeader) == 24);

struct GetItemHeader {
  uint32_t code = 0;  // OK (value follows), NOT_FOUND, or another absl::StatusCode
  uint32_t reserved = 0;
  uint64_t size = 0;
  uint64_t checksum = 0;
};
static_assert(sizeof(GetItemHeader) == 24);

enum class WatchKind : uint32_t { kSnapshot = 1, kSynced = 2, kAdded = 3, kRemoved = 4, kIdle = 5 };

struct WatchFrame {
  uint32_t kind = 0;  // WatchKind
  uint32_t count = 0;
};
static_assert(sizeof(WatchFrame) == 8);

inline constexpr absl::Duration kWatchIdleInterval = absl::Milliseconds(200);
// Keys per frame: a frame is written whole, so this bounds the node's staging buffer.
inline constexpr uint32_t kWatchFrameKeys = 1024;

struct ItemStatus {
  uint32_t code = 0;
  uint32_t message_bytes = 0;
};
static_assert(sizeof(ItemStatus) == 8);

// Limits that protect a reader from a corrupt or hostile peer.
inline constexpr uint32_t kMaxItems = 65536;
inline constexpr uint32_t kMaxMessageBytes = 4096;
inline constexpr uint32_t kMaxCdKeyBytes = 4096;

// Appends a key's encoding to `out`. REQUIRES: key.ns is at most 65535 bytes (the length goes
// out in 16 bits; a longer one would put the stream out of step). The client checks keys
// with CheckKey (client/internal/fanout.h) before it builds a request.
void AppendKey(const BlockKey& key, std::string* out);

// Blocking socket I/O. Errors: UNAVAILABLE when the peer closed or the socket failed,
// DEADLINE_EXCEEDED when the socket's timeout (SO_RCVTIMEO / SO_SNDTIMEO) passed.
absl::Status WriteAll(int fd, struct iovec* iov, int iovcnt);
// The same, waiting for room in the socket at most `max_wait()` at a time (each wait asks
// again), not the socket's fixed timeout: a blocking send waits out its whole timeout even when
// the peer takes part of the data, so a stalled peer whose kernel still fills its buffers kept
// the writer for several timeouts. A caller with a deadline passes what is left of it.
absl::Status WriteAll(int fd, struct iovec* iov, int iovcnt,
                      absl::FunctionRef<absl::Duration()> max_wait);
absl::Status WriteAll(int fd, const void* data, size_t n);
absl::Status ReadAll(int fd, void* data, size_t n);

// Buffered reads from a socket: small fields (headers, keys) come out of one recv of whatever
// has arrived, instead of a system call each (a 64-key lookup was 130 recvs); large reads
// (values) go straight from the socket into their destination. Not thread-safe.
class Reader {
 public:
  explicit Reader(int fd) : fd_(fd), buf_(new char[kBufferBytes]) {}

  absl::Status Read(void* data, size_t n);
  // Reads and drops `n` bytes (a value nobody can take).
  absl::Status Discard(uint64_t n);
  // Reads one key; INVALID_ARGUMENT (the stream stays in step) if its namespace is not valid.
  absl::StatusOr<BlockKey> ReadKey();
  // Bytes received and not yet consumed.
  size_t buffered() const { return end_ - begin_; }

 private:
  static constexpr size_t kBufferBytes = 64 << 10;
  const int fd_;
  std::unique_ptr<char[]> buf_;
  size_t begin_ = 0;
  size_t end_ = 0;
};

// TCP_NODELAY, socket buffers sized for MiB values, the I/O timeout on both directions, and
// keepalive (a peer gone without closing is noticed in about a minute).
void TuneSocket(int fd, absl::Duration io_timeout);

}  // namespace ems::bulk

#endif  // EMS_BULK_WIRE_H_
