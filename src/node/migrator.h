// Moves blocks this node no longer owns to their owners under the current cluster map: all of
// them when the node is DRAINING (graceful shrink keeps the cache), the ranges a joining node
// took over otherwise. A local copy is freed only after every owner acknowledged it.
#ifndef EMS_NODE_MIGRATOR_H_
#define EMS_NODE_MIGRATOR_H_

#include <functional>
#include <memory>
#include <string>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "common/cluster_view.h"
#include "ems/v1/data.grpc.pb.h"
#include "node/credential.h"
#include "pool/pool.h"

namespace ems::node {

struct MigratorOptions {
  std::string node_id;
  // Upper bound on the push rate, MB/s (0 = unlimited).
  double rate_mbps = 0;
  // Bytes per push RPC.
  uint64_t batch_bytes = 16ull << 20;
  // Keys read from the pool at a time; a pass reads them all, a page at a time.
  size_t keys_per_page = 1 << 16;
  absl::Duration period = absl::Seconds(1);
  // A map change starts a pass at once; without one, a pass that found nothing to move is
  // repeated only this often (see Run).
  absl::Duration rescan = absl::Seconds(30);
  // The project's cdKey, presented to the owners it pushes to (nullptr or "" = none): they
  // are the same cluster's nodes and require the same key of every client.
  std::shared_ptr<const Credential> credential;
};

// One background thread. Thread-safe.
class Migrator {
 public:
  using ViewFn = std::function<std::shared_ptr<const ClusterView>()>;
  // Called when a DRAINING node has nothing left to push; on an error it is called again a
  // period later.
  using DrainedFn = std::function<absl::Status()>;

  Migrator(pool::Pool* pool, MigratorOptions options, ViewFn view, DrainedFn drained);
  ~Migrator();

  // Ends the thread: no pass, view or drained call after it returns. Kick and
  // moved_blocks stay safe to call until the Migrator is destroyed. Called by one
  // thread, the owner's.
  void Stop();
  // Runs a pass soon (a new map arrived).
  void Kick();
  uint64_t moved_blocks() const;

 private:
  // What a pass did: blocks moved, and whether it found nothing to move and nothing failed.
  struct PassResult {
    size_t moved = 0;
    bool clean = true;
  };
  // Pacing state of a pass, for --migration_mbps.
  struct Pace {
    absl::Time start;
    uint64_t sent_bytes = 0;
  };

  void Run();
  // One pass over every key in the pool, a page at a time; stops early if Stop was called.
  PassResult Pass(const ClusterView& view);
  // Pushes the keys of one page that `view` gives to other owners.
  void PushPage(const ClusterView& view, const std::vector<BlockKey>& keys, Pace& pace,
                PassResult& result);
  // Sleeps for `d` unless Stop is called first; returns false if it was.
  bool SleepUnlessStopped(absl::Duration d);
  bool stopping() const;
  v1::DataPlane::Stub* StubFor(const std::string& address);

  pool::Pool* const pool_;
  const MigratorOptions options_;
  const ViewFn view_;
  const DrainedFn drained_;

  mutable absl::Mutex mu_;
  bool kicked_ ABSL_GUARDED_BY(mu_) = false;
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  uint64_t moved_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t drained_epoch_ ABSL_GUARDED_BY(mu_) = 0;
  // Touched only by the migrator thread.
  absl::flat_hash_map<std::string, std::unique_ptr<v1::DataPlane::Stub>> stubs_;
  uint64_t clean_epoch_ = 0;  // the epoch of the last pass that was clean, and when it ran
  absl::Time clean_at_ = absl::InfinitePast();

  std::thread thread_;
};

}  // namespace ems::node

#endif  // EMS_NODE_MIGRATOR_H_
