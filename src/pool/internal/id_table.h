// Slots for block ids, shared by a prefix policy and its shadows (prefix_policy.h): each keeps
// its own state per slot, and one hash map finds the slot of an id for all of them. A use of a
// block is then one cache miss in the map instead of one per policy, and an id the policies
// all forgot is erased from it once.
#ifndef EMS_POOL_INTERNAL_ID_TABLE_H_
#define EMS_POOL_INTERNAL_ID_TABLE_H_

#include <cstdint>
#include <vector>

#include "absl/container/flat_hash_map.h"

namespace ems::pool::internal {

// Not thread-safe: the policies sharing it run under one lock (EvictionPolicy).
class IdTable {
 public:
  using Slot = uint32_t;
  static constexpr Slot kNone = UINT32_MAX;

  Slot Find(uint64_t id) const {
    auto it = slot_of_.find(id);
    return it == slot_of_.end() ? kNone : it->second;
  }
  void Prefetch(uint64_t id) const { slot_of_.prefetch(id); }

  // The slot of `id`, made if the id has none, with one more holder.
  Slot Acquire(uint64_t id) {
    auto [it, added] = slot_of_.try_emplace(id, kNone);
    if (added) {
      if (free_.empty()) {
        it->second = static_cast<Slot>(holders_.size());
        holders_.push_back(0);
      } else {
        it->second = free_.back();  // its count was just touched by its release
        free_.pop_back();
      }
    }
    ++holders_[it->second];
    return it->second;
  }

  // One holder of `s`, the slot of `id`, less; the last one's release forgets the id and frees
  // the slot. (The holders know the id: keeping it here too would be one more cache miss.)
  void Release(Slot s, uint64_t id) {
    if (--holders_[s] > 0) return;
    slot_of_.erase(id);
    free_.push_back(s);
  }
  // Fetches what Release(s, id) will touch.
  void PrefetchRelease(Slot s, uint64_t id) const {
    __builtin_prefetch(&holders_[s]);
    slot_of_.prefetch(id);
  }

  // Slots ever made: every slot a policy is given is below it.
  size_t capacity() const { return holders_.size(); }

 private:
  absl::flat_hash_map<uint64_t, Slot> slot_of_;
  std::vector<uint32_t> holders_;  // by slot
  std::vector<Slot> free_;
};

}  // namespace ems::pool::internal

#endif  // EMS_POOL_INTERNAL_ID_TABLE_H_
