#include "replay/simulate.h"

#include <algorithm>

#include "common/status_macros.h"

namespace ems::bench {

absl::StatusOr<CacheSim> CacheSim::Create(const std::string& policy, size_t capacity_blocks) {
  EMS_ASSIGN_OR_RETURN(auto p, pool::MakeEvictionPolicy(policy));
  return CacheSim(std::move(p), capacity_blocks);
}

size_t CacheSim::LeadingHits(const Request& req, size_t* present_blocks) const {
  size_t leading = 0, present = 0;
  bool run = true;
  for (uint64_t raw : req.hash_ids) {
    const bool hit = present_.contains(raw + 1);
    present += hit;
    run = run && hit;
    leading += run;
  }
  if (present_blocks != nullptr) *present_blocks = present;
  return leading;
}

void CacheSim::Admit(const Request& req) {
  auto always = [](uint64_t) { return true; };
  uint64_t parent = 0;
  for (uint64_t raw : req.hash_ids) {
    const uint64_t id = raw + 1;
    if (present_.contains(id)) {
      policy_->OnAccess(id);
    } else {
      policy_->OnInsert(id, parent);
      present_.insert(id);
      while (capacity_ > 0 && present_.size() > capacity_) {
        auto victim = policy_->Evict(always);
        if (!victim) break;
        present_.erase(*victim);
      }
    }
    parent = id;
  }
}

absl::StatusOr<SimResult> Simulate(const std::vector<Request>& requests, const std::string& policy,
                                   size_t capacity_blocks, int block_tokens) {
  EMS_ASSIGN_OR_RETURN(CacheSim cache, CacheSim::Create(policy, capacity_blocks));
  SimResult r;
  r.policy = policy;
  r.capacity_blocks = capacity_blocks;
  uint64_t block_hits = 0, prefix_hits = 0, token_hits = 0, tokens = 0;
  for (const Request& req : requests) {
    size_t present = 0;
    const size_t leading = cache.LeadingHits(req, &present);
    block_hits += present;
    prefix_hits += leading;
    token_hits += std::min<int64_t>(static_cast<int64_t>(leading) * block_tokens, req.input_length);
    tokens += req.input_length;
    r.blocks += req.hash_ids.size();
    ++r.requests;
    cache.Admit(req);
  }
  const double blocks = std::max<uint64_t>(1, r.blocks);
  r.per_block_hit_ratio = block_hits / blocks;
  r.prefix_hit_ratio = prefix_hits / blocks;
  r.token_prefix_hit_ratio = static_cast<double>(token_hits) / std::max<uint64_t>(1, tokens);
  return r;
}

}  // namespace ems::bench
