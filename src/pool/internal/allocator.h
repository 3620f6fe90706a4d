// TLSF (two-level segregated fit) allocator over arena offsets: O(1) allocate and free, good
// fit on mixed sizes. All metadata lives off the arena, so the arena's pages hold only values.
#ifndef EMS_POOL_INTERNAL_ALLOCATOR_H_
#define EMS_POOL_INTERNAL_ALLOCATOR_H_

#include <array>
#include <cstdint>
#include <memory>
#include <vector>

namespace ems::pool::internal {

// A run of granules, free or in use. Physical neighbours are linked for O(1) coalescing.
struct Chunk {
  uint64_t offset = 0;  // bytes from the arena base
  uint64_t size = 0;    // bytes, a multiple of the granule
  Chunk* prev_phys = nullptr;
  Chunk* next_phys = nullptr;
  Chunk* prev_free = nullptr;  // free-list links, valid while free
  Chunk* next_free = nullptr;
  bool free = false;
};

// Not thread-safe: the pool serializes calls.
class Allocator {
 public:
  // Manages [0, capacity) in units of `granule` bytes (a power of two).
  // REQUIRES: capacity is a positive multiple of granule.
  Allocator(uint64_t capacity, uint64_t granule);
  ~Allocator();
  Allocator(const Allocator&) = delete;
  Allocator& operator=(const Allocator&) = delete;

  // A chunk of at least `bytes` (rounded up to the granule), or nullptr if no free run fits.
  Chunk* Allocate(uint64_t bytes);
  // REQUIRES: `chunk` came from Allocate and was not freed since.
  void Free(Chunk* chunk);

  uint64_t capacity() const { return capacity_; }
  uint64_t granule() const { return granule_; }
  uint64_t used_bytes() const { return used_; }
  uint64_t free_bytes() const { return capacity_ - used_; }
  // Largest free run; O(number of free chunks in the top size class).
  uint64_t LargestFree() const;
  // Bytes of chunk records (the allocator's metadata).
  uint64_t metadata_bytes() const { return record_slabs_.size() * kSlabChunks * sizeof(Chunk); }
  uint64_t RoundUp(uint64_t bytes) const { return (bytes + granule_ - 1) & ~(granule_ - 1); }

 private:
  static constexpr int kSlLog2 = 5;  // 32 second-level classes per power of two
  static constexpr int kSlCount = 1 << kSlLog2;
  static constexpr int kFlCount = 64 - kSlLog2;
  static constexpr size_t kSlabChunks = 1024;
  static constexpr int kOwnClassWalk = 64;  // chunks FindInOwnClass looks at, at most

  static void Mapping(uint64_t units, int* fl, int* sl);
  Chunk* FindSuitable(int* fl, int* sl) const;
  // A free chunk of at least `size` bytes (a granule multiple) from the class `size` itself
  // maps to, which the good-fit search skips; nullptr if none there fits.
  Chunk* FindInOwnClass(uint64_t size) const;
  void InsertFree(Chunk* c);
  void RemoveFree(Chunk* c);
  Chunk* NewRecord();
  void DeleteRecord(Chunk* c);

  const uint64_t capacity_;
  const uint64_t granule_;
  const int granule_shift_;
  uint64_t used_ = 0;
  uint64_t fl_bitmap_ = 0;
  std::array<uint32_t, kFlCount> sl_bitmap_{};
  std::array<std::array<Chunk*, kSlCount>, kFlCount> heads_{};
  // Chunk records come from slabs and a free list, so steady-state alloc/free never mallocs.
  std::vector<std::unique_ptr<Chunk[]>> record_slabs_;
  Chunk* spare_records_ = nullptr;  // linked through next_free
};

}  // namespace ems::pool::internal

#endif  // EMS_POOL_INTERNAL_ALLOCATOR_H_
