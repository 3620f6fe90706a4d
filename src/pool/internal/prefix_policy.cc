#include "pool/internal/prefix_policy.h"

#include <algorithm>

namespace ems::pool::internal {
namespace {
// Ghosts per tracked block. Reuse distances of KV prefixes are long — a conversation's next
// turn comes back after several cache-fulls of other traffic — so one cache's worth (ARC)
// forgets too early; the cost is an id and a list node per ghost, nothing next to a block.
constexpr size_t kGhostsPerBlock = 2;
// Shadow scores are halved, and the best tuning picked, every two caches' worth of uses (at
// least kMinWindow): long enough to see reuse from beyond a cache, short enough to follow a
// change of workload within a few windows.
constexpr uint64_t kMinWindow = 1024;
constexpr uint64_t kWindowCaches = 2;
// A tuning takes over only if it scored this much more than the current one. A switch
// re-ranks every leaf and leaves the cache between two tunings' contents for a while; on the
// partitioned traces switching on near ties ended below every candidate alone.
constexpr double kSwitchMargin = 1.05;
}  // namespace

// A candidate tuning run over the same stream, metadata only.
struct PrefixPolicy::Shadow {
  explicit Shadow(Tuning t) : policy(std::vector<Tuning>{t}) {}
  PrefixPolicy policy;
  double score = 0;      // prefix hits it would have had, halved every window
  uint64_t last_id = 0;  // the use before; a block is a prefix hit only if its parent was
  bool last_hit = false;
};

std::vector<PrefixPolicy::Tuning> PrefixPolicy::DefaultTunings() {
  return {{.cold = 0.5, .hit = 1}, {.cold = 0, .hit = 0}, {.cold = 1, .hit = 4}};
}

PrefixPolicy::PrefixPolicy(std::vector<Tuning> tunings) : tunings_(std::move(tunings)) {
  if (tunings_.empty()) tunings_.push_back({});
  if (tunings_.size() > 1) {
    for (const Tuning& t : tunings_) shadows_.push_back(std::make_unique<Shadow>(t));
  }
}

PrefixPolicy::~PrefixPolicy() = default;

// Offsets are in ticks relative to the tracked population, so they scale with the cache.
// With the first default tuning a cold leaf competes as if half a cache older, and a leaf
// that was hit (its conversation came back) as if a whole cache younger; the second is
// leaf-first LRU; the third keeps hit blocks through four caches' worth of new ones.
uint64_t PrefixPolicy::Priority(const Node& n) const {
  const Tuning& t = tunings_[current_];
  const uint64_t size = nodes_.size();
  uint64_t p = n.tick + size;  // keeps the subtraction below from wrapping
  if (n.cold) p -= static_cast<uint64_t>(size * std::clamp(t.cold, 0.0, 1.0));
  if (n.hit) p += static_cast<uint64_t>(size * std::max(t.hit, 0.0));
  return p;
}

void PrefixPolicy::ShadowUse(uint64_t id, uint64_t parent) {
  for (auto& s : shadows_) {
    const bool had = s->policy.nodes_.contains(id);
    // A prefix hit needs the parent to have been one. Only a parent used just before on this
    // policy is known to have missed; on a node most parents live on other nodes.
    const bool hit = had && (parent == 0 || parent != s->last_id || s->last_hit);
    s->score += hit;
    s->last_id = id;
    s->last_hit = hit;
    if (had) {
      s->policy.OnAccess(id);
    } else {
      s->policy.OnInsert(id, parent);
    }
  }
  if (++window_uses_ < std::max<uint64_t>(kMinWindow, kWindowCaches * nodes_.size())) return;
  window_uses_ = 0;
  size_t best = current_;
  for (size_t k = 0; k < shadows_.size(); ++k) {
    if (shadows_[k]->score > shadows_[best]->score * kSwitchMargin) best = k;
  }
  for (auto& s : shadows_) s->score /= 2;
  if (best != current_) Retune(best);
}

void PrefixPolicy::ShadowShrink() {
  auto always = [](uint64_t) { return true; };
  for (auto& s : shadows_) {
    while (s->policy.size() > nodes_.size() && s->policy.Evict(always)) {
    }
  }
}

void PrefixPolicy::Retune(size_t k) {
  current_ = k;
  leaves_.clear();
  for (auto& [id, n] : nodes_) {
    n.priority = Priority(n);
    if (n.children == 0) leaves_.insert({n.priority, id});
  }
}

void PrefixPolicy::OnInsert(uint64_t id, uint64_t parent) {
  if (!shadows_.empty()) ShadowUse(id, parent);
  if (nodes_.contains(id)) {
    Touch(id);
  } else {
    Insert(id, parent);
  }
  ShadowShrink();
}

void PrefixPolicy::OnAccess(uint64_t id) {
  auto it = nodes_.find(id);
  if (it == nodes_.end()) return;
  if (!shadows_.empty()) ShadowUse(id, it->second.parent);
  Touch(id);
  ShadowShrink();
}

void PrefixPolicy::Insert(uint64_t id, uint64_t parent) {
  Node node;
  node.tick = ++clock_;
  if (TakeGhost(id)) {
    node.cold = false;
    node.hit = true;
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

void PrefixPolicy::Touch(uint64_t id) {
  Node& n = nodes_.find(id)->second;
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

void PrefixPolicy::OnErase(uint64_t id) {
  if (!nodes_.contains(id)) return;  // not ours (EvictionPolicy): not the shadows' either
  Forget(id);
  for (auto& s : shadows_) s->policy.OnErase(id);
}

void PrefixPolicy::EvictTracked(uint64_t id) {
  Forget(id);
  ghost_order_.push_back({id, ++ghost_seq_});
  ghosts_[id] = ghost_seq_;
  const size_t cap = kGhostsPerBlock * max_size_;
  while (ghosts_.size() > cap) {  // forget the oldest live ghosts
    const GhostEntry e = ghost_order_.front();
    ghost_order_.pop_front();
    if (auto g = ghosts_.find(e.id); g != ghosts_.end() && g->second == e.seq) ghosts_.erase(g);
  }
  // Stale entries leave only when they reach the front; if ids keep coming back they could
  // pile up, so drop them all once they are as many as the live ones.
  if (ghost_order_.size() > 2 * ghosts_.size() + 64) {
    std::erase_if(ghost_order_, [this](const GhostEntry& e) {
      auto g = ghosts_.find(e.id);
      return g == ghosts_.end() || g->second != e.seq;
    });
  }
}

bool PrefixPolicy::TakeGhost(uint64_t id) {
  auto g = ghosts_.find(id);
  if (g == ghosts_.end()) return false;
  ghosts_.erase(g);  // its entry in ghost_order_ goes stale
  return true;
}

std::optional<uint64_t> PrefixPolicy::Evict(absl::FunctionRef<bool(uint64_t)> can_evict) {
  for (const auto& leaf : leaves_) {
    const uint64_t id = leaf.second;  // a copy: Forget erases the set entry
    if (can_evict(id)) {
      EvictTracked(id);
      ShadowShrink();
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
  ShadowShrink();
  return best;
}

}  // namespace ems::pool::internal
