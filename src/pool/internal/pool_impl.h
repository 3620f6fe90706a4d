// The Pool implementation. See pool.h for the contract and the block state machine.
//
// Locks, in the order they may nest: space_mu_ (allocator, policy, id map) → a shard's mu
// (index entries, block state, pin counts) → a lease shard's mu. Get and MatchPrefix take a
// shard lock, then (separately, not nested) space_mu_ to record the access.
#ifndef EMS_POOL_INTERNAL_POOL_IMPL_H_
#define EMS_POOL_INTERNAL_POOL_IMPL_H_

#include <atomic>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"
#include "directory/directory.h"
#include "pool/eviction_policy.h"
#include "pool/internal/allocator.h"
#include "pool/internal/arena.h"
#include "pool/pool.h"

namespace ems::pool::internal {

// kBlank: reserved under a write lease, bound to no key and in no index (AcquireBlank).
enum class BlockState : uint8_t { kBlank, kWriting, kSealed, kRemoved };

// Per-block metadata, off the arena. Fields other than `id`/`chunk` change only under the
// owning shard's lock; `chunk` and `id` are set once under space_mu_ before the block seals.
struct Block {
  Digest digest;
  uint32_t ns = 0;  // interned namespace
  BlockState state = BlockState::kWriting;
  std::atomic<uint32_t> pins{0};  // relaxed reads outside the shard lock are hints only
  Chunk* chunk = nullptr;
  uint64_t size = 0;  // value bytes
  uint64_t checksum = 0;
  uint64_t id = 0;         // policy id, 0 until sealed
  uint64_t ns_hash = 0;    // directory::NamespaceHash of the namespace
  bool published = false;  // in the directory (set with state, under the shard lock)
};

struct InternalKey {
  uint32_t ns;
  Digest digest;
  friend bool operator==(const InternalKey&, const InternalKey&) = default;
  template <typename H>
  friend H AbslHashValue(H h, const InternalKey& k) {
    return H::combine(std::move(h), k.ns, k.digest.Low64());
  }
};

class PoolImpl final : public Pool {
 public:
  // `directory` may be null (no publishing).
  PoolImpl(const PoolOptions& options, std::unique_ptr<Arena> arena,
           std::unique_ptr<EvictionPolicy> policy, std::unique_ptr<directory::Writer> directory);
  ~PoolImpl() override;

  absl::StatusOr<WriteHandle> Allocate(const BlockKey& key, uint64_t size,
                                       const BlockKey* parent) override;
  absl::Status Seal(WriteHandle handle, uint64_t expected_checksum) override;
  absl::StatusOr<ReadHandle> Get(const BlockKey& key) override;
  absl::StatusOr<ReadHandle> Pin(const BlockKey& key) override;
  bool Contains(const BlockKey& key) override;
  size_t MatchPrefix(absl::Span<const BlockKey> keys) override;
  absl::Status Remove(const BlockKey& key) override;
  void RecordLocalReads(absl::Span<const BlockKey> hits, uint64_t misses) override;
  absl::StatusOr<std::pair<LeaseId, BlockInfo>> AcquireRead(const BlockKey& key,
                                                            absl::Duration ttl) override;
  absl::StatusOr<std::pair<LeaseId, BlockInfo>> AcquireWrite(const BlockKey& key, uint64_t size,
                                                             const BlockKey* parent,
                                                             absl::Duration ttl) override;
  absl::Status SealLease(LeaseId lease, uint64_t expected_checksum) override;
  absl::StatusOr<std::pair<LeaseId, BlockInfo>> AcquireBlank(uint64_t size,
                                                             absl::Duration ttl) override;
  absl::Status SealBlank(LeaseId lease, const BlockKey& key, const BlockKey* parent,
                         uint64_t expected_checksum) override;
  absl::Status Release(LeaseId lease) override;
  size_t ExpireLeases() override;
  std::vector<BlockKey> Keys(size_t limit) override;
  KeyScan ScanKeys(size_t from, size_t limit) override;
  PoolStats Stats() override;
  int arena_fd() const override { return arena_->fd(); }
  uint8_t* arena_base() const override { return arena_->base(); }
  uint64_t arena_bytes() const override { return arena_->size(); }
  int directory_fd() const override { return directory_ ? directory_->fd() : -1; }
  uint64_t directory_bytes() const override { return directory_ ? directory_->bytes() : 0; }
  KeyFeed* key_feed() override { return feed_.get(); }

