// S3-FIFO eviction (Yang et al., SOSP'23): a small probationary FIFO, a main FIFO with
// 2-bit frequencies, and a ghost FIFO of recently evicted ids.
#ifndef EMS_POOL_INTERNAL_S3FIFO_POLICY_H_
#define EMS_POOL_INTERNAL_S3FIFO_POLICY_H_

#include <deque>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "pool/eviction_policy.h"

namespace ems::pool::internal {

// Not thread-safe (see EvictionPolicy). Queues hold ids; entries of erased ids are dropped
// lazily when they reach a queue's tail.
class S3FifoPolicy final : public EvictionPolicy {
 public:
  absl::string_view name() const override { return "s3fifo"; }
  void OnInsert(uint64_t id, uint64_t parent) override;
  void OnAccess(uint64_t id) override;
  void OnErase(uint64_t id) override;
  std::optional<uint64_t> Evict(absl::FunctionRef<bool(uint64_t)> can_evict) override;
  size_t size() const override { return entries_.size(); }

 private:
  enum class Queue : uint8_t { kSmall, kMain };
  struct Entry {
    Queue queue;
    uint8_t freq = 0;     // 0..3
    uint32_t gen = 0;     // matches the queue slot that is current for this id
  };
  struct Slot {
    uint64_t id;
    uint32_t gen;
  };

  void Push(Queue q, uint64_t id, Entry& e);
  void RememberGhost(uint64_t id);
  // Pops the tail of `q`, skipping stale slots; false if the queue is empty.
  bool PopLive(std::deque<Slot>& q, uint64_t* id);

  absl::flat_hash_map<uint64_t, Entry> entries_;
  std::deque<Slot> small_, main_;
  size_t small_live_ = 0, main_live_ = 0;
  std::deque<uint64_t> ghost_order_;
  absl::flat_hash_set<uint64_t> ghost_;
  uint32_t next_gen_ = 1;
};

}  // namespace ems::pool::internal

#endif  // EMS_POOL_INTERNAL_S3FIFO_POLICY_H_
