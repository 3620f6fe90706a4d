// RAII handles: each wraps a lease that the pool ends when the handle goes away.
#include "pool/pool.h"

namespace ems::pool {

ReadHandle::ReadHandle(ReadHandle&& other) noexcept
    : pool_(other.pool_), lease_(other.lease_), data_(other.data_), info_(other.info_) {
  other.pool_ = nullptr;
}

ReadHandle& ReadHandle::operator=(ReadHandle&& other) noexcept {
  if (this != &other) {
    Reset();
    pool_ = other.pool_;
    lease_ = other.lease_;
    data_ = other.data_;
    info_ = other.info_;
    other.pool_ = nullptr;
  }
  return *this;
}

ReadHandle::~ReadHandle() { Reset(); }

void ReadHandle::Reset() {
  if (pool_ != nullptr) pool_->Release(lease_).IgnoreError();  // cannot fail for a live handle
  pool_ = nullptr;
}

WriteHandle::WriteHandle(WriteHandle&& other) noexcept
    : pool_(other.pool_), lease_(other.lease_), data_(other.data_), info_(other.info_) {
  other.pool_ = nullptr;
}

WriteHandle& WriteHandle::operator=(WriteHandle&& other) noexcept {
  if (this != &other) {
    Reset();
    pool_ = other.pool_;
    lease_ = other.lease_;
    data_ = other.data_;
    info_ = other.info_;
    other.pool_ = nullptr;
  }
  return *this;
}

WriteHandle::~WriteHandle() { Reset(); }

void WriteHandle::Reset() {
  if (pool_ != nullptr) pool_->Release(lease_).IgnoreError();  // frees the unsealed block
  pool_ = nullptr;
}

}  // namespace ems::pool
