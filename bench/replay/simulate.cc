#include "replay/simulate.h"

#include <algorithm>
#include <limits>
#include <set>
#include <tuple>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "common/status_macros.h"

namespace ems::bench {

namespace {

// The leading run of `req`'s blocks for which `present(id)` holds; `present_blocks` (optional)
// gets how many hold wherever they are.
template <typename Present>
size_t CountHits(const Request& req, Present present, size_t* present_blocks) {
  size_t leading = 0, hits = 0;
  bool run = true;
  for (uint64_t id : req.hash_ids) {
    const bool hit = present(id);
    hits += hit;
    run = run && hit;
    leading += run;
  }
  if (present_blocks != nullptr) *present_blocks = hits;
  return leading;
}

}  // namespace

absl::Status CheckSimPolicy(const std::string& policy, int caches) {
  if (policy == kBeladyPolicy) {
    if (caches == 1) return absl::OkStatus();
    return absl::InvalidArgumentError(absl::StrCat(
        kBeladyPolicy, " is one cache's offline bound: it cannot run over ", caches, " caches"));
  }
  if (auto made = pool::MakeEvictionPolicy(policy); !made.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat(made.status().message(), " (or ", kBeladyPolicy, ", the offline bound)"));
  }
  return absl::OkStatus();
}

absl::StatusOr<CacheSim> CacheSim::Create(const std::string& policy, size_t capacity_blocks) {
  EMS_ASSIGN_OR_RETURN(auto p, pool::MakeEvictionPolicy(policy));
  return CacheSim(std::move(p), capacity_blocks);
}

size_t CacheSim::LeadingHits(const Request& req, size_t* present_blocks) const {
  return CountHits(
      req, [this](uint64_t raw) { return present_.contains(raw + 1); }, present_blocks);
}

void CacheSim::Admit(const Request& req) {
  std::optional<uint64_t> parent;
  for (uint64_t raw : req.hash_ids) {
    AdmitBlock(raw, parent);
    parent = raw;
  }
}

void CacheSim::AdmitBlock(uint64_t hash_id, std::optional<uint64_t> parent) {
  const uint64_t id = hash_id + 1;
  if (present_.contains(id)) {
    policy_->OnAccess(id);
    return;
  }
  policy_->OnInsert(id, parent ? *parent + 1 : 0);
  present_.insert(id);
  auto always = [](uint64_t) { return true; };
  while (capacity_ > 0 && present_.size() > capacity_) {
    auto victim = policy_->Evict(always);
    if (!victim) break;
    present_.erase(*victim);
  }
}

namespace {

// Belady's MIN with the trace's future: on overflow, evict the block whose next request is
// furthest away (or never comes). Any request that holds a block also holds its ancestors
// (chained ids), so a child is never needed before its parent; among blocks needed next by
// the same request the deepest goes first, so a child goes before its parent and no online
// policy can keep more leading runs. (Ties once went to the larger id, which kept a child
// over its parent when ids did not grow along a prompt.) Not a pool policy: it tells how much
// room a policy has.
class BeladySim {
 public:
  BeladySim(const std::vector<Request>& requests, size_t capacity) : capacity_(capacity) {
    for (size_t r = 0; r < requests.size(); ++r) {
      for (uint64_t id : requests[r].hash_ids) {
        auto& uses = uses_[id];
        if (uses.empty() || uses.back() != r) uses.push_back(r);
      }
    }
  }
  size_t LeadingHits(const Request& req, size_t* present_blocks) const {
    return CountHits(
        req, [this](uint64_t id) { return next_use_.contains(id); }, present_blocks);
  }
  // Request `r` was served: its blocks are present, each keyed by its next use after `r`.
  void Admit(const Request& req, size_t r) {
    for (size_t depth = 0; depth < req.hash_ids.size(); ++depth) {
      const uint64_t id = req.hash_ids[depth];
      const std::vector<size_t>& uses = uses_.at(id);  // every id was indexed up front
      const auto next_it = std::upper_bound(uses.begin(), uses.end(), r);
      const Rank rank{next_it == uses.end() ? kNever : *next_it, depth, id};
      if (auto it = next_use_.find(id); it != next_use_.end()) {
        by_next_use_.erase(it->second);
        it->second = rank;
      } else {
        next_use_[id] = rank;
      }
      by_next_use_.insert(rank);
    }
    while (capacity_ > 0 && next_use_.size() > capacity_) {
      auto furthest = std::prev(by_next_use_.end());
      next_use_.erase(std::get<2>(*furthest));
      by_next_use_.erase(furthest);
    }
  }

