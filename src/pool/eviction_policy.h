// Eviction policies behind one interface, shared by the pool and by `ems-bench replay
// --simulate` (the simulator runs this code, not a copy).
#ifndef EMS_POOL_EVICTION_POLICY_H_
#define EMS_POOL_EVICTION_POLICY_H_

#include <cstdint>
#include <memory>
#include <optional>

#include "absl/functional/function_ref.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace ems::pool {

// Tracks block ids (opaque, never 0) and picks victims. Not thread-safe: the owner locks.
class EvictionPolicy {
 public:
  virtual ~EvictionPolicy() = default;
  virtual absl::string_view name() const = 0;

  // A new block; `parent` is the previous block of its prefix chain, 0 if none or unknown.
  virtual void OnInsert(uint64_t id, uint64_t parent) = 0;
  // A hit on a tracked block.
  virtual void OnAccess(uint64_t id) = 0;
  // The owner removed a tracked block (not through Evict). An id not tracked is ignored.
  virtual void OnErase(uint64_t id) = 0;
  // Chooses a tracked block for which `can_evict(id)` is true, stops tracking it and returns
  // it. Blocks it skips stay tracked. Returns nullopt when no evictable block is found within
  // a bounded scan (e.g. everything pinned): never loops forever.
  virtual std::optional<uint64_t> Evict(absl::FunctionRef<bool(uint64_t)> can_evict) = 0;
  // Number of tracked blocks.
  virtual size_t size() const = 0;
};

// "lru", "s3fifo" or "prefix"; INVALID_ARGUMENT naming the policy otherwise.
absl::StatusOr<std::unique_ptr<EvictionPolicy>> MakeEvictionPolicy(absl::string_view name);

}  // namespace ems::pool

#endif  // EMS_POOL_EVICTION_POLICY_H_
