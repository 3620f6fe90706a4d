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
#include <utility>
#include <vector>

#include "pool/eviction_policy.h"
#include "pool/internal/id_table.h"

namespace ems::pool::internal {

// Not thread-safe (see EvictionPolicy). O(log n) per operation and per shadow; switching
// tunings re-ranks the leaves, O(n), at most once per scoring window.
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
  size_t size() const override { return tracked_; }

  // The tuning ranking leaves now (an index into the constructor's list).
  size_t tuning() const { return current_; }

 private:
  // Tracked blocks and ghosts live in one table of slots, found by id through one hash map
  // shared with the shadows (IdTable): a use costs one lookup whether the block is tracked, a
  // ghost or new, and an eviction turns a slot into a ghost in place. Leaves are a binary heap with
  // lazy deletion: an entry whose block has since moved, gained a child or gone is skipped when it
  // comes to the top, so nothing is written outside the heap when entries move. Before, a node map,
  // a ghost map and a std::set of leaves cost three lookups and an allocation per use, for the
  // policy and again for each shadow (pool_benchmark Policy, docs/replay.md).
  using Slot = IdTable::Slot;
  static constexpr Slot kNone = IdTable::kNone;
  enum class State : uint8_t { kFree, kTracked, kGhost };
  struct Node {
    uint64_t id = 0;
    uint64_t parent = 0;  // tracked parent when inserted, 0 if none
    uint64_t tick = 0;    // last access
    // Tracked: eviction order among leaves (smallest first; see Priority). Ghost: the
    // eviction's number, to tell its current entry in ghost_order_ from stale ones.
    uint64_t priority = 0;
    Slot parent_slot = kNone;
    uint32_t parent_gen = 0;  // the parent slot's generation when linked
    uint32_t gen = 0;         // bumped when the slot is freed: a stale parent link fails
    uint32_t children = 0;    // tracked children
    State state = State::kFree;
    bool cold = true;  // never had a child, never hit
    bool hit = false;  // hit at least once, or came back from the ghost list
  };
  struct Leaf {
    uint64_t priority;
    uint64_t id;  // ties go to the smaller id, so the order does not depend on slots
    Slot slot;
  };
  struct Shadow;

  // A policy whose slots come from `ids`: a shadow shares its owner's.
  PrefixPolicy(std::vector<Tuning> tunings, std::shared_ptr<IdTable> ids);

  // The tick, moved earlier for cold leaves and later for leaves that were hit.
  uint64_t Priority(const Node& n) const;
  // The slot of `id` in any state, kNone if neither tracked nor a ghost.
  Slot Find(uint64_t id) const;
  // One use of `id`: touched if tracked, else inserted under `parent`. True if it was tracked.
  bool Use(uint64_t id, uint64_t parent);
  void Insert(uint64_t id, uint64_t parent);  // REQUIRES: id not tracked
  void Touch(Slot s);                         // REQUIRES: s tracked
  // Stops tracking `s`; its parent may become a leaf. The caller frees it or makes it a ghost.
  void Untrack(Slot s);
  void Free(Slot s);
  // Untracks `s` and remembers it as a ghost.
  void EvictTracked(Slot s);
  // Shadows: replay one use of `id` (under `parent`) and keep them at this policy's size.
  void ShadowUse(uint64_t id, uint64_t parent);
  void ShadowShrink();
  // Ranks the leaves by tunings_[k].
  void Retune(size_t k);

  // The heap of leaves: smallest (priority, id) on top.
  struct After {
    bool operator()(const Leaf& a, const Leaf& b) const {
      return a.priority > b.priority || (a.priority == b.priority && a.id > b.id);
    }
  };
  // True if `leaf` is what its block is now: tracked, childless, at that priority. A block has
  // at most one such entry's worth of meaning: duplicates are equal and stand for the same.
  bool Current(const Leaf& leaf) const;
  void PushLeaf(Slot s);
  // Builds the heap again from the tracked leaves, without stale entries.
  void RebuildLeaves();

  std::vector<Tuning> tunings_;
  size_t current_ = 0;
  std::vector<std::unique_ptr<Shadow>> shadows_;  // one per tuning when there are several
  uint64_t window_uses_ = 0;                      // uses since the scores were last halved

  std::shared_ptr<IdTable> ids_;  // tracked ids and ghosts, and the shadows'
  std::vector<Node> slots_;       // by IdTable slot; kFree where only a shadow holds one
  std::vector<Leaf> heap_;        // tracked nodes without children, and stale entries
  std::vector<Leaf> skipped_;     // Evict's scratch: leaves it could not evict
  size_t tracked_ = 0;
  uint64_t clock_ = 0;
  size_t max_size_ = 0;  // the largest tracked population seen; bounds the ghost list
  // Evicted slots, oldest first, each with the eviction's number. An entry whose slot came
  // back, was freed or was evicted again later is stale and is skipped. A ring instead of a
  // linked list: no allocation per eviction, and trimming reads the oldest entries in order.
  struct GhostEntry {
    uint64_t id;
    Slot slot;
    uint64_t seq;
  };
  std::deque<GhostEntry> ghost_order_;
  size_t ghosts_ = 0;
  uint64_t ghost_seq_ = 0;
};

}  // namespace ems::pool::internal

#endif  // EMS_POOL_INTERNAL_PREFIX_POLICY_H_
