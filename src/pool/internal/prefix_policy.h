// Prefix-aware eviction: only blocks with no cached children (leaves of the prefix tree) are
// candidates. A prefix hit needs every block before it, so evicting a parent would make all
// of its cached descendants useless; evicting leaves never does. Among leaves, "cold" ones —
// never a parent and never hit since insertion, typically the partly filled last block of a
// prompt, which the next turn re-hashes under a new id — go first, oldest first; then the
// other leaves, least recently used first.
#ifndef EMS_POOL_INTERNAL_PREFIX_POLICY_H_
#define EMS_POOL_INTERNAL_PREFIX_POLICY_H_

#include <set>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "pool/eviction_policy.h"

namespace ems::pool::internal {

// Not thread-safe (see EvictionPolicy). O(log n) per operation.
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
    bool hit = false;       // hit at least once since insertion
  };
  // The tick, moved earlier for cold leaves and later for leaves that were hit.
  uint64_t Priority(const Node& n) const;
  void Forget(uint64_t id);

  absl::flat_hash_map<uint64_t, Node> nodes_;
  std::set<std::pair<uint64_t, uint64_t>> leaves_;  // (priority, id) of nodes without children
  uint64_t clock_ = 0;
};

}  // namespace ems::pool::internal

#endif  // EMS_POOL_INTERNAL_PREFIX_POLICY_H_
