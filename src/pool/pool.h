// ems::pool::Pool: KV blocks in one hugepage arena. Memory only: no network here.
//
// Block lifecycle (the one state machine; see pool_impl.cc for transitions):
//   Allocate ──► WRITING ──Seal──► SEALED (visible to Get/Contains/MatchPrefix)
//                  │                 │ unpinned: evictable; Remove or eviction ──► freed
//                  └─ handle dropped, lease released or expired before Seal ──► freed
//   AcquireBlank ──► BLANK (no key) ──SealBlank(key)──► SEALED, or freed if the key is
//                      │                                 stored already or refused
//                      └─ lease released or expired ──► freed
// A pinned block (a live ReadHandle or read lease) is never evicted or freed; Remove of a
// pinned block hides it at once and frees it when the last pin goes.
//
// Leases are pins owned by something outside this process (a local client): they may carry a
// deadline, which ExpireLeases() enforces for an owner that calls it. ems-node gives none to
// its local clients: their leases end with their connection (node/local_server.cc), so a
// crashed client leaks nothing. RAII handles are leases owned by a C++ object.
#ifndef EMS_POOL_POOL_H_
#define EMS_POOL_POOL_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "common/clock.h"
#include "common/key.h"
#include "pool/key_feed.h"

namespace ems::pool {

struct PoolOptions {
  // Arena size = huge_page_num × huge_page_flavor_mb MiB (the EMS API's names).
  uint64_t huge_page_num = 256;
  uint64_t huge_page_flavor_mb = 2;
  // NUMA node to bind the arena to; -1 = no binding.
  int numa_node = -1;
  // Require hugetlb pages; when false and none are reserved, fall back to THP with a warning.
  bool require_hugepages = false;
  // Touch every page at start-up: no page faults on the data path, and a machine that cannot
  // back the arena fails now rather than at the first large write.
  bool prefault = true;
  // Asked between steps of the prefault (every 256 MiB); false stops it and Create returns
  // CANCELLED. ems-node stops when SIGTERM or SIGINT is pending. Empty: never stop.
  std::function<bool()> keep_going_prefault;
  // "lru" or "s3fifo" (see eviction_policy.h).
  std::string eviction_policy = "lru";
  // Eviction starts when used bytes exceed high × capacity and runs until low × capacity.
  double high_watermark = 0.95;
  double low_watermark = 0.85;
  // Largest value accepted (INVALID_ARGUMENT above it).
  uint64_t max_value_bytes = 64ull << 20;
  // Default deadline of a lease that does not give one.
  absl::Duration default_lease = absl::Seconds(30);
  // Number of index shards (power of two).
  int index_shards = 64;
  // Not owned; nullptr = Clock::Real(). Must outlive the pool.
  Clock* clock = nullptr;
  // Mirror every sealed block in a shared-memory directory (directory/directory.h) that local
  // clients map to look up and read blocks without a round trip to the node.
  bool publish_directory = false;
  // Keep a feed of the last `key_feed_events` changes to the set of sealed keys (key_feed.h)
  // for clients that mirror it; 0 = no feed.
  size_t key_feed_events = 0;
};

// Point-in-time counters. Cheap to take; not a consistent snapshot across fields.
struct PoolStats {
  uint64_t keys = 0;        // sealed blocks
  uint64_t used_bytes = 0;  // bytes held by allocations (sealed + writing), rounded up
  uint64_t capacity_bytes = 0;
  uint64_t pinned_blocks = 0;
  uint64_t unsealed_blocks = 0;
  uint64_t blank_blocks = 0;  // reserved for a writer, no key yet (AcquireBlank)
  uint64_t puts = 0;          // successful seals
  uint64_t gets = 0;          // Get calls
  uint64_t hits = 0;
  uint64_t misses = 0;
  uint64_t evictions = 0;
  uint64_t reclaimed_writes = 0;  // unsealed writes freed by expiry or abandonment
  uint64_t bytes_in = 0;          // sealed value bytes
  uint64_t bytes_out = 0;         // value bytes handed to readers
  uint64_t metadata_bytes = 0;    // index + block metadata, off-arena
  bool hugepages = false;         // arena on hugetlb pages (false: THP fallback)
  std::string eviction_policy;
};

// Where a block lives in the arena; what a local client needs to copy in or out.
struct BlockInfo {
  uint64_t offset = 0;    // from the arena base
  uint64_t size = 0;      // value bytes
  uint64_t checksum = 0;  // XXH3-64; 0 until sealed
};

using LeaseId = uint64_t;

class Pool;

// The ALREADY_EXISTS of Allocate and SealBlank that callers take as success: the key is stored
// (or being written) with the size this write has.
bool StoredAlready(const absl::Status& s);
// Of those, the ones where another write of the key has not sealed it yet: it is not stored
// until that writer seals it, and is not if the writer fails. Enough for a cache's put; not
// for a migration, which frees its own copy only once the block is stored.
bool BeingWritten(const absl::Status& s);
namespace internal {
class PoolImpl;
}  // namespace internal

namespace internal {

// Holds one lease and ends it when destroyed (read pin dropped, unsealed write freed).
// Move-only; the base of ReadHandle and WriteHandle.
class LeaseHolder {
 public:
  LeaseHolder() = default;
  LeaseHolder(LeaseHolder&& other) noexcept;
  LeaseHolder& operator=(LeaseHolder&& other) noexcept;
  ~LeaseHolder();

