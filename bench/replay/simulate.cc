#include "replay/simulate.h"

#include <algorithm>

#include "absl/container/flat_hash_set.h"
#include "common/status_macros.h"
#include "pool/eviction_policy.h"

namespace ems::bench {

absl::StatusOr<SimResult> Simulate(const std::vector<Request>& requests, const std::string& policy,
                                   size_t capacity_blocks, int block_tokens) {
  EMS_ASSIGN_OR_RETURN(auto cache, pool::MakeEvictionPolicy(policy));
  absl::flat_hash_set<uint64_t> present;
  SimResult r;
  r.policy = policy;
  r.capacity_blocks = capacity_blocks;
  uint64_t block_hits = 0, prefix_hits = 0, token_hits = 0, tokens = 0;
  auto always = [](uint64_t) { return true; };
  for (const Request& req : requests) {
    size_t leading = 0;
    bool run = true;
    for (uint64_t raw : req.hash_ids) {
      const bool hit = present.contains(raw + 1);  // policy ids must not be 0
      block_hits += hit;
      run = run && hit;
      leading += run;
    }
    prefix_hits += leading;
    token_hits += std::min<int64_t>(static_cast<int64_t>(leading) * block_tokens, req.input_length);
    tokens += req.input_length;
    r.blocks += req.hash_ids.size();
    ++r.requests;

    uint64_t parent = 0;
    for (uint64_t raw : req.hash_ids) {
      const uint64_t id = raw + 1;
      if (present.contains(id)) {
        cache->OnAccess(id);
      } else {
        cache->OnInsert(id, parent);
        present.insert(id);
        while (capacity_blocks > 0 && present.size() > capacity_blocks) {
          auto victim = cache->Evict(always);
          if (!victim) break;
          present.erase(*victim);
        }
      }
      parent = id;
    }
  }
  const double blocks = std::max<uint64_t>(1, r.blocks);
  r.per_block_hit_ratio = block_hits / blocks;
  r.prefix_hit_ratio = prefix_hits / blocks;
  r.token_prefix_hit_ratio = static_cast<double>(token_hits) / std::max<uint64_t>(1, tokens);
  return r;
}

}  // namespace ems::bench
