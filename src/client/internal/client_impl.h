// The Client implementation: standalone (one node) or routed over a cluster map.
#ifndef EMS_CLIENT_INTERNAL_CLIENT_IMPL_H_
#define EMS_CLIENT_INTERNAL_CLIENT_IMPL_H_

#include <atomic>
#include <memory>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "client/client.h"
#include "client/internal/node_connection.h"
#include "common/cluster_view.h"
#include "ems/v1/data.pb.h"
#include "ems/v1/membership.grpc.pb.h"

namespace ems::client::internal {

// How one item fared on one node.
enum class Outcome : uint8_t { kDone, kMiss, kTransport, kStale };

class ClientImpl final : public Client {
 public:
  explicit ClientImpl(const ClientOptions& options);
  ~ClientImpl() override;
  // Standalone: checks the node answers Health. Cluster: fetches the first map.
  absl::Status Init();

  absl::Status Put(const BlockKey& key, absl::Span<const uint8_t> value,
                   const BlockKey* parent) override;
  absl::StatusOr<size_t> Get(const BlockKey& key, absl::Span<uint8_t> out) override;
  std::vector<absl::Status> BatchPut(absl::Span<const PutItem> items) override;
  std::vector<absl::StatusOr<size_t>> BatchGet(absl::Span<const GetItem> items) override;
  absl::StatusOr<size_t> MatchPrefix(absl::Span<const BlockKey> keys) override;
  absl::StatusOr<std::vector<bool>> Exists(absl::Span<const BlockKey> keys) override;
  absl::StatusOr<size_t> Remove(absl::Span<const BlockKey> keys) override;
  absl::StatusOr<v1::StatsResponse> Stats() override;
  ClientCounters counters() const override;
  uint64_t epoch() const override;

 private:
  using ConnPtr = std::shared_ptr<NodeConnection>;
  struct Routing {
    std::shared_ptr<const ClusterView> view;  // nullptr in standalone mode
    uint64_t epoch = 0;
    std::shared_ptr<NodeConnection> single;  // standalone mode: the one node
  };

  Routing Current() const;
  // Current(), after (standalone) replacing a connection that lost its local path: the
  // routing a call starts from. Cluster connections are replaced in Conn().
  Routing Route();
  ConnPtr Conn(const v1::NodeInfo& node) ABSL_LOCKS_EXCLUDED(mu_);
  // The client's connection to `node` if it can still serve (same address and bulk port, and
  // a lost local path not yet due for a rebuild), else nullptr; `lost_local` says whether
  // the one it has lost its local path.
  ConnPtr ReusableConn(const v1::NodeInfo& node, bool* lost_local)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Candidate nodes for reading (all=false: write owners first then draining ones) or writing.
  std::vector<ConnPtr> Candidates(const Routing& r, const BlockKey& key, bool write);
  // Fetches the map from the controller; adopts it if newer.
  absl::Status RefreshMap();
  void RefreshLoop();

  // The leading run of `keys` whose owners answer without a round trip: from a shared-memory
  // block directory (owner on this host) or a key mirror (ClientOptions::mirror_remote_keys).
  // `*done`: the run ends at a miss (or the end), so it is the whole answer; otherwise the key
  // after it has an owner that must be asked.
  size_t MatchWithoutRoundTrips(const Routing& r, absl::Span<const BlockKey> keys, bool* done);
  // One round of BatchGet through a node's shared-memory channel for items `idx`.
  static void GetLocal(LocalChannel* local, absl::Span<const GetItem> items,
                       const std::vector<size_t>& idx, std::vector<absl::StatusOr<size_t>>& results,
                       std::vector<Outcome>& outcomes);

  // Standalone: the node's bulk port, from its Health.
  absl::StatusOr<int> ProbeBulkPort() const;
  // Standalone: the one node's connection, its bulk channel at `bulk_port`.
  ConnPtr SingleConn(int bulk_port, bool replaces_lost_local) const;
  // Standalone, after a call failed in transport or the local path was lost: the node may
  // have restarted on another bulk port (--bulk_port=0 picks a free one at each start) or
  // with a new arena. Asks its Health again, at most once a second, and connects anew if the
  // port moved or the local path is lost; a client would otherwise fail every call, or send
  // every call over the network.
  void RecheckSingle();
  // `*unreachable`: some owner asked failed in transport (its keys counted as missing).
  absl::StatusOr<size_t> MatchPrefixOnce(absl::Span<const BlockKey> keys, bool* unreachable);
  // How many leading `keys` some node that may hold them (ReadOwners: the owners, then
  // DRAINING nodes that owned them before) still has: one Exists round to every such node.
  // Unreachable nodes count as not holding.
  size_t LeadingHeldByAnyReadOwner(const Routing& r, absl::Span<const BlockKey> keys);
  // Which `keys` some node that may hold them (ReadOwners) has: one Exists round to every
  // such node. `*error`: the first failure, other than a cluster node that could not be
  // reached (it counts as not holding).
  std::vector<bool> HeldByAnyReadOwner(const Routing& r, absl::Span<const BlockKey> keys,
                                       absl::Status* error);
  // Every node that may hold one of `keys` (its ReadOwners), with the indices of those keys:
  // Remove and LeadingHeldByAnyReadOwner ask each node once for all of its keys.
  std::vector<std::pair<ConnPtr, std::vector<size_t>>> ByEveryReadOwner(
      const Routing& r, absl::Span<const BlockKey> keys);

  const ClientOptions options_;
  const bool cluster_;
  std::unique_ptr<v1::Membership::Stub> membership_;
  std::string hostname_;

  mutable absl::Mutex mu_;
  Routing routing_ ABSL_GUARDED_BY(mu_);
  absl::Time single_recheck_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
  absl::flat_hash_map<std::string, ConnPtr> conns_ ABSL_GUARDED_BY(mu_);  // by node id
  // Nodes a call is connecting to right now (Conn builds connections without the lock).
  absl::flat_hash_set<std::string> connecting_ ABSL_GUARDED_BY(mu_);

  struct Counters {
    std::atomic<uint64_t> get_timeouts{0}, put_drops{0}, map_refreshes{0}, retries{0},
        lookups_without_round_trip{0};
  } counters_;  // relaxed: statistics only

  absl::Notification stop_;
  std::thread refresher_;
};

}  // namespace ems::client::internal

#endif  // EMS_CLIENT_INTERNAL_CLIENT_IMPL_H_
