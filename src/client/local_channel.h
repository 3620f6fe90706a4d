// Same-machine data path, client side: maps the node's arena (memfd received over the node's
// Unix socket) and moves bytes with plain memcpy; only control messages cross the socket.
#ifndef EMS_CLIENT_LOCAL_CHANNEL_H_
#define EMS_CLIENT_LOCAL_CHANNEL_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/types/span.h"
#include "common/key.h"
#include "ems/v1/local.pb.h"

namespace ems::client {

// One item of a batch put: the value's bytes stay owned by the caller.
struct LocalPutItem {
  BlockKey key;
  absl::Span<const uint8_t> value;
  const BlockKey* parent = nullptr;
};

// Thread-safe: control round trips are serialized on the socket; copies run in parallel.
// The arena mapping lives as long as the channel.
class LocalChannel {
 public:
  struct Options {
    std::string socket_path;
    // Recompute XXH3-64 of every block read and compare with the sealed checksum. Costs about
    // as much as the copy itself (docs/data-path.md), so it is off by default on this path.
    bool verify_checksums = false;
  };

  // UNAVAILABLE if the node's socket cannot be reached.
  static absl::StatusOr<std::unique_ptr<LocalChannel>> Connect(const Options& options);
  ~LocalChannel();

  // Writes each value into its block and seals it; one status per item. An item already
  // stored with the same size is OK (nothing copied).
  std::vector<absl::Status> BatchPut(absl::Span<const LocalPutItem> items);
  absl::Status Put(const BlockKey& key, absl::Span<const uint8_t> value,
                   const BlockKey* parent = nullptr);

  // Copies each block into its buffer; result per item = bytes read, NOT_FOUND on a miss,
  // OUT_OF_RANGE naming both sizes if the buffer is too small.
  std::vector<absl::StatusOr<size_t>> BatchGet(absl::Span<const BlockKey> keys,
                                               absl::Span<const absl::Span<uint8_t>> buffers);
  absl::StatusOr<size_t> Get(const BlockKey& key, absl::Span<uint8_t> out);

  // Number of leading keys present on this node.
  absl::StatusOr<size_t> MatchPrefix(absl::Span<const BlockKey> keys);

  const std::string& node_id() const { return node_id_; }
  uint64_t arena_bytes() const { return arena_bytes_; }

 private:
  LocalChannel(int fd, uint8_t* base, uint64_t bytes, std::string node_id, bool verify)
      : fd_(fd), base_(base), arena_bytes_(bytes), node_id_(std::move(node_id)), verify_(verify) {}
  // Sends `req` and waits for its response (and an fd, for hello).
  absl::StatusOr<v1::LocalResponse> RoundTrip(v1::LocalRequest& req, int* received_fd = nullptr);
  // The granted block as a span, after checking it lies inside the arena.
  absl::StatusOr<absl::Span<uint8_t>> Block(const v1::LocalGrant& g) const;
  void ReleaseLeases(const std::vector<uint64_t>& leases);

  int fd_;  // -1 once handed over (see Connect)
  uint8_t* const base_;
  const uint64_t arena_bytes_;
  const std::string node_id_;
  const bool verify_;

  absl::Mutex mu_;  // one request in flight on the socket at a time
  uint64_t next_id_ ABSL_GUARDED_BY(mu_) = 1;
  std::unique_ptr<char[]> recv_buf_ ABSL_GUARDED_BY(mu_);  // allocated at the first answer
};

}  // namespace ems::client

#endif  // EMS_CLIENT_LOCAL_CHANNEL_H_
