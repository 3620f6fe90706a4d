#include "node/removed_keys.h"

#include "absl/hash/hash.h"

namespace ems::node {

RemovedKeys::RemovedKeys(RemovedKeysOptions options)
    : options_(std::move(options)),
      clock_(options_.clock != nullptr ? options_.clock : Clock::Real()) {}

uint64_t RemovedKeys::Hash(const BlockKey& key) { return absl::Hash<BlockKey>{}(key); }

void RemovedKeys::Note(const BlockKey& key) {
  const uint64_t h = Hash(key);
  absl::MutexLock lock(&mu_);
  const uint64_t seq = next_seq_++;
  seq_[h] = seq;
  order_.push_back({seq, clock_->Now(), h});
  TrimLocked();
  count_.store(seq_.size(), std::memory_order_release);
}

void RemovedKeys::Forget(const BlockKey& key) {
  if (count_.load(std::memory_order_acquire) == 0) return;
  absl::MutexLock lock(&mu_);
  // Its entry in order_ stays until trimmed; seq_ no longer names it, so it is skipped.
  seq_.erase(Hash(key));
  count_.store(seq_.size(), std::memory_order_release);
}

bool RemovedKeys::Contains(const BlockKey& key) {
  if (count_.load(std::memory_order_acquire) == 0) return false;
  const uint64_t h = Hash(key);
  absl::MutexLock lock(&mu_);
  return ContainsLocked(h);
}

bool RemovedKeys::UndoIfNoted(const BlockKey& key, pool::Pool& pool) {
  if (count_.load(std::memory_order_acquire) == 0) return false;
  // Under mu_: a client's put of the key Forgets it first, so it either allocates after this
  // removal (and stores its own block) or made this check find nothing.
  const uint64_t h = Hash(key);
  absl::MutexLock lock(&mu_);
  if (!ContainsLocked(h)) return false;
  pool.Remove(key).IgnoreError();  // NOT_FOUND: evicted already, gone either way
  return true;
}

size_t RemovedKeys::size() const { return count_.load(std::memory_order_acquire); }

uint64_t RemovedKeys::dropped() const {
  absl::MutexLock lock(&mu_);
  return dropped_;
}

bool RemovedKeys::ContainsLocked(uint64_t key) {
  TrimLocked();
  count_.store(seq_.size(), std::memory_order_release);
  return seq_.contains(key);
}

void RemovedKeys::TrimLocked() {
  const absl::Time expired = clock_->Now() - options_.ttl;
  while (!order_.empty()) {
    const Entry& e = order_.front();
    auto it = seq_.find(e.key);
    const bool live = it != seq_.end() && it->second == e.seq;
    // Forgotten keys leave their entries behind: bound those too.
    const bool over = seq_.size() > options_.capacity || order_.size() > 2 * options_.capacity;
    if (live && e.at > expired && !over) break;
    if (live) {
      if (e.at > expired) ++dropped_;  // forgotten before its time, for room
      seq_.erase(it);
    }
    order_.pop_front();
  }
}

}  // namespace ems::node
