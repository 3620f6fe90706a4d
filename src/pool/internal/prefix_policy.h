// Prefix-aware eviction: only blocks with no cached children (leaves of the prefix tree) are
// candidates. A prefix hit needs every block before it, so evicting a parent would make all
// of its cached descendants useless; evicting leaves never does. Among leaves, "cold" ones —
// never a parent and never hit since insertion, typically the partly filled last block of a
// prompt, which the next turn re-hashes under a new id — can go earlier, and leaves that were
// hit later, than their last use alone says (a Tuning); otherwise least recently used first.
//
// Evicted ids are remembered in a ghost list (ids only, twice the largest tracked population)
// as in ARC and S3-FIFO: a block wanted again soon after it was evicted has proved that its
// prefix is reused, so it comes back ranked like a block that was hit. Most KV blocks are
// requested once; without that memory a reused block evicted once looks as new as they do.
//
// How much to favour hit blocks over new ones depends on the workload and the capacity: on
// the Mooncake traces protecting them beats LRU by up to 26%, but where the working set just
// fits (the multi-turn workload at the capacity where LRU stops missing) it lost 13 points
// to LRU. So the policy duels: it runs a shadow copy of itself per candidate
// tuning over the same stream, metadata only, holding as many blocks as it does, scores each
// by the prefix hits it would have had, and ranks by the tuning that recently scored best
// (set dueling, as in adaptive CPU cache insertion policies).
#ifndef EMS_POOL_INTERNAL_PREFIX_POLICY_H_
#define EMS_POOL_INTERNAL_PREFIX_POLICY_H_

#include <deque>
#include <memory>
#include <set>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "pool/eviction_policy.h"

namespace ems::pool::internal {

// Not thread-safe (see EvictionPolicy). O(log n) per operation and per shadow; switching
// tunings re-ranks the leaves, O(n log n), at most once per scoring window.
class PrefixPolicy final : public EvictionPolicy {
 public:
  // Offsets in cache sizes (the tracked population) applied to a leaf's last-use tick.
  struct Tuning {
    double cold = 0;  // a cold leaf competes as if this much older (at most 1)
    double hit = 0;   // a leaf that was hit, as if this much younger
  };
  // What the pool runs: hit blocks protected by a cache's worth, leaf-first LRU, and hit
  // blocks protected by four caches' worth (docs/replay.md measures each and the duel).
  static std::vector<Tuning> DefaultTunings();

  PrefixPolicy() : PrefixPolicy(DefaultTunings()) {}
  // One tuning: a fixed policy. Several: duels between them, starting with the first.
  explicit PrefixPolicy(std::vector<Tuning> tunings);
  ~PrefixPolicy() override;

  absl::string_view name() const override { return "prefix"; }
  void OnInsert(uint64_t id, uint64_t parent) override;
  void OnAccess(uint64_t id) override;
  void OnErase(uint64_t id) override;
  std::optional<uint64_t> Evict(absl::FunctionRef<bool(uint64_t)> can_evict) override;
  size_t size() const override { return nodes_.size(); }

  // The tuning ranking leaves now (an index into the constructor's list).
  size_t tuning() const { return current_; }

 private:
  struct Node {
    uint64_t parent = 0;    // tracked parent, 0 if none
    uint32_t children = 0;  // tracked children
    uint64_t tick = 0;      // last access
    uint64_t priority = 0;  // eviction order among leaves (smallest first); see Priority
    bool cold = true;       // never had a child, never hit
    bool hit = false;       // hit at least once, or came back from the ghost list
  };
  struct Shadow;

  // The tick, moved earlier for cold leaves and later for leaves that were hit.
  uint64_t Priority(const Node& n) const;
  void Insert(uint64_t id, uint64_t parent);  // REQUIRES: id not tracked
  void Touch(uint64_t id);                    // REQUIRES: id tracked
  void Forget(uint64_t id);
  // Forgets tracked block `id` and remembers it as a ghost.
  void EvictTracked(uint64_t id);
  // True if `id` was a ghost; it is one no longer.
  bool TakeGhost(uint64_t id);
  // Shadows: replay one use of `id` (under `parent`) and keep them at this policy's size.
  void ShadowUse(uint64_t id, uint64_t parent);
  void ShadowShrink();
  // Ranks the leaves by tunings_[k].
  void Retune(size_t k);

  std::vector<Tuning> tunings_;
  size_t current_ = 0;
  std::vector<std::unique_ptr<Shadow>> shadows_;  // one per tuning when there are several
  uint64_t window_uses_ = 0;                      // uses since the scores were last halved

  absl::flat_hash_map<uint64_t, Node> nodes_;
  // (priority, id) of nodes without children. absl::btree_set was 10-20% slower here
  // (pool_benchmark Policy): leaves are erased and inserted at scattered keys all the time.
  std::set<std::pair<uint64_t, uint64_t>> leaves_;
  uint64_t clock_ = 0;
  size_t max_size_ = 0;  // the largest tracked population seen; bounds the ghost list
  // Evicted ids, oldest first, each with the eviction's number; `ghosts_` maps a ghost to the
  // number of its current entry. An entry whose id came back (or was evicted again later) is
  // stale and is skipped. A ring of ids instead of a linked list: no allocation per eviction,
  // and trimming reads the oldest entries in order.
  struct GhostEntry {
    uint64_t id;
    uint64_t seq;
  };
  std::deque<GhostEntry> ghost_order_;
  absl::flat_hash_map<uint64_t, uint64_t> ghosts_;
  uint64_t ghost_seq_ = 0;
};

}  // namespace ems::pool::internal

#endif  // EMS_POOL_INTERNAL_PREFIX_POLICY_H_