  const BlockInfo& info() const { return info_; }
  uint64_t size() const { return info_.size; }
  bool valid() const { return pool_ != nullptr; }

 protected:
  LeaseHolder(Pool* pool, LeaseId lease, BlockInfo info)
      : pool_(pool), lease_(lease), info_(info) {}
  void Reset();

 private:
  friend class PoolImpl;
  Pool* pool_ = nullptr;
  LeaseId lease_ = 0;
  BlockInfo info_;
};

}  // namespace internal

// A pin on a sealed block. The bytes stay valid and unchanged for the handle's lifetime.
class ReadHandle : public internal::LeaseHolder {
 public:
  ReadHandle() = default;
  const uint8_t* data() const { return data_; }

 private:
  friend class internal::PoolImpl;
  ReadHandle(Pool* pool, LeaseId lease, const uint8_t* data, BlockInfo info)
      : LeaseHolder(pool, lease, info), data_(data) {}
  const uint8_t* data_ = nullptr;
};

// An allocated, not yet visible block. Fill data() then call Pool::Seal. Dropping the handle
// without sealing frees the block.
class WriteHandle : public internal::LeaseHolder {
 public:
  WriteHandle() = default;
  uint8_t* data() const { return data_; }

 private:
  friend class internal::PoolImpl;
  WriteHandle(Pool* pool, LeaseId lease, uint8_t* data, BlockInfo info)
      : LeaseHolder(pool, lease, info), data_(data) {}
  uint8_t* data_ = nullptr;
};

// The pool. Thread-safe: every method may be called from any thread.
class Pool {
 public:
  // Maps the arena and builds the index. Fails with INVALID_ARGUMENT for bad options and
  // RESOURCE_EXHAUSTED, naming the limit, for an arena larger than the machine or cgroup holds.
  static absl::StatusOr<std::unique_ptr<Pool>> Create(const PoolOptions& options);
  virtual ~Pool() = default;

  // --- Writes -----------------------------------------------------------------------------
  // Reserves `size` bytes for `key` (WRITING, invisible). Evicts if needed.
  // Errors: INVALID_ARGUMENT (size 0 or > max_value_bytes, bad key);
  //   ALREADY_EXISTS with message "same size" if the key is sealed or being written with this
  //   size (callers treat it as a no-op success; a sealed one is touched, as by a hit) and a
  //   message naming both sizes otherwise;
  //   RESOURCE_EXHAUSTED if nothing evictable frees enough space.
  // `parent` (optional) is the previous block of the key's prefix chain; policies may use it.
  virtual absl::StatusOr<WriteHandle> Allocate(const BlockKey& key, uint64_t size,
                                               const BlockKey* parent = nullptr) = 0;
  // Makes the block visible; computes its checksum. If `expected_checksum` is non-zero and
  // differs, frees the block and returns DATA_LOSS. The handle is consumed either way.
  virtual absl::Status Seal(WriteHandle handle, uint64_t expected_checksum = 0) = 0;