 private:
  struct Shard {
    absl::Mutex mu;
    absl::flat_hash_map<InternalKey, Block*> index ABSL_GUARDED_BY(mu);
  };
  struct Lease {
    Block* block;
    bool write;
    absl::Time deadline;
    uint64_t parent_id;  // writes: the parent's policy id at allocation, 0 if none
    // A write lease on a blank (no key, in no index). Kept here, not read from the block's
    // state, which changes under a shard lock the lease's holder does not take.
    bool blank = false;
  };
  struct LeaseShard {
    absl::Mutex mu;
    absl::flat_hash_map<LeaseId, Lease> leases ABSL_GUARDED_BY(mu);
  };

  Shard& ShardFor(const InternalKey& k) { return shards_[k.digest.Low64() & shard_mask_]; }
  LeaseShard& LeaseShardFor(LeaseId id) { return lease_shards_[id % kLeaseShards]; }
  // The namespace's id; interns it on first use when `create`. -1 if unknown and !create.
  int64_t NamespaceId(const std::string& ns, bool create);
  InternalKey KeyOf(uint32_t ns, const Digest& d) const { return InternalKey{ns, d}; }

  absl::StatusOr<std::pair<LeaseId, BlockInfo>> DoAllocate(const BlockKey& key, uint64_t size,
                                                           const BlockKey* parent,
                                                           absl::Duration ttl);
  // `use`: a reader's access, counted and touched (Get); false for the owner's own (Pin).
  absl::StatusOr<std::pair<LeaseId, BlockInfo>> DoAcquireRead(const BlockKey& key,
                                                              absl::Duration ttl, bool use);
  // Validates `size` for a value of `what` (a key, or "a blank").
  absl::Status ValidateSize(uint64_t size, absl::string_view what) const;
  // Names `b` (a new block or a blank) `key` and enters it in the index as kWriting.
  // ALREADY_EXISTS as Allocate's, or INVALID_ARGUMENT for a bad namespace; `b` is then not
  // in the index.
  absl::Status IndexAs(Block* b, const BlockKey& key);
  // Reserves space for `b` (entered in the index or blank); RESOURCE_EXHAUSTED naming the limit.
  absl::Status ReserveSpace(Block* b);
  // The policy id of `parent` if it is sealed, else 0.
  uint64_t ParentId(const BlockKey* parent);
  absl::Status DoSeal(LeaseId lease, uint64_t expected_checksum);
  // Seals the write lease `lease`, already taken out of its shard.
  absl::Status SealTaken(const Lease& lease, uint64_t expected_checksum);
  absl::Status DoRelease(LeaseId lease, bool expired);
  LeaseId AddLease(const Lease& lease);
  bool TakeLease(LeaseId id, Lease* out);
  // Returns a lease TakeLease took, untouched (a call that turned out not to be for it).
  void PutBack(LeaseId id, const Lease& lease);
  // Makes room for `bytes` and allocates them; evicts per the watermarks.
  Chunk* AllocateSpace(uint64_t bytes) ABSL_EXCLUSIVE_LOCKS_REQUIRED(space_mu_);
  // Evicts one block; false if nothing is evictable.
  bool EvictOne() ABSL_EXCLUSIVE_LOCKS_REQUIRED(space_mu_);
  // Returns a block's space and metadata. REQUIRES: the block is out of the index, unpinned.
  // `evicted`: the policy chose it and has already let go of it, so it is not told again.
  void FreeBlock(Block* b, bool evicted = false) ABSL_EXCLUSIVE_LOCKS_REQUIRED(space_mu_);
  // Drops one pin; frees the block if it was the last pin of a removed block.
  void Unpin(Block* b);
  void Touch(const std::vector<uint64_t>& ids);
  uint64_t PolicyIdFor(const InternalKey& k) ABSL_EXCLUSIVE_LOCKS_REQUIRED(space_mu_);
  BlockInfo InfoOf(const Block* b) const;
  // Calls `f(block)` under the key's shard lock if the key is sealed; false if it is not.
  template <typename F>
  bool WithSealed(uint32_t ns, const Digest& digest, F&& f) {
    const InternalKey ikey = KeyOf(ns, digest);
    Shard& shard = ShardFor(ikey);
    absl::MutexLock lock(&shard.mu);
    auto it = shard.index.find(ikey);
    if (it == shard.index.end() || it->second->state != BlockState::kSealed) return false;
    f(it->second);
    return true;
  }
  // Makes a block visible to local clients' directories and remote clients' key mirrors.
  // REQUIRES: its shard's lock (writing → sealed).
  void Publish(Block* b);
  // Takes a sealed block out of both. REQUIRES: its shard's lock (sealed → removed).
  void Unpublish(Block* b);
  // Tells the key feed, if any. REQUIRES: the block's shard lock (the feed keeps its order).
  void Announce(const Block* b, bool present);
  std::string NamespaceName(uint32_t ns) ABSL_LOCKS_EXCLUDED(ns_mu_);
  // Appends up to `limit` sealed keys of one index shard to `raw`; returns how many.
  size_t CollectSealed(size_t shard, size_t limit, std::vector<std::pair<uint32_t, Digest>>& raw);
  // The keys with their namespaces' names.
  std::vector<BlockKey> Named(const std::vector<std::pair<uint32_t, Digest>>& raw)
      ABSL_LOCKS_EXCLUDED(ns_mu_);

