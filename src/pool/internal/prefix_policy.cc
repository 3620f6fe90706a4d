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
  Shadow(Tuning t, std::shared_ptr<IdTable> ids) : policy(std::vector<Tuning>{t}, std::move(ids)) {}
  PrefixPolicy policy;
  double score = 0;      // prefix hits it would have had, halved every window
  uint64_t last_id = 0;  // the use before; a block is a prefix hit only if its parent was
  bool last_hit = false;
};

std::vector<PrefixPolicy::Tuning> PrefixPolicy::DefaultTunings() {
  return {{.cold = 0.5, .hit = 1}, {.cold = 0, .hit = 0}, {.cold = 1, .hit = 4}};
}

PrefixPolicy::PrefixPolicy(std::vector<Tuning> tunings)
    : PrefixPolicy(std::move(tunings), std::make_shared<IdTable>()) {}

PrefixPolicy::PrefixPolicy(std::vector<Tuning> tunings, std::shared_ptr<IdTable> ids)
    : tunings_(std::move(tunings)), ids_(std::move(ids)) {
  if (tunings_.empty()) tunings_.push_back({});
  if (tunings_.size() > 1) {
    for (const Tuning& t : tunings_) shadows_.push_back(std::make_unique<Shadow>(t, ids_));
  }
}

PrefixPolicy::~PrefixPolicy() = default;

// Offsets are in ticks relative to the tracked population, so they scale with the cache.
// With the first default tuning a cold leaf competes as if half a cache older, and a leaf
// that was hit (its conversation came back) as if a whole cache younger; the second is
// leaf-first LRU; the third keeps hit blocks through four caches' worth of new ones.
uint64_t PrefixPolicy::Priority(const Node& n) const {
  const Tuning& t = tunings_[current_];
  const uint64_t size = tracked_;
  uint64_t p = n.tick + size;  // keeps the subtraction below from wrapping
  if (n.cold) p -= static_cast<uint64_t>(size * std::clamp(t.cold, 0.0, 1.0));
  if (n.hit) p += static_cast<uint64_t>(size * std::max(t.hit, 0.0));
  return p;
}

void PrefixPolicy::ShadowUse(uint64_t id, uint64_t parent) {
  // The lookup below is a cache miss at large sizes; start it now.
  ids_->Prefetch(id);
  for (auto& s : shadows_) {
    PrefixPolicy& shadow = s->policy;
    const Slot slot = shadow.Find(id);
    const bool had = slot != kNone && shadow.slots_[slot].state == State::kTracked;
    // A prefix hit needs the parent to have been one. Only a parent used just before on this
    // policy is known to have missed; on a node most parents live on other nodes.
    const bool hit = had && (parent == 0 || parent != s->last_id || s->last_hit);
    s->score += hit;
    s->last_id = id;
    s->last_hit = hit;
    if (had) {
      shadow.Touch(slot);
    } else {
      shadow.Insert(id, parent);
    }
  }
  if (++window_uses_ < std::max<uint64_t>(kMinWindow, kWindowCaches * tracked_)) return;
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
    while (s->policy.size() > tracked_ && s->policy.Evict(always)) {
    }
  }
}

void PrefixPolicy::Retune(size_t k) {
  current_ = k;
  for (Node& n : slots_) {
    if (n.state == State::kTracked) n.priority = Priority(n);
  }
  RebuildLeaves();
}

PrefixPolicy::Slot PrefixPolicy::Find(uint64_t id) const {
  const Slot s = ids_->Find(id);  // kNone is past every slot
  return s < slots_.size() && slots_[s].state != State::kFree ? s : kNone;
}

bool PrefixPolicy::Use(uint64_t id, uint64_t parent) {
  const Slot s = Find(id);
  if (s != kNone && slots_[s].state == State::kTracked) {
    Touch(s);
    return true;
  }
  Insert(id, parent);
  return false;
}

void PrefixPolicy::OnInsert(uint64_t id, uint64_t parent) {
  if (!shadows_.empty()) ShadowUse(id, parent);
  Use(id, parent);
  ShadowShrink();
}

void PrefixPolicy::OnAccess(uint64_t id) {
  const Slot s = Find(id);
  if (s == kNone || slots_[s].state != State::kTracked) return;
  if (!shadows_.empty()) ShadowUse(id, slots_[s].parent);
  Touch(s);
  ShadowShrink();
}

void PrefixPolicy::Insert(uint64_t id, uint64_t parent) {
  Slot s = Find(id);
  const bool ghost = s != kNone;  // not tracked (the caller checked), so a ghost
  if (ghost) {
    --ghosts_;  // its entry in ghost_order_ goes stale
  } else {
    s = ids_->Acquire(id);
    if (s >= slots_.size()) slots_.resize(ids_->capacity());
  }
  Node& node = slots_[s];
  node.id = id;
  node.parent = 0;
  node.parent_slot = kNone;
  node.children = 0;
  node.tick = ++clock_;
  node.state = State::kTracked;
  node.cold = !ghost;
  node.hit = ghost;
  const Slot ps = parent != 0 ? Find(parent) : kNone;
  if (ps != kNone && slots_[ps].state == State::kTracked) {
    Node& pn = slots_[ps];
    node.parent = parent;
    node.parent_slot = ps;
    node.parent_gen = pn.gen;
    ++pn.children;  // its leaf entry, if any, is stale now
    pn.cold = false;
  }
  node.priority = Priority(node);
  ++tracked_;
  PushLeaf(s);
  max_size_ = std::max(max_size_, tracked_);
}

