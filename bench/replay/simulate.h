// Offline replay: the pool's own eviction policies (pool/eviction_policy.h) driven by a
// request stream at a capacity in blocks.
#ifndef EMS_BENCH_REPLAY_SIMULATE_H_
#define EMS_BENCH_REPLAY_SIMULATE_H_

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/status/statusor.h"
#include "pool/eviction_policy.h"
#include "replay/trace.h"

namespace ems::bench {

// Hit ratios of one case. For request r with blocks b_0..b_{n-1}:
//   per-block hits: blocks present when r arrives, wherever they are;
//   prefix hits:    the leading run b_0..b_{k-1} of present blocks (what an engine can use);
//   token hits:     min(k × block_tokens, input_length).
// Each ratio divides by the matching total (blocks, blocks, input tokens) over all requests.
struct SimResult {
  std::string policy;
  size_t capacity_blocks = 0;
  double per_block_hit_ratio = 0;
  double prefix_hit_ratio = 0;
  double token_prefix_hit_ratio = 0;
  uint64_t requests = 0;
  uint64_t blocks = 0;
};

// One cache of the offline model: the pool's eviction policy over a set of present blocks,
// `capacity_blocks` at most (0 = unbounded). Movable, not thread-safe.
class CacheSim {
 public:
  // INVALID_ARGUMENT for an unknown policy.
  static absl::StatusOr<CacheSim> Create(const std::string& policy, size_t capacity_blocks);

  // Leading run of `req`'s blocks present now; `present_blocks` (optional) gets how many of
  // its blocks are present wherever they are. Changes nothing.
  size_t LeadingHits(const Request& req, size_t* present_blocks = nullptr) const;
  // After the request: its blocks are inserted (parent = the previous block) or touched, in
  // order, evicting down to the capacity.
  void Admit(const Request& req);

  // One block at a time, for a caller that spreads a request over several caches.
  bool Contains(uint64_t hash_id) const { return present_.contains(hash_id + 1); }
  // Touches `hash_id` if present, else inserts it (under `parent` if given: the policy links
  // them only if it tracks the parent too) and evicts down to the capacity.
  void AdmitBlock(uint64_t hash_id, std::optional<uint64_t> parent);

  size_t capacity() const { return capacity_; }  // in blocks; 0 = unbounded

 private:
  CacheSim(std::unique_ptr<pool::EvictionPolicy> policy, size_t capacity)
      : policy_(std::move(policy)), capacity_(capacity) {}
  std::unique_ptr<pool::EvictionPolicy> policy_;
  size_t capacity_;
  absl::flat_hash_set<uint64_t> present_;  // policy ids (hash id + 1: ids must not be 0)
};

// Where blocks live. The pool is one cache per node behind a consistent-hash ring, not one
// cache of the whole capacity: `caches` caches of capacity / caches blocks each (rounded
// down, at least 1), block
// `hash_id` in cache `owner(hash_id)`. A block's parent often lives in another cache, where
// the prefix policy cannot see it, as on the nodes. The default is one cache.
struct Placement {
  int caches = 1;
  std::function<int(uint64_t hash_id)> owner;  // into [0, caches); unused for one cache
};

// The offline bound: Belady's MIN, which evicts the block needed furthest in the future. Only
// `Simulate` knows it (it reads the whole trace); the pool cannot run it.
inline constexpr char kBeladyPolicy[] = "belady";

// OK if Simulate can run `policy` over `caches` caches: a pool policy, or kBeladyPolicy on one
// cache. Otherwise INVALID_ARGUMENT naming the choices, for callers that check every policy
// of a sweep before running the first.
absl::Status CheckSimPolicy(const std::string& policy, int caches);

// Replays `requests` in order: a request's hits are counted when it arrives; then its blocks
// are inserted (parent = the previous block of the request) or touched, evicting down to
// `capacity_blocks` (0 = unbounded), split over `placement`'s caches. `policy` is a pool
// policy or kBeladyPolicy (one cache only). INVALID_ARGUMENT for an unknown policy, a
// placement with fewer than one cache, or Belady over several.
absl::StatusOr<SimResult> Simulate(const std::vector<Request>& requests, const std::string& policy,
                                   size_t capacity_blocks, int block_tokens,
                                   const Placement& placement = {});

}  // namespace ems::bench

#endif  // EMS_BENCH_REPLAY_SIMULATE_H_