  // --- Reads ------------------------------------------------------------------------------
  // Pins a sealed block. NOT_FOUND on a miss (counted).
  virtual absl::StatusOr<ReadHandle> Get(const BlockKey& key) = 0;
  // Pins a sealed block for the pool's owner, not for a reader (a migration copying it to
  // another node): unlike Get, neither counted in gets, hits and bytes_out nor a use for the
  // eviction policy. NOT_FOUND if absent.
  virtual absl::StatusOr<ReadHandle> Pin(const BlockKey& key) = 0;
  // True if `key` is sealed. Counts neither hit nor miss, touches no recency.
  virtual bool Contains(const BlockKey& key) = 0;
  // Number of leading keys that are sealed; stops at the first miss. Touches no recency or
  // frequency: a lookup is not a use (the Get that follows is).
  virtual size_t MatchPrefix(absl::Span<const BlockKey> keys) = 0;
  // Removes a sealed block. NOT_FOUND if absent. A pinned block is freed when unpinned.
  virtual absl::Status Remove(const BlockKey& key) = 0;
  // Accounts reads that local clients made through the directory, without the pool: each hit
  // is touched and counted as by Get (a key no longer stored is skipped), then `misses`.
  virtual void RecordLocalReads(absl::Span<const BlockKey> hits, uint64_t misses) = 0;

  // --- Leases: pins and writes owned outside this process -----------------------------------
  // Like Get/Allocate, but the pin is held by a lease that ends at Release, or at
  // `ttl` (default_lease if zero) from now, whichever comes first.
  virtual absl::StatusOr<std::pair<LeaseId, BlockInfo>> AcquireRead(const BlockKey& key,
                                                                    absl::Duration ttl) = 0;
  virtual absl::StatusOr<std::pair<LeaseId, BlockInfo>> AcquireWrite(const BlockKey& key,
                                                                     uint64_t size,
                                                                     const BlockKey* parent,
                                                                     absl::Duration ttl) = 0;
  // Seals a write lease (see Seal). NOT_FOUND if the lease is unknown or expired.
  virtual absl::Status SealLease(LeaseId lease, uint64_t expected_checksum = 0) = 0;
  // A blank: `size` bytes reserved under a write lease and bound to no key yet. A writer that
  // keeps a few fills one and names its key when it seals it (SealBlank): one call where
  // AcquireWrite + SealLease take two, which saves the local path a round trip per put. Held
  // blanks take arena space like any allocation. Errors: INVALID_ARGUMENT for a size Allocate
  // would refuse; RESOURCE_EXHAUSTED if nothing evictable frees the space.
  virtual absl::StatusOr<std::pair<LeaseId, BlockInfo>> AcquireBlank(uint64_t size,
                                                                     absl::Duration ttl) = 0;
  // Binds blank `lease` to `key` (with `parent`, as for Allocate) and seals it (see Seal).
  // Errors: NOT_FOUND (lease unknown or expired); FAILED_PRECONDITION (not a blank; the lease
  // is kept); otherwise the lease ends and the blank is freed on INVALID_ARGUMENT (bad key),
  // ALREADY_EXISTS as Allocate's ("same size": the key is stored and the blank's bytes were not
  // needed; a sealed one is touched) or DATA_LOSS (see Seal).
  virtual absl::Status SealBlank(LeaseId lease, const BlockKey& key, const BlockKey* parent,
                                 uint64_t expected_checksum = 0) = 0;
  // Ends a lease: a read pin is dropped, an unsealed write is freed. NOT_FOUND if unknown.
  virtual absl::Status Release(LeaseId lease) = 0;
  // Ends every lease past its deadline; returns how many. Called periodically by the owner.
  virtual size_t ExpireLeases() = 0;

  // --- Introspection ------------------------------------------------------------------------
  // Up to `limit` sealed keys, in index order.
  virtual std::vector<BlockKey> Keys(size_t limit) = 0;
  // The sealed keys of whole index shards, from shard `from` on, until `limit` keys or the last
  // shard: one page of a scan that starts at 0 and follows `next` until `done`. Keys removed
  // behind the scan do not move the others, so a key present throughout is seen exactly once
  // (used to migrate every block a node no longer owns, however many it holds).
  struct KeyScan {
    std::vector<BlockKey> keys;
    size_t next = 0;
    bool done = false;
  };
  virtual KeyScan ScanKeys(size_t from, size_t limit) = 0;
  virtual PoolStats Stats() = 0;
  // The arena: a memfd (hugetlb or shmem) that local clients may map. Valid for the pool's life.
  virtual int arena_fd() const = 0;
  virtual uint8_t* arena_base() const = 0;
  virtual uint64_t arena_bytes() const = 0;
  // The block directory's memfd and size (publish_directory); -1 and 0 without one.
  virtual int directory_fd() const = 0;
  virtual uint64_t directory_bytes() const = 0;
  // The feed of key changes; nullptr unless PoolOptions::key_feed_events > 0.
  virtual KeyFeed* key_feed() = 0;
};

}  // namespace ems::pool

#endif  // EMS_POOL_POOL_H_
