#include "pool/internal/prefix_policy.h"

namespace ems::pool::internal {

void PrefixPolicy::OnInsert(uint64_t id, uint64_t parent) {
  if (nodes_.contains(id)) {
    OnAccess(id);
    return;
  }
  Node node;
  node.tick = ++clock_;
  auto p = parent != 0 ? nodes_.find(parent) : nodes_.end();
  if (p != nodes_.end()) {
    node.parent = parent;
    if (p->second.children++ == 0) leaves_.erase({p->second.tick, parent});
  }
  nodes_.emplace(id, node);
  leaves_.insert({node.tick, id});
}

void PrefixPolicy::OnAccess(uint64_t id) {
  auto it = nodes_.find(id);
  if (it == nodes_.end()) return;
  Node& n = it->second;
  if (n.children == 0) leaves_.erase({n.tick, id});
  n.tick = ++clock_;
  if (n.children == 0) leaves_.insert({n.tick, id});
}

void PrefixPolicy::Forget(uint64_t id) {
  auto it = nodes_.find(id);
  if (it == nodes_.end()) return;
  const Node n = it->second;
  if (n.children == 0) leaves_.erase({n.tick, id});
  nodes_.erase(it);
  if (n.parent == 0) return;
  auto p = nodes_.find(n.parent);
  if (p != nodes_.end() && p->second.children > 0 && --p->second.children == 0) {
    leaves_.insert({p->second.tick, n.parent});  // the parent is a leaf again
  }
  // Children of a block removed by its owner keep a stale parent id; Forget checks that the
  // parent is still tracked before touching it.
}

void PrefixPolicy::OnErase(uint64_t id) { Forget(id); }

std::optional<uint64_t> PrefixPolicy::Evict(absl::FunctionRef<bool(uint64_t)> can_evict) {
  for (const auto& leaf : leaves_) {
    const uint64_t id = leaf.second;  // a copy: Forget erases the set entry
    if (can_evict(id)) {
      Forget(id);
      return id;
    }
  }
  // Every leaf is pinned: take the least recent evictable block of any kind.
  uint64_t best = 0, best_tick = UINT64_MAX;
  for (const auto& [id, n] : nodes_) {
    if (n.tick < best_tick && can_evict(id)) {
      best = id;
      best_tick = n.tick;
    }
  }
  if (best == 0) return std::nullopt;
  Forget(best);
  return best;
}

}  // namespace ems::pool::internal