void PrefixPolicy::Touch(Slot s) {
  Node& n = slots_[s];
  n.tick = ++clock_;
  n.cold = false;
  n.hit = true;
  n.priority = Priority(n);
  if (n.children == 0) PushLeaf(s);
}

void PrefixPolicy::Untrack(Slot s) {
  Node& n = slots_[s];
  n.state = State::kFree;
  --tracked_;
  if (n.parent_slot == kNone) return;
  // The parent may have gone (removed by its owner) and its slot been reused since: the
  // generation tells.
  Node& p = slots_[n.parent_slot];
  if (p.state == State::kTracked && p.gen == n.parent_gen && p.children > 0 && --p.children == 0) {
    PushLeaf(n.parent_slot);  // a leaf again
  }
}

void PrefixPolicy::Free(Slot s) {
  Node& n = slots_[s];
  n.state = State::kFree;
  ++n.gen;
  ids_->Release(s, n.id);
}

void PrefixPolicy::OnErase(uint64_t id) {
  const Slot s = Find(id);
  // Not ours (EvictionPolicy): not the shadows' either.
  if (s == kNone || slots_[s].state != State::kTracked) return;
  Untrack(s);
  Free(s);
  for (auto& sh : shadows_) sh->policy.OnErase(id);
}

void PrefixPolicy::EvictTracked(Slot s) {
  Untrack(s);
  Node& n = slots_[s];
  n.state = State::kGhost;
  ++n.gen;  // its children's links are stale even if it comes back
  n.priority = ++ghost_seq_;
  ghost_order_.push_back({n.id, s, ghost_seq_});
  ++ghosts_;
  const size_t cap = kGhostsPerBlock * max_size_;
  auto live = [this](const GhostEntry& e) {
    return slots_[e.slot].state == State::kGhost && slots_[e.slot].priority == e.seq;
  };
  while (ghosts_ > cap) {  // forget the oldest live ghosts
    const GhostEntry e = ghost_order_.front();
    ghost_order_.pop_front();
    if (live(e)) {
      --ghosts_;
      Free(e.slot);
    }
  }
  // Stale entries leave only when they reach the front; if ids keep coming back they could
  // pile up, so drop them all once they are as many as the live ones.
  if (ghost_order_.size() > 2 * ghosts_ + 64) {
    std::erase_if(ghost_order_, [&](const GhostEntry& e) { return !live(e); });
  }
  // A full ghost list forgets its oldest ghost at the next eviction: fetch what that will
  // touch now (cache misses at large sizes), while the other policies do their work.
  if (!ghost_order_.empty()) {
    const GhostEntry& next = ghost_order_.front();
    __builtin_prefetch(&slots_[next.slot]);
    ids_->PrefetchRelease(next.slot, next.id);
  }
}

std::optional<uint64_t> PrefixPolicy::Evict(absl::FunctionRef<bool(uint64_t)> can_evict) {
  // Leaves in order; the ones that cannot go now (pinned) are set aside and put back.
  std::optional<uint64_t> victim;
  while (!heap_.empty()) {
    const Leaf top = heap_.front();
    std::pop_heap(heap_.begin(), heap_.end(), After());
    heap_.pop_back();
    if (!Current(top)) continue;
    if (can_evict(top.id)) {
      victim = top.id;
      EvictTracked(top.slot);
      break;
    }
    skipped_.push_back(top);
  }
  for (const Leaf& l : skipped_) {
    heap_.push_back(l);
    std::push_heap(heap_.begin(), heap_.end(), After());
  }
  skipped_.clear();
  if (!victim) {
    // Every leaf is pinned: take the least recent evictable block of any kind.
    Slot best = kNone;
    uint64_t best_tick = UINT64_MAX;
    for (Slot s = 0; s < slots_.size(); ++s) {
      const Node& n = slots_[s];
      if (n.state == State::kTracked && n.tick < best_tick && can_evict(n.id)) {
        best = s;
        best_tick = n.tick;
      }
    }
    if (best == kNone) return std::nullopt;
    victim = slots_[best].id;
    EvictTracked(best);
  }
  ShadowShrink();
  return victim;
}

bool PrefixPolicy::Current(const Leaf& leaf) const {
  const Node& n = slots_[leaf.slot];
  return n.state == State::kTracked && n.id == leaf.id && n.children == 0 &&
         n.priority == leaf.priority;
}

void PrefixPolicy::PushLeaf(Slot s) {
  const Node& n = slots_[s];
  heap_.push_back({n.priority, n.id, s});
  std::push_heap(heap_.begin(), heap_.end(), After());
  // Stale entries are dropped when they reach the top; if they pile up faster (blocks
  // touched again and again while others are evicted), start afresh.
  if (heap_.size() > 2 * tracked_ + 1024) RebuildLeaves();
}

void PrefixPolicy::RebuildLeaves() {
  heap_.clear();
  for (Slot s = 0; s < slots_.size(); ++s) {
    const Node& n = slots_[s];
    if (n.state == State::kTracked && n.children == 0) heap_.push_back({n.priority, n.id, s});
  }
  std::make_heap(heap_.begin(), heap_.end(), After());
}

}  // namespace ems::pool::internal
