#include "pool/internal/pool_impl.h"

#include <bit>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "common/status_macros.h"

namespace ems::pool {
namespace internal {
namespace {

constexpr uint64_t kGranule = 4096;  // blocks are page aligned

}  // namespace

PoolImpl::PoolImpl(const PoolOptions& options, std::unique_ptr<Arena> arena,
                   std::unique_ptr<EvictionPolicy> policy,
                   std::unique_ptr<directory::Writer> directory)
    : options_(options),
      arena_(std::move(arena)),
      directory_(std::move(directory)),
      feed_(options.key_feed_events == 0
                ? nullptr
                : std::make_unique<KeyFeed>(options.key_feed_events,
                                            [this](uint32_t ns) { return NamespaceName(ns); })),
      high_bytes_(static_cast<uint64_t>(options.high_watermark * arena_->size())),
      low_bytes_(static_cast<uint64_t>(options.low_watermark * arena_->size())),
      shard_mask_(options.index_shards - 1),
      shards_(new Shard[options.index_shards]),
      lease_shards_(new LeaseShard[kLeaseShards]),
      allocator_(arena_->size(), kGranule),
      policy_(std::move(policy)) {}

PoolImpl::~PoolImpl() {
  // REQUIRES (pool.h): no handle outlives the pool. Leases held by remote clients end here.
  for (size_t i = 0; i < static_cast<size_t>(options_.index_shards); ++i) {
    absl::MutexLock lock(&shards_[i].mu);
    for (auto& [key, block] : shards_[i].index) delete block;
  }
  // In no index: blanks, and removed blocks that read leases still pin (maybe several each).
  absl::flat_hash_set<Block*> unindexed;
  for (size_t i = 0; i < kLeaseShards; ++i) {
    absl::MutexLock lock(&lease_shards_[i].mu);
    for (auto& [id, lease] : lease_shards_[i].leases) {
      if (lease.blank || lease.block->state == BlockState::kRemoved) unindexed.insert(lease.block);
    }
  }
  for (Block* b : unindexed) delete b;
}

int64_t PoolImpl::NamespaceId(const std::string& ns, bool create) {
  {
    // Every Get, Contains and MatchPrefix comes here, almost always for a known namespace:
    // shared, so lookups on several threads do not wait for each other.
    absl::ReaderMutexLock lock(&ns_mu_);
    auto it = ns_ids_.find(ns);
    if (it != ns_ids_.end()) return it->second;
    if (!create) return -1;
  }
  absl::MutexLock lock(&ns_mu_);
  auto it = ns_ids_.find(ns);  // another thread may have added it meanwhile
  if (it != ns_ids_.end()) return it->second;
  const uint32_t id = static_cast<uint32_t>(ns_names_.size());
  ns_names_.push_back(ns);
  ns_ids_.emplace(ns, id);
  return id;
}

BlockInfo PoolImpl::InfoOf(const Block* b) const {
  return BlockInfo{b->chunk->offset, b->size, b->checksum};
}

void PoolImpl::Publish(Block* b) {
  if (directory_ != nullptr) {
    b->published =
        directory_->Publish(b->ns_hash, b->digest, b->chunk->offset, b->size, b->checksum);
  }
  Announce(b, true);
}

void PoolImpl::Unpublish(Block* b) {
  // Before the block can be freed and rewritten: a local reader's copy is checked against the
  // directory slot afterwards, so it cannot take rewritten bytes for the sealed ones.
  if (directory_ != nullptr) directory_->Unpublish(b->ns_hash, b->digest, b->published);
  b->published = false;
  Announce(b, false);
}

void PoolImpl::Announce(const Block* b, bool present) {
  if (feed_ != nullptr) feed_->Append(present, b->ns, b->digest);
}

std::string PoolImpl::NamespaceName(uint32_t ns) {
  absl::ReaderMutexLock lock(&ns_mu_);
  return ns_names_[ns];
}

LeaseId PoolImpl::AddLease(const Lease& lease) {
  const LeaseId id = next_lease_.fetch_add(1, std::memory_order_relaxed);
  LeaseShard& s = LeaseShardFor(id);
  absl::MutexLock lock(&s.mu);
  s.leases.emplace(id, lease);
  return id;
}

void PoolImpl::PutBack(LeaseId id, const Lease& lease) {
  LeaseShard& s = LeaseShardFor(id);
  absl::MutexLock lock(&s.mu);
  s.leases.emplace(id, lease);
}

bool PoolImpl::TakeLease(LeaseId id, Lease* out) {
  LeaseShard& s = LeaseShardFor(id);
  absl::MutexLock lock(&s.mu);
  auto it = s.leases.find(id);
  if (it == s.leases.end()) return false;
  *out = it->second;
  s.leases.erase(it);
  return true;
}

// --- Space -----------------------------------------------------------------------------------

uint64_t PoolImpl::PolicyIdFor(const InternalKey& k) {
  // Derived from the key so a block that comes back gets the same id (S3-FIFO's ghost queue
  // recognises it); a collision with a live block falls back to a unique counter id.
  uint64_t id = k.digest.Low64() ^ (0x9e3779b97f4a7c15ull * (k.ns + 1));
  // The counter's ids can collide too (a client chooses its digests): two blocks under one id
  // would leave one of them out of the policy, never evicted.
  while (id == 0 || by_id_.contains(id)) id = ++fallback_id_;
  return id;
}

void PoolImpl::FreeBlock(Block* b, bool evicted) {
  if (b->id != 0) {
    if (!evicted) policy_->OnErase(b->id);
    by_id_.erase(b->id);
    counters_.keys.fetch_sub(1, std::memory_order_relaxed);
  }
  if (b->chunk != nullptr) allocator_.Free(b->chunk);
  delete b;
}

bool PoolImpl::EvictOne() {
  auto victim = policy_->Evict([this](uint64_t id) ABSL_NO_THREAD_SAFETY_ANALYSIS {
    auto it = by_id_.find(id);
    return it != by_id_.end() && it->second->pins.load(std::memory_order_relaxed) == 0;
  });
  if (!victim) return false;
  Block* b = by_id_.at(*victim);
  bool evict = false;
  {
    Shard& shard = ShardFor(KeyOf(b->ns, b->digest));
    absl::MutexLock lock(&shard.mu);
    // The authoritative check: a reader may have pinned it since the hint above.
    if (b->state == BlockState::kSealed && b->pins.load(std::memory_order_relaxed) == 0) {
      shard.index.erase(KeyOf(b->ns, b->digest));
      Unpublish(b);
      b->state = BlockState::kRemoved;
      evict = true;
    }
  }
  if (!evict) {
    policy_->OnInsert(*victim, 0);  // still live: track it again
    return true;
  }
  FreeBlock(b, /*evicted=*/true);
  counters_.evictions.fetch_add(1, std::memory_order_relaxed);
  return true;
}

Chunk* PoolImpl::AllocateSpace(uint64_t bytes) {
  const uint64_t need = allocator_.RoundUp(bytes);
  // Bounds both loops together: each round evicts one block or gives up. EvictOne also
  // returns true when a reader pinned its pick first, so while readers keep winning this
  // bound is all that ends them; it must never wrap below zero.
  size_t rounds = by_id_.size() + 16;
  if (allocator_.used_bytes() + need > high_bytes_) {
    while (allocator_.used_bytes() + need > low_bytes_ && rounds > 0) {
      --rounds;
      if (!EvictOne()) break;
    }
  }
  while (true) {
    if (Chunk* c = allocator_.Allocate(bytes)) return c;
    if (rounds == 0) return nullptr;
    --rounds;
    if (!EvictOne()) return nullptr;  // fragmentation or all pinned
  }
}

// --- Reads -----------------------------------------------------------------------------------

absl::StatusOr<std::pair<LeaseId, BlockInfo>> PoolImpl::DoAcquireRead(const BlockKey& key,
                                                                      absl::Duration ttl,
                                                                      bool use) {
  if (use) counters_.gets.fetch_add(1, std::memory_order_relaxed);
  const int64_t ns = NamespaceId(key.ns, false);
  Block* b = nullptr;
  if (ns >= 0) {
    WithSealed(static_cast<uint32_t>(ns), key.digest, [&](Block* sealed) {
      b = sealed;
      b->pins.fetch_add(1, std::memory_order_relaxed);  // under the shard lock: no eviction now
    });
  }
  if (b == nullptr) {
    if (use) counters_.misses.fetch_add(1, std::memory_order_relaxed);
    return absl::NotFoundError(absl::StrCat("key ", key.ToString(), " not found"));
  }
  counters_.pinned.fetch_add(1, std::memory_order_relaxed);
  if (use) {
    counters_.hits.fetch_add(1, std::memory_order_relaxed);
    counters_.bytes_out.fetch_add(b->size, std::memory_order_relaxed);
    Touch({b->id});
  }
  // Read before the lease is visible: once it is, the sweeper may end it, and a block removed
  // meanwhile is freed with its last pin.
  const BlockInfo info = InfoOf(b);
  const LeaseId lease = AddLease({b, /*write=*/false, options_.clock->Now() + ttl, 0});
  return std::make_pair(lease, info);
}

absl::StatusOr<ReadHandle> PoolImpl::Get(const BlockKey& key) {
  EMS_ASSIGN_OR_RETURN(auto grant, DoAcquireRead(key, absl::InfiniteDuration(), /*use=*/true));
  return ReadHandle(this, grant.first, arena_->base() + grant.second.offset, grant.second);
}

absl::StatusOr<ReadHandle> PoolImpl::Pin(const BlockKey& key) {
  EMS_ASSIGN_OR_RETURN(auto grant, DoAcquireRead(key, absl::InfiniteDuration(), /*use=*/false));
  return ReadHandle(this, grant.first, arena_->base() + grant.second.offset, grant.second);
}

absl::StatusOr<std::pair<LeaseId, BlockInfo>> PoolImpl::AcquireRead(const BlockKey& key,
                                                                    absl::Duration ttl) {
  if (ttl <= absl::ZeroDuration()) ttl = options_.default_lease;
  return DoAcquireRead(key, ttl, /*use=*/true);
}

void PoolImpl::Touch(const std::vector<uint64_t>& ids) {
  if (ids.empty()) return;
  absl::MutexLock lock(&space_mu_);
  for (uint64_t id : ids) policy_->OnAccess(id);
}

bool PoolImpl::Contains(const BlockKey& key) {
  const int64_t ns = NamespaceId(key.ns, false);
  return ns >= 0 && WithSealed(static_cast<uint32_t>(ns), key.digest, [](Block*) {});
}

size_t PoolImpl::MatchPrefix(absl::Span<const BlockKey> keys) {
  // A lookup is not a use: the Get that loads the blocks touches them. Touching here as well
  // counted every hit twice, which S3-FIFO's frequency bits notice (a live replay drifted 3.6
  // points from --simulate) and which a scheduler re-checking a waiting request would inflate.
  size_t matched = 0;
  int64_t ns = -1;
  const std::string* last_ns = nullptr;
  for (const BlockKey& key : keys) {
    if (last_ns == nullptr || *last_ns != key.ns) {  // prompts rarely switch namespace
      ns = NamespaceId(key.ns, false);
      last_ns = &key.ns;
    }
    if (ns < 0 || !WithSealed(static_cast<uint32_t>(ns), key.digest, [](Block*) {})) break;
    ++matched;
  }
  return matched;
}

void PoolImpl::RecordLocalReads(absl::Span<const BlockKey> hits, uint64_t misses) {
  std::vector<uint64_t> ids;
  ids.reserve(hits.size());
  uint64_t bytes = 0;
  for (const BlockKey& key : hits) {
    const int64_t ns = NamespaceId(key.ns, false);
    if (ns < 0) continue;  // a key no longer stored: nothing to touch
    WithSealed(static_cast<uint32_t>(ns), key.digest, [&](Block* b) {
      ids.push_back(b->id);
      bytes += b->size;
    });
  }
  counters_.gets.fetch_add(hits.size() + misses, std::memory_order_relaxed);
  counters_.hits.fetch_add(hits.size(), std::memory_order_relaxed);
  counters_.misses.fetch_add(misses, std::memory_order_relaxed);
  counters_.bytes_out.fetch_add(bytes, std::memory_order_relaxed);
  Touch(ids);
}

void PoolImpl::Unpin(Block* b) {
  bool free_now;
  {
    Shard& shard = ShardFor(KeyOf(b->ns, b->digest));
    absl::MutexLock lock(&shard.mu);
    free_now =
        b->pins.fetch_sub(1, std::memory_order_relaxed) == 1 && b->state == BlockState::kRemoved;
  }
  counters_.pinned.fetch_sub(1, std::memory_order_relaxed);
  if (free_now) {
    absl::MutexLock lock(&space_mu_);
    FreeBlock(b);
  }
}

absl::Status PoolImpl::Remove(const BlockKey& key) {
  const int64_t ns = NamespaceId(key.ns, false);
  Block* b = nullptr;
  bool free_now = false;
  if (ns >= 0) {
    const InternalKey ikey = KeyOf(static_cast<uint32_t>(ns), key.digest);
    Shard& shard = ShardFor(ikey);
    absl::MutexLock lock(&shard.mu);
    auto it = shard.index.find(ikey);
    if (it != shard.index.end() && it->second->state == BlockState::kSealed) {
      b = it->second;
      shard.index.erase(it);
      Unpublish(b);
      b->state = BlockState::kRemoved;
      free_now = b->pins.load(std::memory_order_relaxed) == 0;
    }
  }
  if (b == nullptr) return absl::NotFoundError(absl::StrCat("key ", key.ToString(), " not found"));
  if (free_now) {
    absl::MutexLock lock(&space_mu_);
    FreeBlock(b);
  }
  return absl::OkStatus();
}

// --- Leases ----------------------------------------------------------------------------------

absl::Status PoolImpl::DoRelease(LeaseId lease_id, bool expired) {
  Lease lease;
  if (!TakeLease(lease_id, &lease)) {
    return absl::NotFoundError(absl::StrCat("lease ", lease_id, " is unknown or expired"));
  }
  Block* b = lease.block;
  if (!lease.write) {
    Unpin(b);
    return absl::OkStatus();
  }
  if (lease.blank) {  // in no index, and not a write that was abandoned
    counters_.blanks.fetch_sub(1, std::memory_order_relaxed);
    absl::MutexLock lock(&space_mu_);
    FreeBlock(b);
    return absl::OkStatus();
  }
  // An unsealed write: nobody else can see the block, so it goes straight back.
  {
    const InternalKey ikey = KeyOf(b->ns, b->digest);
    Shard& shard = ShardFor(ikey);
    absl::MutexLock lock(&shard.mu);
    shard.index.erase(ikey);
  }
  counters_.unsealed.fetch_sub(1, std::memory_order_relaxed);
  counters_.reclaimed.fetch_add(1, std::memory_order_relaxed);
  static_cast<void>(expired);
  absl::MutexLock lock(&space_mu_);
  FreeBlock(b);
  return absl::OkStatus();
}

absl::Status PoolImpl::Release(LeaseId lease) { return DoRelease(lease, false); }

size_t PoolImpl::ExpireLeases() {
  const absl::Time now = options_.clock->Now();
  std::vector<LeaseId> expired;
  for (size_t i = 0; i < kLeaseShards; ++i) {
    absl::MutexLock lock(&lease_shards_[i].mu);
    for (const auto& [id, lease] : lease_shards_[i].leases) {
      if (lease.deadline < now) expired.push_back(id);
    }
  }
  size_t ended = 0;
  for (LeaseId id : expired) ended += DoRelease(id, true).ok();
  return ended;
}

// --- Introspection ---------------------------------------------------------------------------

size_t PoolImpl::CollectSealed(size_t shard, size_t limit,
                               std::vector<std::pair<uint32_t, Digest>>& raw) {
  absl::MutexLock lock(&shards_[shard].mu);
  size_t n = 0;
  for (const auto& [key, block] : shards_[shard].index) {
    if (n >= limit) break;
    if (block->state != BlockState::kSealed) continue;
    raw.emplace_back(key.ns, key.digest);
    ++n;
  }
  return n;
}

std::vector<BlockKey> PoolImpl::Named(const std::vector<std::pair<uint32_t, Digest>>& raw) {
  std::vector<BlockKey> out;
  out.reserve(raw.size());
  absl::MutexLock lock(&ns_mu_);
  for (const auto& [ns, digest] : raw) out.push_back(BlockKey{ns_names_[ns], digest});
  return out;
}

std::vector<BlockKey> PoolImpl::Keys(size_t limit) {
  std::vector<std::pair<uint32_t, Digest>> raw;
  for (size_t i = 0; i < static_cast<size_t>(options_.index_shards) && raw.size() < limit; ++i) {
    CollectSealed(i, limit - raw.size(), raw);
  }
  return Named(raw);
}

Pool::KeyScan PoolImpl::ScanKeys(size_t from, size_t limit) {
  const size_t shards = static_cast<size_t>(options_.index_shards);
  std::vector<std::pair<uint32_t, Digest>> raw;
  size_t shard = from;
  while (shard < shards && raw.size() < limit) {
    CollectSealed(shard++, SIZE_MAX, raw);  // whole shards: the next page starts at a boundary
  }
  return KeyScan{.keys = Named(raw), .next = shard, .done = shard >= shards};
}

PoolStats PoolImpl::Stats() {
  PoolStats s;
  auto get = [](const std::atomic<uint64_t>& a) { return a.load(std::memory_order_relaxed); };
  s.keys = get(counters_.keys);
  s.unsealed_blocks = get(counters_.unsealed);
  s.blank_blocks = get(counters_.blanks);
  s.pinned_blocks = get(counters_.pinned);
  s.puts = get(counters_.puts);
  s.gets = get(counters_.gets);
  s.hits = get(counters_.hits);
  s.misses = get(counters_.misses);
  s.evictions = get(counters_.evictions);
  s.reclaimed_writes = get(counters_.reclaimed);
  s.bytes_in = get(counters_.bytes_in);
  s.bytes_out = get(counters_.bytes_out);
  s.capacity_bytes = arena_->size();
  s.hugepages = arena_->hugepages();
  {
    absl::MutexLock lock(&space_mu_);
    s.used_bytes = allocator_.used_bytes();
    s.eviction_policy = std::string(policy_->name());
    // Block record + index slot (key, pointer, control byte at 7/8 load) + policy entry
    // (list node and map slot) + id map slot, plus the allocator's chunk records.
    constexpr uint64_t kPerBlock =
        sizeof(Block) + (sizeof(InternalKey) + 8 + 1) * 8 / 7 + (24 + 16) + (16 + 1) * 8 / 7;
    s.metadata_bytes = (s.keys + s.unsealed_blocks + s.blank_blocks) * kPerBlock +
                       allocator_.metadata_bytes() + directory_bytes();
  }
  return s;
}

}  // namespace internal

absl::StatusOr<std::unique_ptr<Pool>> Pool::Create(const PoolOptions& options) {
  PoolOptions opts = options;
  if (opts.clock == nullptr) opts.clock = Clock::Real();
  if (!(opts.low_watermark > 0 && opts.low_watermark <= opts.high_watermark &&
        opts.high_watermark <= 1.0)) {
    return absl::InvalidArgumentError(
        absl::StrCat("watermarks must satisfy 0 < low <= high <= 1, got low=", opts.low_watermark,
                     " high=", opts.high_watermark));
  }
  if (opts.index_shards <= 0 || !std::has_single_bit(static_cast<unsigned>(opts.index_shards))) {
    return absl::InvalidArgumentError(
        absl::StrCat("index_shards must be a power of two, got ", opts.index_shards));
  }
  if (opts.max_value_bytes == 0) return absl::InvalidArgumentError("max_value_bytes must be > 0");
  EMS_ASSIGN_OR_RETURN(auto policy, MakeEvictionPolicy(opts.eviction_policy));
  EMS_ASSIGN_OR_RETURN(auto arena,
                       internal::Arena::Create(internal::ArenaOptions{
                           opts.huge_page_num, opts.huge_page_flavor_mb, opts.numa_node,
                           opts.require_hugepages, opts.prefault, opts.keep_going_prefault}));
  std::unique_ptr<directory::Writer> dir;
  if (opts.publish_directory) {
    EMS_ASSIGN_OR_RETURN(dir, directory::Writer::Create(arena->size()));
  }
  return std::unique_ptr<Pool>(
      new internal::PoolImpl(opts, std::move(arena), std::move(policy), std::move(dir)));
}

}  // namespace ems::pool
