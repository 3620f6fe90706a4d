// RAII handles: each wraps a lease that the pool ends when the handle goes away.
#include <utility>

#include "pool/pool.h"

namespace ems::pool::internal {

LeaseHolder::LeaseHolder(LeaseHolder&& other) noexcept
    : pool_(std::exchange(other.pool_, nullptr)), lease_(other.lease_), info_(other.info_) {}

LeaseHolder& LeaseHolder::operator=(LeaseHolder&& other) noexcept {
  if (this != &other) {
    Reset();
    pool_ = std::exchange(other.pool_, nullptr);
    lease_ = other.lease_;
    info_ = other.info_;
  }
  return *this;
}

LeaseHolder::~LeaseHolder() { Reset(); }

void LeaseHolder::Reset() {
  // Release cannot fail for a live handle: its lease has no deadline.
  if (pool_ != nullptr) pool_->Release(lease_).IgnoreError();
  pool_ = nullptr;
}

}  // namespace ems::pool::internal