  // Immutable after construction.
  const PoolOptions options_;
  const std::unique_ptr<Arena> arena_;
  const std::unique_ptr<directory::Writer> directory_;  // internally synchronized; may be null
  const std::unique_ptr<KeyFeed> feed_;                 // internally synchronized; may be null
  const uint64_t high_bytes_, low_bytes_;
  const uint64_t shard_mask_;
  static constexpr size_t kLeaseShards = 16;

  // Internally synchronized.
  std::unique_ptr<Shard[]> shards_;
  std::unique_ptr<LeaseShard[]> lease_shards_;
  std::atomic<LeaseId> next_lease_{1};  // relaxed: only uniqueness matters
  struct Counters {
    std::atomic<uint64_t> keys{0}, unsealed{0}, blanks{0}, pinned{0}, puts{0}, gets{0}, hits{0},
        misses{0}, evictions{0}, reclaimed{0}, bytes_in{0}, bytes_out{0};
  } counters_;  // relaxed: statistics only

  absl::Mutex ns_mu_;
  absl::flat_hash_map<std::string, uint32_t> ns_ids_ ABSL_GUARDED_BY(ns_mu_);
  std::vector<std::string> ns_names_ ABSL_GUARDED_BY(ns_mu_);

  absl::Mutex space_mu_ ABSL_ACQUIRED_BEFORE(ns_mu_);
  Allocator allocator_ ABSL_GUARDED_BY(space_mu_);
  const std::unique_ptr<EvictionPolicy> policy_ ABSL_PT_GUARDED_BY(space_mu_);
  absl::flat_hash_map<uint64_t, Block*> by_id_ ABSL_GUARDED_BY(space_mu_);
  uint64_t fallback_id_ ABSL_GUARDED_BY(space_mu_) = 1ull << 63;
};

}  // namespace ems::pool::internal

#endif  // EMS_POOL_INTERNAL_POOL_IMPL_H_
