#include "common/hash_ring.h"

#include <xxhash.h>

#include <algorithm>
#include <cmath>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"

namespace ems {
namespace {

uint64_t VnodePosition(const std::string& id, uint32_t i) {
  // Seeding with the replica index keeps each vnode's position a pure function of (id, i).
  return XXH3_64bits_withSeed(id.data(), id.size(), 0x9e3779b97f4a7c15ull * (i + 1));
}

}  // namespace

absl::StatusOr<HashRing> HashRing::Build(std::vector<RingNode> nodes, int vnodes_per_node) {
  if (vnodes_per_node < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("vnodes_per_node must be >= 1, got ", vnodes_per_node));
  }
  absl::flat_hash_set<std::string> seen;
  long double total = 0;
  for (const RingNode& n : nodes) {
    if (n.id.empty()) return absl::InvalidArgumentError("ring node id is empty");
    if (n.capacity == 0) {
      return absl::InvalidArgumentError(absl::StrCat("ring node ", n.id, " has zero capacity"));
    }
    if (!seen.insert(n.id).second) {
      return absl::InvalidArgumentError(absl::StrCat("ring node id ", n.id, " appears twice"));
    }
    total += n.capacity;
  }
  HashRing ring;
  std::sort(nodes.begin(), nodes.end(),
            [](const RingNode& a, const RingNode& b) { return a.id < b.id; });
  ring.nodes_ = std::move(nodes);
  if (ring.nodes_.empty()) return ring;

  const long double mean = total / ring.nodes_.size();
  for (uint32_t n = 0; n < ring.nodes_.size(); ++n) {
    const auto count = static_cast<uint32_t>(std::max<long double>(
        1, std::llround(vnodes_per_node * (ring.nodes_[n].capacity / mean))));
    for (uint32_t i = 0; i < count; ++i) {
      ring.points_.push_back({VnodePosition(ring.nodes_[n].id, i), n});
    }
  }
  // Ties (astronomically rare) are broken by node index so the order is still deterministic.
  std::sort(ring.points_.begin(), ring.points_.end(), [](const Point& a, const Point& b) {
    return a.position != b.position ? a.position < b.position : a.node < b.node;
  });
  return ring;
}

uint64_t HashRing::NamespaceSeed(absl::string_view ns) { return XXH3_64bits(ns.data(), ns.size()); }

uint64_t HashRing::Position(uint64_t ns_seed, const Digest& digest) {
  return XXH3_64bits_withSeed(digest.bytes.data(), digest.bytes.size(), ns_seed);
}

uint64_t HashRing::Position(const BlockKey& key) {
  return Position(NamespaceSeed(key.ns), key.digest);
}

int HashRing::Owner(uint64_t position) const {
  if (points_.empty()) return -1;
  auto it = std::lower_bound(points_.begin(), points_.end(), position,
                             [](const Point& p, uint64_t pos) { return p.position < pos; });
  if (it == points_.end()) it = points_.begin();  // wrap around
  return static_cast<int>(it->node);
}

std::vector<int> HashRing::Owners(uint64_t position, int r) const {
  std::vector<int> out;
  if (points_.empty() || r <= 0) return out;
  const size_t want = std::min<size_t>(r, nodes_.size());
  auto start = std::lower_bound(points_.begin(), points_.end(), position,
                                [](const Point& p, uint64_t pos) { return p.position < pos; });
  const size_t first = start == points_.end() ? 0 : start - points_.begin();

  absl::flat_hash_set<uint32_t> taken;
  absl::flat_hash_set<std::string> zones_used;
  // Pass 0 takes only nodes in unused zones (zone-aware placement); pass 1 fills the rest in
  // ring order. Without zones both passes behave as a plain clockwise walk.
  for (int pass = 0; pass < 2 && out.size() < want; ++pass) {
    for (size_t step = 0; step < points_.size() && out.size() < want; ++step) {
      const uint32_t node = points_[(first + step) % points_.size()].node;
      if (taken.contains(node)) continue;
      const std::string& zone = nodes_[node].zone;
      if (pass == 0 && !zone.empty() && zones_used.contains(zone)) continue;
      taken.insert(node);
      if (!zone.empty()) zones_used.insert(zone);
      out.push_back(static_cast<int>(node));
    }
  }
  return out;
}

}  // namespace ems
