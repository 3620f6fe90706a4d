// The changes to a pool's set of sealed keys, in order, for clients that keep a mirror of it
// (client/key_mirror.h): a client whose lookups would otherwise cost a round trip to every
// owner of a prompt answers them from its mirrors instead.
//
// A bounded ring: appending never waits for readers. A reader that falls more than
// `capacity` events behind is told so (OUT_OF_RANGE) and starts over from a snapshot.
#ifndef EMS_POOL_KEY_FEED_H_
#define EMS_POOL_KEY_FEED_H_

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/key.h"

namespace ems::pool {

// Thread-safe.
class KeyFeed {
 public:
  struct Event {
    uint64_t seq = 0;
    bool present = false;  // sealed (true) or gone: evicted or removed (false)
    BlockKey key;
  };

  // A namespace's name from the id the pool interned it under.
  using NamespaceName = std::function<std::string(uint32_t ns)>;

  KeyFeed(size_t capacity, NamespaceName ns_name);

  // Called on the put and evict paths with the key's shard lock held, so the events of one
  // key are in the order of its changes. Records 32 bytes under a leaf lock; namespaces are
  // named by readers, off those paths.
  void Append(bool present, uint32_t ns, const Digest& digest);
  // The seq the next event will get. Taken before a snapshot of the keys, every change the
  // snapshot may miss has a seq at or after it.
  uint64_t next() const;
  // Up to `max` events from seq `from` on, waiting up to `wait` for the first. Empty after
  // `wait` with nothing new; OUT_OF_RANGE if events from `from` on were overwritten.
  absl::StatusOr<std::vector<Event>> Read(uint64_t from, size_t max, absl::Duration wait);

 private:
  struct Entry {
    uint64_t seq = 0;
    uint32_t ns = 0;
    bool present = false;
    Digest digest;
  };

  const NamespaceName ns_name_;
  mutable absl::Mutex mu_;
  std::vector<Entry> ring_ ABSL_GUARDED_BY(mu_);
  uint64_t next_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace ems::pool

#endif  // EMS_POOL_KEY_FEED_H_
