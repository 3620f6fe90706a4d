// A copy of one node's set of sealed keys, kept current by a thread that follows the node's
// WATCH_KEYS stream (bulk/wire.h). A client on another host answers lookups of that node's
// keys from it, with no round trip: a 64-key MatchPrefix over three nodes otherwise wakes all
// three (docs/distributed.md measures both).
//
// How current it is: the mirror trails the node by the stream's delivery, one hop. A block
// the node evicted a moment ago can still be claimed (the Get that follows misses, as when a
// block is evicted between a lookup and its read); a block another client stored a moment ago
// can be missed (it is recomputed). This client's own puts and removes apply at once, so it
// reads its own writes; a put is claimed on its own only until the stream could have
// confirmed it (kStaleAfter), since the stream may have removed the key already (evicted at
// once), or never add it (the put was answered OK for a block another writer had not sealed,
// and that writer gave up). Disconnected, or silent for longer than kStaleAfter (the node sends
// something every kWatchIdleInterval), the mirror answers nothing and lookups go to the node.
#ifndef EMS_CLIENT_KEY_MIRROR_H_
#define EMS_CLIENT_KEY_MIRROR_H_

#include <optional>
#include <string>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "client/bulk_channel.h"
#include "common/key.h"

namespace ems::client {

// Thread-safe.
class KeyMirror {
 public:
  // A stream that says nothing for this long is taken for a dead or frozen node.
  static constexpr absl::Duration kStaleAfter = absl::Seconds(1);

  // Starts following the node behind `channel`, which must outlive the mirror.
  explicit KeyMirror(BulkChannel* channel);
  ~KeyMirror();  // ends the stream and joins the thread: waits at most about kStaleAfter
  KeyMirror(const KeyMirror&) = delete;
  KeyMirror& operator=(const KeyMirror&) = delete;

  // Whether the node holds `key`; nullopt while the mirror is not in step with the node.
  std::optional<bool> Contains(const BlockKey& key) const;
  // This client stored or removed `key` on the node (read-your-writes).
  void NoteStored(const BlockKey& key);
  void NoteRemoved(const BlockKey& key);

 private:
  void Run();
  // Follows the stream on `fd` until it fails or the mirror stops.
  absl::Status Follow(int fd);

  BulkChannel* const channel_;
  mutable absl::Mutex mu_;
  absl::flat_hash_set<BlockKey> keys_ ABSL_GUARDED_BY(mu_);
  // Keys this client stored that the stream has not added yet, and until when they count.
  absl::flat_hash_map<BlockKey, absl::Time> noted_ ABSL_GUARDED_BY(mu_);
  absl::Time noted_swept_ ABSL_GUARDED_BY(mu_);
  bool synced_ ABSL_GUARDED_BY(mu_) = false;
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  int fd_ ABSL_GUARDED_BY(mu_) = -1;  // the stream's socket, for the destructor to shut down
  std::thread thread_;
};

}  // namespace ems::client

#endif  // EMS_CLIENT_KEY_MIRROR_H_
