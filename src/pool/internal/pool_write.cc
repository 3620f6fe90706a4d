// PoolImpl's writes: allocating a block or a blank, sealing it under its key, and what a
// second put of a stored key gets.
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/prefix_hash.h"
#include "common/status_macros.h"
#include "pool/internal/pool_impl.h"

namespace ems::pool {
namespace {
constexpr absl::string_view kSameSize = "already stored with the same size";
constexpr absl::string_view kBeingWritten = "(being written)";
}  // namespace

bool StoredAlready(const absl::Status& s) {
  return absl::IsAlreadyExists(s) && absl::StrContains(s.message(), kSameSize);
}

bool BeingWritten(const absl::Status& s) {
  return StoredAlready(s) && absl::StrContains(s.message(), kBeingWritten);
}

namespace internal {
namespace {

absl::Status SizeError(const BlockKey& key, uint64_t have, uint64_t want) {
  return absl::AlreadyExistsError(absl::StrCat("key ", key.ToString(), " exists with size ", have,
                                               "; this put has size ", want));
}

}  // namespace

absl::Status PoolImpl::ValidateSize(uint64_t size, absl::string_view what) const {
  if (size == 0) return absl::InvalidArgumentError(absl::StrCat("value of ", what, " is empty"));
  if (size > options_.max_value_bytes) {
    return absl::InvalidArgumentError(absl::StrCat(
        "value of ", size, " bytes exceeds the maximum of ", options_.max_value_bytes, " bytes"));
  }
  if (size > arena_->size()) {
    return absl::InvalidArgumentError(
        absl::StrCat("value of ", size, " bytes exceeds the pool's ", arena_->size(), " bytes"));
  }
  return absl::OkStatus();
}

absl::Status PoolImpl::IndexAs(Block* b, const BlockKey& key) {
  EMS_RETURN_IF_ERROR(ValidateNamespace(key.ns));
  const uint32_t ns = static_cast<uint32_t>(NamespaceId(key.ns, /*create=*/true));
  const InternalKey ikey = KeyOf(ns, key.digest);
  b->digest = key.digest;
  b->ns = ns;
  if (directory_ != nullptr) b->ns_hash = directory::NamespaceHash(key.ns);
  uint64_t sealed_id = 0;
  bool writing = false;
  {
    Shard& shard = ShardFor(ikey);
    absl::MutexLock lock(&shard.mu);
    auto [it, inserted] = shard.index.try_emplace(ikey, b);
    if (inserted) {
      b->state = BlockState::kWriting;
      return absl::OkStatus();
    }
    const uint64_t have = it->second->size;
    if (have != b->size) return SizeError(key, have, b->size);
    if (it->second->state == BlockState::kSealed) sealed_id = it->second->id;
    writing = it->second->state == BlockState::kWriting;
  }
  // A writer offering a block again has just recomputed it: it is in use, like a hit.
  // (Outside the shard lock: the lock order is space_mu_ before shard.mu.)
  if (sealed_id != 0) Touch({sealed_id});
  return absl::AlreadyExistsError(absl::StrCat("key ", key.ToString(), " is ", kSameSize,
                                               writing ? " " : "", writing ? kBeingWritten : ""));
}

absl::Status PoolImpl::ReserveSpace(Block* b) {
  uint64_t used, pinned_hint;
  {
    absl::MutexLock lock(&space_mu_);
    b->chunk = AllocateSpace(b->size);
    if (b->chunk != nullptr) return absl::OkStatus();
    used = allocator_.used_bytes();
    pinned_hint = counters_.pinned.load(std::memory_order_relaxed);
  }
  return absl::ResourceExhaustedError(absl::StrCat(
      "no space for ", b->size, " bytes: ", used, " of ", arena_->size(),
      " bytes in use and nothing more is evictable (", pinned_hint, " read pins held)"));
}

uint64_t PoolImpl::ParentId(const BlockKey* parent) {
  uint64_t id = 0;
  if (parent == nullptr) return id;
  const int64_t pns = NamespaceId(parent->ns, false);
  if (pns >= 0) {
    WithSealed(static_cast<uint32_t>(pns), parent->digest, [&](Block* p) { id = p->id; });
  }
  return id;
}

absl::StatusOr<std::pair<LeaseId, BlockInfo>> PoolImpl::DoAllocate(const BlockKey& key,
                                                                   uint64_t size,
                                                                   const BlockKey* parent,
                                                                   absl::Duration ttl) {
  EMS_RETURN_IF_ERROR(ValidateSize(size, key.ToString()));
  auto b = std::make_unique<Block>();
  b->size = size;
  EMS_RETURN_IF_ERROR(IndexAs(b.get(), key));
  const uint64_t parent_id = ParentId(parent);
  if (absl::Status s = ReserveSpace(b.get()); !s.ok()) {
    const InternalKey ikey = KeyOf(b->ns, b->digest);
    Shard& shard = ShardFor(ikey);
    absl::MutexLock lock(&shard.mu);
    shard.index.erase(ikey);
    return s;
  }
  counters_.unsealed.fetch_add(1, std::memory_order_relaxed);
  Block* raw = b.release();  // owned by the index from here
  // Read before the lease is visible: once it is, the sweeper may end it and free the block.
  // The deadline runs from now, not from before an allocation that may have had to evict.
  const BlockInfo info = InfoOf(raw);
  const LeaseId lease = AddLease({raw, /*write=*/true, options_.clock->Now() + ttl, parent_id});
  return std::make_pair(lease, info);
}

absl::StatusOr<WriteHandle> PoolImpl::Allocate(const BlockKey& key, uint64_t size,
                                               const BlockKey* parent) {
  EMS_ASSIGN_OR_RETURN(auto grant, DoAllocate(key, size, parent, absl::InfiniteDuration()));
  return WriteHandle(this, grant.first, arena_->base() + grant.second.offset, grant.second);
}

absl::StatusOr<std::pair<LeaseId, BlockInfo>> PoolImpl::AcquireWrite(const BlockKey& key,
                                                                     uint64_t size,
                                                                     const BlockKey* parent,
                                                                     absl::Duration ttl) {
  if (ttl <= absl::ZeroDuration()) ttl = options_.default_lease;
  return DoAllocate(key, size, parent, ttl);
}

absl::Status PoolImpl::DoSeal(LeaseId lease_id, uint64_t expected_checksum) {
  Lease lease;
  if (!TakeLease(lease_id, &lease)) {
    return absl::NotFoundError(absl::StrCat("write lease ", lease_id, " is unknown or expired"));
  }
  if (!lease.write || lease.blank) {
    PutBack(lease_id, lease);
    return absl::FailedPreconditionError(
        absl::StrCat("lease ", lease_id,
                     lease.write ? " is a blank: seal it with its key" : " is a read lease"));
  }
  return SealTaken(lease, expected_checksum);
}

absl::Status PoolImpl::SealTaken(const Lease& lease, uint64_t expected_checksum) {
  Block* b = lease.block;
  const uint64_t sum = Checksum(arena_->base() + b->chunk->offset, b->size);
  const InternalKey ikey = KeyOf(b->ns, b->digest);
  counters_.unsealed.fetch_sub(1, std::memory_order_relaxed);
  absl::MutexLock space(&space_mu_);
  if (expected_checksum != 0 && expected_checksum != sum) {
    {
      Shard& shard = ShardFor(ikey);
      absl::MutexLock lock(&shard.mu);
      shard.index.erase(ikey);
    }
    const std::string what = absl::StrCat("block ", b->digest.ToHex(), " of ", b->size, " bytes");
    FreeBlock(b);
    return absl::DataLossError(absl::StrCat(what,
                                            " does not match the checksum its writer sent; "
                                            "not stored"));
  }
  // Tracked by the policy and visible in one step under space_mu_, so a concurrent Remove
  // (which frees under space_mu_) cannot slip in between.
  b->id = PolicyIdFor(ikey);
  by_id_.emplace(b->id, b);
  policy_->OnInsert(b->id, lease.parent_id);
  {
    Shard& shard = ShardFor(ikey);
    absl::MutexLock lock(&shard.mu);
    b->checksum = sum;
    b->state = BlockState::kSealed;
    Publish(b);
  }
  counters_.keys.fetch_add(1, std::memory_order_relaxed);
  counters_.puts.fetch_add(1, std::memory_order_relaxed);
  counters_.bytes_in.fetch_add(b->size, std::memory_order_relaxed);
  return absl::OkStatus();
}

absl::Status PoolImpl::Seal(WriteHandle handle, uint64_t expected_checksum) {
  if (handle.pool_ != this) {
    return absl::InvalidArgumentError("write handle is empty or from another pool");
  }
  handle.pool_ = nullptr;  // consumed: the handle must not release the lease
  return DoSeal(handle.lease_, expected_checksum);
}

absl::Status PoolImpl::SealLease(LeaseId lease, uint64_t expected_checksum) {
  return DoSeal(lease, expected_checksum);
}

absl::StatusOr<std::pair<LeaseId, BlockInfo>> PoolImpl::AcquireBlank(uint64_t size,
                                                                     absl::Duration ttl) {
  EMS_RETURN_IF_ERROR(ValidateSize(size, "a blank"));
  if (ttl <= absl::ZeroDuration()) ttl = options_.default_lease;
  auto b = std::make_unique<Block>();
  b->size = size;
  b->state = BlockState::kBlank;
  EMS_RETURN_IF_ERROR(ReserveSpace(b.get()));
  counters_.blanks.fetch_add(1, std::memory_order_relaxed);
  Block* raw = b.release();            // owned by the lease until it is sealed or ends
  const BlockInfo info = InfoOf(raw);  // before the lease is visible (DoAllocate)
  const LeaseId lease =
      AddLease({raw, /*write=*/true, options_.clock->Now() + ttl, 0, /*blank=*/true});
  return std::make_pair(lease, info);
}

absl::Status PoolImpl::SealBlank(LeaseId lease_id, const BlockKey& key, const BlockKey* parent,
                                 uint64_t expected_checksum) {
  Lease lease;
  if (!TakeLease(lease_id, &lease)) {
    return absl::NotFoundError(absl::StrCat("blank lease ", lease_id, " is unknown or expired"));
  }
  Block* b = lease.block;
  if (!lease.blank) {
    PutBack(lease_id, lease);
    return absl::FailedPreconditionError(absl::StrCat("lease ", lease_id, " is not a blank"));
  }
  // The lease is out of its shard: nothing else can reach the blank now.
  counters_.blanks.fetch_sub(1, std::memory_order_relaxed);
  if (absl::Status s = IndexAs(b, key); !s.ok()) {
    absl::MutexLock lock(&space_mu_);
    FreeBlock(b);
    return s;
  }
  counters_.unsealed.fetch_add(1, std::memory_order_relaxed);
  lease.parent_id = ParentId(parent);
  return SealTaken(lease, expected_checksum);
}

}  // namespace internal
}  // namespace ems::pool
