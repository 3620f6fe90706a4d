// The keys clients removed from this node lately (tombstones), so that a migration push that
// raced the remove does not store the block again. See docs/distributed.md, *Migration*.
#ifndef EMS_NODE_REMOVED_KEYS_H_
#define EMS_NODE_REMOVED_KEYS_H_

#include <atomic>
#include <cstdint>
#include <deque>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/clock.h"
#include "common/key.h"
#include "pool/pool.h"

namespace ems::node {

struct RemovedKeysOptions {
  // How long a remove is remembered. A push of the key that started before the remove reaches
  // this node within its RPC deadline (30 s); one from an old owner that was not asked to
  // remove it (an expand) comes when that owner's pass reaches the key, which for a large pool
  // at a capped rate takes minutes.
  absl::Duration ttl = absl::Minutes(10);
  // At most this many are remembered (under 100 bytes each: 256k take about 20 MB); the oldest
  // go first.
  size_t capacity = 1 << 18;
  Clock* clock = nullptr;  // not owned; nullptr = Clock::Real()
};

// Thread-safe. The order that makes a racing push harmless: a client's Remove calls Note before
// it removes the block from the pool, and a client's put calls Forget before it allocates; a
// migration push is refused when Noted and, after it sealed, undone by UndoIfNoted. mu_ is
// taken before the pool's locks (UndoIfNoted removes under it), never while holding one.
class RemovedKeys {
 public:
  explicit RemovedKeys(RemovedKeysOptions options = {});

  // A client removed `key` from this node.
  void Note(const BlockKey& key);
  // A client puts `key` here: from now on it is the client's block, which no push may undo.
  void Forget(const BlockKey& key);
  // True if a client removed `key` within the ttl and has not put it since.
  bool Contains(const BlockKey& key);
  // For a push that stored `key`: if a client removed it meanwhile (Contains), removes it from
  // `pool` and returns true. Atomic with Forget, so a client's put after its remove is never
  // the block removed here.
  bool UndoIfNoted(const BlockKey& key, pool::Pool& pool);

  size_t size() const;
  // Removes forgotten before their ttl because `capacity` newer ones were remembered: a push
  // of one of those keys can store it again.
  uint64_t dropped() const;

 private:
  // Keys are kept as a 64-bit hash, a quarter of a BlockKey's size (and no namespace string on
  // the heap). Two keys of one hash are one key here: a push of the other is refused too, a
  // miss, with odds of about capacity / 2^64.
  struct Entry {
    uint64_t seq;
    absl::Time at;
    uint64_t key;
  };
  static uint64_t Hash(const BlockKey& key);
  bool ContainsLocked(uint64_t key) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void TrimLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const RemovedKeysOptions options_;
  Clock* const clock_;
  // Number of remembered keys (release stores under mu_, acquire loads without it): puts and
  // pushes skip the lock while there are none, the common case (a cache rarely removes). A
  // Note stores it before the remove takes the pool's shard lock, so a push that seals after
  // that remove sees it.
  std::atomic<size_t> count_{0};

  mutable absl::Mutex mu_;
  absl::flat_hash_map<uint64_t, uint64_t> seq_ ABSL_GUARDED_BY(mu_);  // key → its latest Note
  std::deque<Entry> order_ ABSL_GUARDED_BY(mu_);  // oldest first; stale entries skipped
  uint64_t next_seq_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t dropped_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace ems::node

#endif  // EMS_NODE_REMOVED_KEYS_H_