 private:
  static constexpr size_t kNever = std::numeric_limits<size_t>::max();
  using Rank = std::tuple<size_t, size_t, uint64_t>;  // next request, depth, id: largest goes
  const size_t capacity_;
  absl::flat_hash_map<uint64_t, std::vector<size_t>> uses_;  // id -> requests holding it
  absl::flat_hash_map<uint64_t, Rank> next_use_;             // present id -> its rank
  std::set<Rank> by_next_use_;
};

// Counts one request's hits into `r` and the running totals.
struct Tally {
  void Add(const Request& req, size_t leading, size_t present, int block_tokens) {
    block_hits += present;
    prefix_hits += leading;
    token_hits += std::min<int64_t>(static_cast<int64_t>(leading) * block_tokens, req.input_length);
    tokens += req.input_length;
    blocks += req.hash_ids.size();
    ++requests;
  }
  void Finish(SimResult& r) const {
    r.blocks = blocks;
    r.requests = requests;
    const double all = std::max<uint64_t>(1, blocks);
    r.per_block_hit_ratio = block_hits / all;
    r.prefix_hit_ratio = prefix_hits / all;
    r.token_prefix_hit_ratio = static_cast<double>(token_hits) / std::max<uint64_t>(1, tokens);
  }
  uint64_t block_hits = 0, prefix_hits = 0, token_hits = 0, tokens = 0, blocks = 0, requests = 0;
};

}  // namespace

absl::StatusOr<SimResult> Simulate(const std::vector<Request>& requests, const std::string& policy,
                                   size_t capacity_blocks, int block_tokens,
                                   const Placement& placement) {
  if (placement.caches < 1 || (placement.caches > 1 && !placement.owner)) {
    return absl::InvalidArgumentError(
        "a placement needs at least one cache and, for several, "
        "an owner function");
  }
  EMS_RETURN_IF_ERROR(CheckSimPolicy(policy, placement.caches));
  SimResult r;
  r.policy = policy;
  r.capacity_blocks = capacity_blocks;
  Tally tally;
  if (placement.caches > 1) {
    // Rounded down, but never to 0, which would mean unbounded.
    const size_t each =
        capacity_blocks == 0 ? 0 : std::max<size_t>(1, capacity_blocks / placement.caches);
    std::vector<CacheSim> caches;
    for (int i = 0; i < placement.caches; ++i) {
      EMS_ASSIGN_OR_RETURN(CacheSim c, CacheSim::Create(policy, each));
      caches.push_back(std::move(c));
    }
    auto cache_of = [&](uint64_t id) -> CacheSim& { return caches[placement.owner(id)]; };
    for (const Request& req : requests) {
      size_t present = 0;
      const size_t leading = CountHits(
          req, [&](uint64_t id) { return cache_of(id).Contains(id); }, &present);
      tally.Add(req, leading, present, block_tokens);
      std::optional<uint64_t> parent;
      for (uint64_t id : req.hash_ids) {
        cache_of(id).AdmitBlock(id, parent);  // the parent is linked only in its own cache
        parent = id;
      }
    }
    tally.Finish(r);
    return r;
  }
  if (policy == kBeladyPolicy) {
    BeladySim belady(requests, capacity_blocks);
    for (size_t i = 0; i < requests.size(); ++i) {
      size_t present = 0;
      const size_t leading = belady.LeadingHits(requests[i], &present);
      tally.Add(requests[i], leading, present, block_tokens);
      belady.Admit(requests[i], i);
    }
    tally.Finish(r);
    return r;
  }
  EMS_ASSIGN_OR_RETURN(CacheSim cache, CacheSim::Create(policy, capacity_blocks));
  for (const Request& req : requests) {
    size_t present = 0;
    const size_t leading = cache.LeadingHits(req, &present);
    tally.Add(req, leading, present, block_tokens);
    cache.Admit(req);
  }
  tally.Finish(r);
  return r;
}

}  // namespace ems::bench
