// Offline replay: the pool's own eviction policies (pool/eviction_policy.h) driven by a
// request stream at a capacity in blocks.
#ifndef EMS_BENCH_REPLAY_SIMULATE_H_
#define EMS_BENCH_REPLAY_SIMULATE_H_

#include <memory>
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

 private:
  CacheSim(std::unique_ptr<pool::EvictionPolicy> policy, size_t capacity)
      : policy_(std::move(policy)), capacity_(capacity) {}
  std::unique_ptr<pool::EvictionPolicy> policy_;
  size_t capacity_;
  absl::flat_hash_set<uint64_t> present_;  // policy ids (hash id + 1: ids must not be 0)
};

// The offline bound: Belady's MIN, which evicts the block needed furthest in the future. Only
// `Simulate` knows it (it reads the whole trace); the pool cannot run it.
inline constexpr char kBeladyPolicy[] = "belady";

// Replays `requests` in order: a request's hits are counted when it arrives; then its blocks
// are inserted (parent = the previous block of the request) or touched, evicting down to
// `capacity_blocks` (0 = unbounded). `policy` is a pool policy or kBeladyPolicy.
// INVALID_ARGUMENT for an unknown policy.
absl::StatusOr<SimResult> Simulate(const std::vector<Request>& requests, const std::string& policy,
                                   size_t capacity_blocks, int block_tokens);

}  // namespace ems::bench

#endif  // EMS_BENCH_REPLAY_SIMULATE_H_
