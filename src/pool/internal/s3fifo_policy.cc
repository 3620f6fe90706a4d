#include "pool/internal/s3fifo_policy.h"

#include <algorithm>

namespace ems::pool::internal {
namespace {
// The small queue's share of the tracked blocks, as in the paper.
constexpr double kSmallShare = 0.10;
}  // namespace

void S3FifoPolicy::Push(Queue q, uint64_t id, Entry& e) {
  e.queue = q;
  e.gen = next_gen_++;
  (q == Queue::kSmall ? small_ : main_).push_front({id, e.gen});
  ++(q == Queue::kSmall ? small_live_ : main_live_);
}

void S3FifoPolicy::OnInsert(uint64_t id, uint64_t) {
  if (entries_.contains(id)) {
    OnAccess(id);
    return;
  }
  Entry& e = entries_[id];
  // A block evicted recently and wanted again skips probation.
  if (ghost_.erase(id) > 0) {
    Push(Queue::kMain, id, e);
  } else {
    Push(Queue::kSmall, id, e);
  }
}

void S3FifoPolicy::OnAccess(uint64_t id) {
  auto it = entries_.find(id);
  if (it != entries_.end() && it->second.freq < 3) ++it->second.freq;
}

void S3FifoPolicy::OnErase(uint64_t id) {
  auto it = entries_.find(id);
  if (it == entries_.end()) return;
  --(it->second.queue == Queue::kSmall ? small_live_ : main_live_);
  entries_.erase(it);  // its queue slot goes stale
}

void S3FifoPolicy::RememberGhost(uint64_t id) {
  ghost_order_.push_front(id);
  ghost_.insert(id);
  // The ghost remembers about as many ids as the main queue holds.
  const size_t cap = std::max<size_t>(main_live_, 16);
  while (ghost_order_.size() > cap) {
    ghost_.erase(ghost_order_.back());
    ghost_order_.pop_back();
  }
}

bool S3FifoPolicy::PopLive(std::deque<Slot>& q, uint64_t* id) {
  while (!q.empty()) {
    Slot s = q.back();
    q.pop_back();
    auto it = entries_.find(s.id);
    if (it != entries_.end() && it->second.gen == s.gen) {
      *id = s.id;
      return true;
    }
  }
  return false;
}

std::optional<uint64_t> S3FifoPolicy::Evict(absl::FunctionRef<bool(uint64_t)> can_evict) {
  // Each step moves or evicts one block; a pinned block is re-queued. The budget bounds the
  // work when everything is pinned, and must cover the longest search when something is not:
  // a block in the small queue takes one step to reach the main queue, and one there up to
  // four visits (three to spend a frequency of 3, one to go), each a round of the main queue.
  // Two steps per block returned nothing from a cache whose blocks were all hot, so a put
  // past the high watermark evicted nothing and left the pool above it.
  const size_t budget = 5 * entries_.size() + 8;
  for (size_t step = 0; step < budget && !entries_.empty(); ++step) {
    const bool from_small =
        small_live_ > 0 && (small_live_ >= kSmallShare * entries_.size() || main_live_ == 0);
    uint64_t id;
    if (from_small) {
      if (!PopLive(small_, &id)) continue;
      --small_live_;
      Entry& e = entries_[id];
      if (e.freq > 1) {  // accessed during probation: promote
        e.freq = 0;
        Push(Queue::kMain, id, e);
      } else if (can_evict(id)) {
        entries_.erase(id);
        RememberGhost(id);
        return id;
      } else {
        Push(Queue::kMain, id, e);  // pinned: in use, so treat it as worth keeping
      }
    } else {
      if (!PopLive(main_, &id)) continue;
      --main_live_;
      Entry& e = entries_[id];
      if (e.freq > 0) {
        --e.freq;
        Push(Queue::kMain, id, e);
      } else if (can_evict(id)) {
        entries_.erase(id);
        return id;
      } else {
        Push(Queue::kMain, id, e);
      }
    }
  }
  return std::nullopt;
}

}  // namespace ems::pool::internal
