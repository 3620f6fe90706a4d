// Moves blocks this node no longer owns to their owners under the current cluster map: all of
// them when the node is DRAINING (graceful shrink keeps the cache), the ranges a joining node
// took over otherwise. A local copy is freed only after an owner acknowledged it.
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
#include "pool/pool.h"

namespace ems::node {

struct MigratorOptions {
  std::string node_id;
  // Upper bound on the push rate, MB/s (0 = unlimited).
  double rate_mbps = 0;
  // Bytes per push RPC.
  uint64_t batch_bytes = 16ull << 20;
  absl::Duration period = absl::Seconds(1);
};

// One background thread. Thread-safe.
class Migrator {
 public:
  using ViewFn = std::function<std::shared_ptr<const ClusterView>()>;
  // Called when a DRAINING node has nothing left to push.
  using DrainedFn = std::function<void()>;

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
  void Run();
  // One pass over the pool; returns how many blocks moved.
  size_t Pass(const ClusterView& view);
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

  std::thread thread_;
};

}  // namespace ems::node

#endif  // EMS_NODE_MIGRATOR_H_
