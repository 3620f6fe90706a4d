#include "pool/internal/allocator.h"

#include <bit>

#include "common/check.h"

namespace ems::pool::internal {

Allocator::Allocator(uint64_t capacity, uint64_t granule)
    : capacity_(capacity), granule_(granule), granule_shift_(std::countr_zero(granule)) {
  EMS_CHECK(std::has_single_bit(granule), "granule must be a power of two");
  EMS_CHECK(capacity > 0 && capacity % granule == 0, "capacity must be a multiple of granule");
  Chunk* all = NewRecord();
  all->offset = 0;
  all->size = capacity;
  InsertFree(all);
}

Allocator::~Allocator() = default;

// Size classes in granule units: below 32 units each size is its own class (fl 0); above,
// each power of two splits into 32 classes.
void Allocator::Mapping(uint64_t units, int* fl, int* sl) {
  if (units < static_cast<uint64_t>(kSlCount)) {
    *fl = 0;
    *sl = static_cast<int>(units);
    return;
  }
  const int msb = 63 - std::countl_zero(units);
  *sl = static_cast<int>((units >> (msb - kSlLog2)) ^ (1ull << kSlLog2));
  *fl = msb - kSlLog2 + 1;
}

Chunk* Allocator::FindSuitable(int* fl, int* sl) const {
  uint32_t sl_map = sl_bitmap_[*fl] & (~0u << *sl);
  if (sl_map == 0) {
    const uint64_t fl_map = *fl + 1 < 64 ? fl_bitmap_ & (~0ull << (*fl + 1)) : 0;
    if (fl_map == 0) return nullptr;
    *fl = std::countr_zero(fl_map);
    sl_map = sl_bitmap_[*fl];
  }
  *sl = std::countr_zero(sl_map);
  return heads_[*fl][*sl];
}

Chunk* Allocator::FindInOwnClass(uint64_t size) const {
  int fl, sl;
  Mapping(size >> granule_shift_, &fl, &sl);
  if (fl >= kFlCount) return nullptr;
  // Bounded, so a class crowded with chunks just too small keeps allocation O(1); a fitting
  // chunk past the bound only costs an eviction, as before.
  int walked = 0;
  for (Chunk* c = heads_[fl][sl]; c != nullptr && walked < kOwnClassWalk; c = c->next_free) {
    if (c->size >= size) return c;
    ++walked;
  }
  return nullptr;
}

void Allocator::InsertFree(Chunk* c) {
  int fl, sl;
  Mapping(c->size >> granule_shift_, &fl, &sl);
  c->free = true;
  c->prev_free = nullptr;
  c->next_free = heads_[fl][sl];
  if (c->next_free) c->next_free->prev_free = c;
  heads_[fl][sl] = c;
  fl_bitmap_ |= 1ull << fl;
  sl_bitmap_[fl] |= 1u << sl;
}

void Allocator::RemoveFree(Chunk* c) {
  int fl, sl;
  Mapping(c->size >> granule_shift_, &fl, &sl);
  if (c->prev_free) c->prev_free->next_free = c->next_free;
  if (c->next_free) c->next_free->prev_free = c->prev_free;
  if (heads_[fl][sl] == c) {
    heads_[fl][sl] = c->next_free;
    if (heads_[fl][sl] == nullptr) {
      sl_bitmap_[fl] &= ~(1u << sl);
      if (sl_bitmap_[fl] == 0) fl_bitmap_ &= ~(1ull << fl);
    }
  }
  c->free = false;
  c->prev_free = c->next_free = nullptr;
}

Chunk* Allocator::Allocate(uint64_t bytes) {
  if (bytes == 0 || bytes > capacity_) return nullptr;
  const uint64_t size = RoundUp(bytes);
  uint64_t units = size >> granule_shift_;
  // Round the request up to the next class boundary so any chunk in the class found fits
  // (TLSF's "good fit": no list walk).
  if (units >= static_cast<uint64_t>(kSlCount)) {
    const int msb = 63 - std::countl_zero(units);
    units += (1ull << (msb - kSlLog2)) - 1;
  }
  int fl, sl;
  Mapping(units, &fl, &sl);
  Chunk* c = fl < kFlCount ? FindSuitable(&fl, &sl) : nullptr;
  // The rounding skips the request's own class, whose chunks may be smaller than the request,
  // but also those that fit: a hole left by a block of this very size. Every block of a cache
  // of equal-size blocks lands in one class, so without this walk a pool full of them evicted
  // two neighbours to serve a put that fitted the hole the first eviction left, and a pool of
  // pins with such a hole answered RESOURCE_EXHAUSTED. Walked only when the good fit failed.
  if (c == nullptr) c = FindInOwnClass(size);
  if (c == nullptr) return nullptr;
  RemoveFree(c);
  if (c->size > size) {  // split off the tail as a new free chunk
    Chunk* rest = NewRecord();
    rest->offset = c->offset + size;
    rest->size = c->size - size;
    rest->prev_phys = c;
    rest->next_phys = c->next_phys;
    if (rest->next_phys) rest->next_phys->prev_phys = rest;
    c->next_phys = rest;
    c->size = size;
    InsertFree(rest);
  }
  used_ += c->size;
  return c;
}

void Allocator::Free(Chunk* c) {
  EMS_DCHECK(!c->free, "double free");
  used_ -= c->size;
  if (Chunk* prev = c->prev_phys; prev != nullptr && prev->free) {
    RemoveFree(prev);
    prev->size += c->size;
    prev->next_phys = c->next_phys;
    if (prev->next_phys) prev->next_phys->prev_phys = prev;
    DeleteRecord(c);
    c = prev;
  }
  if (Chunk* next = c->next_phys; next != nullptr && next->free) {
    RemoveFree(next);
    c->size += next->size;
    c->next_phys = next->next_phys;
    if (c->next_phys) c->next_phys->prev_phys = c;
    DeleteRecord(next);
  }
  InsertFree(c);
}

uint64_t Allocator::LargestFree() const {
  if (fl_bitmap_ == 0) return 0;
  const int fl = 63 - std::countl_zero(fl_bitmap_);
  const int sl = 31 - std::countl_zero(sl_bitmap_[fl]);
  uint64_t best = 0;
  for (const Chunk* c = heads_[fl][sl]; c != nullptr; c = c->next_free) {
    best = std::max(best, c->size);
  }
  return best;
}

Chunk* Allocator::NewRecord() {
  if (spare_records_ == nullptr) {
    auto slab = std::make_unique<Chunk[]>(kSlabChunks);
    for (size_t i = 0; i < kSlabChunks; ++i) {
      slab[i].next_free = spare_records_;
      spare_records_ = &slab[i];
    }
    record_slabs_.push_back(std::move(slab));
  }
  Chunk* c = spare_records_;
  spare_records_ = c->next_free;
  *c = Chunk();
  return c;
}

void Allocator::DeleteRecord(Chunk* c) {
  c->next_free = spare_records_;
  spare_records_ = c;
}

}  // namespace ems::pool::internal
