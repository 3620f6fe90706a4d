// Prefix-aware eviction: only blocks with no cached children (leaves of the prefix tree) are
// candidates. A prefix hit needs every block before it, so evicting a parent would make all
// of its cached descendants useless; evicting leaves never does. Among leaves, "cold" ones —
// never a parent and never hit since insertion, typically the partly filled last block of a
// prompt, which the next turn re-hashes under a new id — go first, oldest first; then the
// other leaves, least recently used first.
//
// Evicted ids are remembered in a ghost list (ids only, twice the largest tracked population)
// as in ARC and S3-FIFO: a block wanted again soon after it was evicted has proved that its
// prefix is reused, so it comes back ranked like a block that was hit. Most KV blocks are
// requested once; without that memory a reused block evicted once looks as new as they do.
#ifndef EMS_POOL_INTERNAL_PREFIX_POLICY_H_
#define EMS_POOL_INTERNAL_PREFIX_POLICY_H_

#include <list>
#include <set>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "pool/eviction_policy.h"

namespace ems::pool::internal {

// Not thread-safe (see EvictionPolicy). O(log n) per operation; the ghost list holds at most
// 2× the largest number of blocks tracked at once.
class PrefixPolicy final : public EvictionPolicy {
 public:
  absl::string_view name() const override { return "prefix"; }
  void OnInsert(uint64_t id, uint64_t parent) override;
  void OnAccess(uint64_t id) override;
  void OnErase(uint64_t id) override;
  std::optional<uint64_t> Evict(absl::FunctionRef<bool(uint64_t)> can_evict) override;
  size_t size() const override { return nodes_.size(); }

 private:
  struct Node {
    uint64_t parent = 0;    // tracked parent, 0 if none
    uint32_t children = 0;  // tracked children
    uint64_t tick = 0;      // last access
    uint64_t priority = 0;  // eviction order among leaves (smallest first); see Priority
    bool cold = true;       // never had a child, never hit
    bool hit = false;       // hit at least once, or came back from the ghost list
  };
  // The tick, moved earlier for cold leaves and later for leaves that were hit.
  uint64_t Priority(const Node& n) const;
  void Forget(uint64_t id);
  // Forgets tracked block `id` and remembers it as a ghost.
  void EvictTracked(uint64_t id);

  absl::flat_hash_map<uint64_t, Node> nodes_;
  std::set<std::pair<uint64_t, uint64_t>> leaves_;  // (priority, id) of nodes without children
  uint64_t clock_ = 0;
  size_t max_size_ = 0;              // the largest tracked population seen; bounds the ghost list
  std::list<uint64_t> ghost_order_;  // evicted ids, most recent first
  absl::flat_hash_map<uint64_t, std::list<uint64_t>::iterator> ghosts_;
};

}  // namespace ems::pool::internal

#endif  // EMS_POOL_INTERNAL_PREFIX_POLICY_H_
