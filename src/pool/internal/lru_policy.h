// Least-recently-used eviction.
#ifndef EMS_POOL_INTERNAL_LRU_POLICY_H_
#define EMS_POOL_INTERNAL_LRU_POLICY_H_

#include <list>

#include "absl/container/flat_hash_map.h"
#include "pool/eviction_policy.h"

namespace ems::pool::internal {

// Not thread-safe (see EvictionPolicy).
class LruPolicy final : public EvictionPolicy {
 public:
  absl::string_view name() const override { return "lru"; }
  void OnInsert(uint64_t id, uint64_t parent) override;
  void OnAccess(uint64_t id) override;
  void OnErase(uint64_t id) override;
  // Walks from the least recent end; a block it cannot evict (pinned) is moved to the recent
  // end, as it is in use. Looks at each block at most once per call.
  std::optional<uint64_t> Evict(absl::FunctionRef<bool(uint64_t)> can_evict) override;
  size_t size() const override { return index_.size(); }

 private:
  std::list<uint64_t> order_;  // front = most recent
  absl::flat_hash_map<uint64_t, std::list<uint64_t>::iterator> index_;
};

}  // namespace ems::pool::internal

#endif  // EMS_POOL_INTERNAL_LRU_POLICY_H_
