#include "pool/internal/prefix_policy.h"

#include <algorithm>

namespace ems::pool::internal {
namespace {
// Ghosts per tracked block. Reuse distances of KV prefixes are long — a conversation's next
// turn comes back after several cache-fulls of other traffic — so one cache's worth (ARC)
// forgets too early; the cost is an id and a list node per ghost, nothing next to a block.
constexpr size_t kGhostsPerBlock = 2;
}  // namespace

// Offsets are in ticks relative to the tracked population, so they scale with the cache:
// a cold leaf (the partial last block of a prompt, never reused) competes as if half a cache
// older; a leaf that was hit (its conversation came back) as if a whole cache younger.
uint64_t PrefixPolicy::Priority(const Node& n) const {
  const uint64_t size = nodes_.size();
  uint64_t p = n.tick + size;  // keeps the subtraction below from wrapping
  if (n.cold) p -= size / 2;
  if (n.hit) p += size;
  return p;
}

void PrefixPolicy::OnInsert(uint64_t id, uint64_t parent) {
  if (nodes_.contains(id)) {
    OnAccess(id);
    return;
  }
  Node node;
  node.tick = ++clock_;
  if (auto g = ghosts_.find(id); g != ghosts_.end()) {
    node.cold = false;
    node.hit = true;
    ghost_order_.erase(g->second);
    ghosts_.erase(g);
  }
  auto p = parent != 0 ? nodes_.find(parent) : nodes_.end();
  if (p != nodes_.end()) {
    node.parent = parent;
    Node& pn = p->second;
    if (pn.children++ == 0) leaves_.erase({pn.priority, parent});
    pn.cold = false;
  }
  node.priority = Priority(node);
  nodes_.emplace(id, node);
  leaves_.insert({node.priority, id});
  max_size_ = std::max(max_size_, nodes_.size());
}

void PrefixPolicy::OnAccess(uint64_t id) {
  auto it = nodes_.find(id);
  if (it == nodes_.end()) return;
  Node& n = it->second;
  if (n.children == 0) leaves_.erase({n.priority, id});
  n.tick = ++clock_;
  n.cold = false;
  n.hit = true;
  n.priority = Priority(n);
  if (n.children == 0) leaves_.insert({n.priority, id});
}

void PrefixPolicy::Forget(uint64_t id) {
  auto it = nodes_.find(id);
  if (it == nodes_.end()) return;
  const Node n = it->second;
  if (n.children == 0) leaves_.erase({n.priority, id});
  nodes_.erase(it);
  if (n.parent == 0) return;
  // Children of a block removed by its owner keep a stale parent id: check it is still
  // tracked before touching it.
  auto p = nodes_.find(n.parent);
  if (p != nodes_.end() && p->second.children > 0 && --p->second.children == 0) {
    leaves_.insert({p->second.priority, n.parent});  // a leaf again
  }
}

void PrefixPolicy::OnErase(uint64_t id) { Forget(id); }

void PrefixPolicy::EvictTracked(uint64_t id) {
  Forget(id);
  ghost_order_.push_front(id);
  ghosts_[id] = ghost_order_.begin();
  while (ghosts_.size() > kGhostsPerBlock * max_size_) {
    ghosts_.erase(ghost_order_.back());
    ghost_order_.pop_back();
  }
}

std::optional<uint64_t> PrefixPolicy::Evict(absl::FunctionRef<bool(uint64_t)> can_evict) {
  for (const auto& leaf : leaves_) {
    const uint64_t id = leaf.second;  // a copy: Forget erases the set entry
    if (can_evict(id)) {
      EvictTracked(id);
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
  EvictTracked(best);
  return best;
}

}  // namespace ems::pool::internal
