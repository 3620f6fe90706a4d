// ems::Client: what an inference engine links to store and load KV blocks.
//
// Two modes: give `address` to talk to one node, or `controller` to route over a cluster's
// consistent-hash ring (the cluster map is fetched from the controller and refreshed in the
// background; the client keeps using its last map while the controller is unreachable).
// Values move between the node and the caller's own buffers: Put reads from a span, Get
// writes into one. When the owning node runs on this machine and exposes its local socket, the
// bytes move through shared memory instead of gRPC.
#ifndef EMS_CLIENT_CLIENT_H_
#define EMS_CLIENT_CLIENT_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "common/key.h"

namespace ems {

namespace v1 {
class StatsResponse;
}  // namespace v1

struct ClientOptions {
  std::string address;     // host:port of one ems-node (standalone mode)
  std::string controller;  // host:port of ems-controller's membership service
  std::string cluster = "default";
  absl::Duration timeout = absl::Seconds(10);  // deadline of each call
  std::string cd_key;                          // project credential, sent to nodes that require one
  // Use the same-machine shared-memory path to nodes on this host (cluster mode: nodes that
  // advertise a local socket; standalone: `local_socket`).
  bool use_local = true;
  std::string local_socket;
  // Move values over the node's bulk data channel (no copy between socket and buffers) when
  // the node offers one; false keeps every call on gRPC.
  bool use_bulk = true;
  // Verify every remote Get against the checksum the node computed when the block was sealed.
  bool verify_checksums = true;
  // The same for reads through shared memory. Off by default: a local read is whole by
  // construction (the node's directory slot is re-checked after the copy, and a block that
  // moved is re-read under a lease), and its bytes cross no wire. A checksum would only catch
  // another local process scribbling on the shared arena, for about a tenth of the read's speed.
  bool verify_local_checksums = false;
  // Arena space each shared-memory connection keeps granted ahead for its next puts, in
  // blocks (LocalChannel::Options::write_ahead_blocks): a put of new blocks then takes one
  // round trip to the node instead of two. 0 = ask for space at every put.
  int local_write_ahead_blocks = 16;
  // Keep a mirror of the keys of each node that is not on this host (client/key_mirror.h), fed
  // by the node over its bulk channel, and answer MatchPrefix for those nodes from it with no
  // round trip. A mirror trails its node by one hop: a block evicted a moment ago can still
  // be matched (its Get then misses), one stored by another client a moment ago missed. Costs
  // a thread and a connection per node, and about 64 bytes per mirrored key.
  bool mirror_remote_keys = false;
  absl::Duration map_refresh = absl::Milliseconds(500);
};

struct PutItem {
  BlockKey key;
  absl::Span<const uint8_t> value;
  const BlockKey* parent = nullptr;  // the previous block of the prefix chain, if known
};

struct GetItem {
  BlockKey key;
  absl::Span<uint8_t> buffer;
};

// Failures the cluster mode absorbs instead of reporting (a cache may drop and miss).
struct ClientCounters {
  uint64_t get_timeouts = 0;  // counted as misses
  uint64_t put_drops = 0;     // puts that reached no owner in time
  uint64_t map_refreshes = 0;
  uint64_t retries = 0;  // calls retried after a stale-epoch answer
  // MatchPrefix calls answered whole from block directories and key mirrors, no round trip.
  uint64_t lookups_without_round_trip = 0;
};

// Thread-safe: share one Client between threads.
class Client {
 public:
  // UNAVAILABLE if neither a node nor the controller answers within the timeout.
  static absl::StatusOr<std::unique_ptr<Client>> Connect(const ClientOptions& options);
  virtual ~Client() = default;

  // Stores `value` under `key`. Storing an existing key with the same size is a no-op success;
  // with another size, ALREADY_EXISTS. INVALID_ARGUMENT for a bad key or an empty or oversize
  // value; RESOURCE_EXHAUSTED if the node has nothing evictable.
  virtual absl::Status Put(const BlockKey& key, absl::Span<const uint8_t> value,
                           const BlockKey* parent = nullptr) = 0;
  // Copies the block into `out`; returns its size. NOT_FOUND on a miss; OUT_OF_RANGE naming
  // both sizes if `out` is too small; DATA_LOSS if the bytes fail their checksum.
  virtual absl::StatusOr<size_t> Get(const BlockKey& key, absl::Span<uint8_t> out) = 0;

  // One result per item, in order. Items are grouped per owner node and sent in parallel.
  virtual std::vector<absl::Status> BatchPut(absl::Span<const PutItem> items) = 0;
  virtual std::vector<absl::StatusOr<size_t>> BatchGet(absl::Span<const GetItem> items) = 0;

  // How many leading `keys` (in prompt order) are stored.
  virtual absl::StatusOr<size_t> MatchPrefix(absl::Span<const BlockKey> keys) = 0;
  virtual absl::StatusOr<std::vector<bool>> Exists(absl::Span<const BlockKey> keys) = 0;
  // Number of keys removed.
  virtual absl::StatusOr<size_t> Remove(absl::Span<const BlockKey> keys) = 0;
  // Sums over every node the client knows.
  virtual absl::StatusOr<v1::StatsResponse> Stats() = 0;

  virtual ClientCounters counters() const = 0;
  // Cluster mode: epoch of the map in use (0 in standalone mode).
  virtual uint64_t epoch() const = 0;
};

}  // namespace ems

#endif  // EMS_CLIENT_CLIENT_H_
