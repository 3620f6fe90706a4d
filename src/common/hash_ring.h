// Consistent-hash ring with capacity-weighted virtual nodes: where a block lives.
#ifndef EMS_COMMON_HASH_RING_H_
#define EMS_COMMON_HASH_RING_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/key.h"

namespace ems {

struct RingNode {
  std::string id;         // unique, non-empty
  uint64_t capacity = 1;  // any unit (bytes); weights the node's share of the ring
  std::string zone;       // optional failure domain
};

// Immutable once built; thread-safe for concurrent readers. Building is deterministic: the same
// nodes (in any order) and vnode count give the same ring in every process.
class HashRing {
 public:
  // The default spreads 1M keys over 3..64 equal nodes within 10% of the mean (hash_ring_test).
  static constexpr int kDefaultVnodes = 2048;

  // INVALID_ARGUMENT for an empty or duplicate id, zero capacity, or vnodes_per_node < 1.
  // An empty node list builds an empty ring (every lookup answers -1).
  static absl::StatusOr<HashRing> Build(std::vector<RingNode> nodes,
                                        int vnodes_per_node = kDefaultVnodes);

  // A key's position on the ring: XXH3-64 of the digest seeded with the namespace's hash.
  static uint64_t Position(const BlockKey& key);
  static uint64_t Position(uint64_t ns_seed, const Digest& digest);
  static uint64_t NamespaceSeed(absl::string_view ns);

  // Index into nodes() of the node owning `position`, or -1 if the ring is empty.
  int Owner(uint64_t position) const;
  // Up to `r` distinct owners in preference order (the owner first). Nodes in zones not yet
  // used are preferred; when zones run out, further nodes are taken in ring order.
  std::vector<int> Owners(uint64_t position, int r) const;

  const std::vector<RingNode>& nodes() const { return nodes_; }
  size_t vnode_count() const { return points_.size(); }

 private:
  struct Point {
    uint64_t position;
    uint32_t node;  // index into nodes_
  };
  HashRing() = default;

  std::vector<RingNode> nodes_;  // sorted by id
  std::vector<Point> points_;    // sorted by position
};

}  // namespace ems

#endif  // EMS_COMMON_HASH_RING_H_
