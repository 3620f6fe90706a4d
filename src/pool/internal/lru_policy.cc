#include "pool/internal/lru_policy.h"

#include <algorithm>

namespace ems::pool::internal {

void LruPolicy::OnInsert(uint64_t id, uint64_t) {
  auto it = index_.find(id);
  if (it != index_.end()) {
    order_.splice(order_.begin(), order_, it->second);
    return;
  }
  order_.push_front(id);
  index_.emplace(id, order_.begin());
}

void LruPolicy::OnAccess(uint64_t id) {
  auto it = index_.find(id);
  if (it != index_.end()) order_.splice(order_.begin(), order_, it->second);
}

void LruPolicy::OnErase(uint64_t id) {
  auto it = index_.find(id);
  if (it == index_.end()) return;
  order_.erase(it->second);
  index_.erase(it);
}

std::optional<uint64_t> LruPolicy::Evict(absl::FunctionRef<bool(uint64_t)> can_evict) {
  // Skipped (pinned) blocks move to the recent end, so one full pass sees each block once.
  const size_t budget = index_.size();
  for (size_t looked = 0; looked < budget && !order_.empty(); ++looked) {
    const uint64_t id = order_.back();
    if (can_evict(id)) {
      order_.pop_back();
      index_.erase(id);
      return id;
    }
    order_.splice(order_.begin(), order_, std::prev(order_.end()));
    if (looked + 1 >= index_.size()) break;  // every block has been looked at once
  }
  return std::nullopt;
}

}  // namespace ems::pool::internal
