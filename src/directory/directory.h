// ems::directory: a node's index of sealed blocks, published in shared memory so co-located
// clients answer lookups and find blocks to read without asking the node.
//
// Layout: a header, then buckets of kBucketSlots 64-byte slots. A key may live in either of its
// two buckets (two-choice hashing: inserts go to the emptier one, lookups read both; entries
// never move). Each slot is a seqlock: a writer makes `seq` odd, changes the fields, and makes
// it even again; a reader takes `seq`, reads, and keeps what it read only if `seq` has not moved.
// The node unpublishes a block before it frees (and so before anyone can rewrite) its bytes, so
// a reader that copied a block and then sees the same even `seq` copied a whole, unchanged
// block. Every field is an atomic: readers race with the writer by design.
#ifndef EMS_DIRECTORY_DIRECTORY_H_
#define EMS_DIRECTORY_DIRECTORY_H_

#include <atomic>
#include <cstdint>
#include <memory>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "common/key.h"

namespace ems::directory {

inline constexpr uint64_t kMagic = 0x31524944534d45ull;  // "EMSDIR1"
inline constexpr uint32_t kBucketSlots = 8;

struct alignas(64) Slot {
  std::atomic<uint64_t> seq{0};      // odd while a writer changes the slot
  std::atomic<uint64_t> ns_hash{0};  // NamespaceHash of the key's namespace; 0 = empty slot
  std::atomic<uint64_t> digest_hi{0}, digest_lo{0};
  std::atomic<uint64_t> offset{0}, size{0}, checksum{0};
  uint64_t reserved = 0;
};
static_assert(sizeof(Slot) == 64 && std::atomic<uint64_t>::is_always_lock_free);

struct alignas(64) Header {
  uint64_t magic = kMagic;
  uint64_t buckets = 0;  // a power of two
  // Sealed blocks the directory could not hold (both buckets full). While non-zero, a key
  // absent from the directory may still be on the node: readers must ask the node.
  std::atomic<uint64_t> unpublished{0};
};
static_assert(sizeof(Header) == 64);

// The key's namespace as the directory stores it (XXH3-64, never 0).
uint64_t NamespaceHash(absl::string_view ns);

// Bytes of a directory sized for an arena of `arena_bytes` (one slot per 4 KiB block at most
// 75% full, capped at 64 MiB of slots; blocks beyond that are counted in Header::unpublished).
uint64_t DirectoryBytes(uint64_t arena_bytes);

// Where a published block lives, and the slot state that vouches for it.
struct Hit {
  uint64_t offset = 0;
  uint64_t size = 0;
  uint64_t checksum = 0;
  const Slot* slot = nullptr;
  uint64_t seq = 0;
};

// The node's side: owns the memfd and the only writable mapping. Thread-safe (writers are
// serialized by mu_; they run at seal and eviction, never on a read).
class Writer {
 public:
  // A zeroed shared-memory memfd of DirectoryBytes(arena_bytes).
  static absl::StatusOr<std::unique_ptr<Writer>> Create(uint64_t arena_bytes);
  ~Writer();
  Writer(const Writer&) = delete;
  Writer& operator=(const Writer&) = delete;

  // Makes the block findable. False if both of its buckets are full (then counted as
  // unpublished until Unpublish). REQUIRES: the key is not published.
  bool Publish(uint64_t ns_hash, const Digest& digest, uint64_t offset, uint64_t size,
               uint64_t checksum);
  // Removes the block; `published` is what Publish returned for it.
  void Unpublish(uint64_t ns_hash, const Digest& digest, bool published);

  int fd() const { return fd_; }
  uint64_t bytes() const { return bytes_; }

 private:
  Writer(int fd, uint8_t* base, uint64_t bytes);

  const int fd_;
  uint8_t* const base_;
  const uint64_t bytes_;
  Header* const header_;
  Slot* const slots_;

  absl::Mutex mu_;
  std::unique_ptr<uint8_t[]> used_ ABSL_GUARDED_BY(mu_);  // occupied slots per bucket
};

// A client's read-only view of a node's directory. Thread-safe; lock-free.
class Reader {
 public:
  // Maps `bytes` of `fd` read-only; INVALID_ARGUMENT if the header does not describe a
  // directory of that size. Does not take ownership of `fd`.
  static absl::StatusOr<std::unique_ptr<Reader>> Map(int fd, uint64_t bytes);
  ~Reader();
  Reader(const Reader&) = delete;
  Reader& operator=(const Reader&) = delete;

  // The block's place if `key` is published now. False if it is absent or being changed.
  bool Find(uint64_t ns_hash, const Digest& digest, Hit* hit) const;
  // True if the slot behind `hit` has not changed since Find: bytes read from the block in
  // between were the sealed block's. Call after the reads.
  static bool StillValid(const Hit& hit);
  // False while some sealed block is missing from the directory (see Header::unpublished).
  bool complete() const;

 private:
  Reader(const uint8_t* base, uint64_t bytes);

  const uint8_t* const base_;
  const uint64_t bytes_;
  const Header* const header_;
  const Slot* const slots_;
  const uint64_t mask_;
};

}  // namespace ems::directory

#endif  // EMS_DIRECTORY_DIRECTORY_H_
