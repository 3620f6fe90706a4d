#include "directory/directory.h"

#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cstring>
#include <new>

#include "absl/strings/str_cat.h"
#include "common/prefix_hash.h"

namespace ems::directory {
namespace {

constexpr uint64_t kBlockGranule = 4096;     // the pool's smallest block
constexpr uint64_t kMaxBytes = 64ull << 20;  // of slots; beyond them, blocks go unpublished

uint64_t High64(const Digest& d) {
  uint64_t v;
  std::memcpy(&v, d.bytes.data(), sizeof(v));
  return v;
}

// The key's two buckets; distinct whenever there are two.
std::pair<uint64_t, uint64_t> Buckets(uint64_t ns_hash, const Digest& d, uint64_t mask) {
  const uint64_t b1 = (d.Low64() ^ ns_hash) & mask;
  uint64_t b2 = (High64(d) ^ std::rotl(ns_hash, 29)) & mask;
  if (b2 == b1) b2 = b1 ^ (mask & 1);
  return {b1, b2};
}

bool SameKey(const Slot& s, uint64_t ns_hash, const Digest& d) {
  return s.ns_hash.load(std::memory_order_relaxed) == ns_hash &&
         s.digest_lo.load(std::memory_order_relaxed) == d.Low64() &&
         s.digest_hi.load(std::memory_order_relaxed) == High64(d);
}

uint64_t BucketsFor(uint64_t bytes) {
  return (bytes - sizeof(Header)) / sizeof(Slot) / kBucketSlots;
}

}  // namespace

uint64_t NamespaceHash(absl::string_view ns) {
  const uint64_t h = Checksum(ns.data(), ns.size());
  return h == 0 ? 1 : h;
}

uint64_t DirectoryBytes(uint64_t arena_bytes) {
  const uint64_t blocks = std::max<uint64_t>(arena_bytes / kBlockGranule, 1);
  const uint64_t want = std::bit_ceil((blocks * 4 / 3 + kBucketSlots - 1) / kBucketSlots);
  // The cap bounds the slots; the header comes on top. Taking it out of the cap first made
  // the largest power of two of buckets half of it: 32 MiB, which a 256 GiB arena of 512 KiB
  // blocks outgrows.
  const uint64_t cap = kMaxBytes / (sizeof(Slot) * kBucketSlots);
  const uint64_t buckets = std::min(want, std::bit_floor(cap));
  return sizeof(Header) + buckets * kBucketSlots * sizeof(Slot);
}

// --- Writer ----------------------------------------------------------------------------------

absl::StatusOr<std::unique_ptr<Writer>> Writer::Create(uint64_t arena_bytes) {
  const uint64_t bytes = DirectoryBytes(arena_bytes);
  const int fd = memfd_create("ems-directory", MFD_CLOEXEC);
  if (fd < 0) return absl::InternalError(absl::StrCat("memfd_create: ", std::strerror(errno)));
  if (ftruncate(fd, static_cast<off_t>(bytes)) != 0) {
    const int err = errno;
    close(fd);
    return absl::ResourceExhaustedError(
        absl::StrCat("cannot size the block directory to ", bytes, " bytes: ", std::strerror(err)));
  }
  void* base = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (base == MAP_FAILED) {
    const int err = errno;
    close(fd);
    return absl::ResourceExhaustedError(
        absl::StrCat("cannot map the block directory: ", std::strerror(err)));
  }
  return std::unique_ptr<Writer>(new Writer(fd, static_cast<uint8_t*>(base), bytes));
}

Writer::Writer(int fd, uint8_t* base, uint64_t bytes)
    : fd_(fd),
      base_(base),
      bytes_(bytes),
      header_(new (base) Header()),
      slots_(reinterpret_cast<Slot*>(base + sizeof(Header))) {
  header_->buckets = BucketsFor(bytes);
  absl::MutexLock lock(&mu_);
  used_.reset(new uint8_t[header_->buckets]());  // the memfd's pages are zero: every slot empty
}

Writer::~Writer() {
  munmap(base_, bytes_);
  close(fd_);
}

bool Writer::Publish(uint64_t ns_hash, const Digest& digest, uint64_t offset, uint64_t size,
                     uint64_t checksum) {
  absl::MutexLock lock(&mu_);
  auto [b1, b2] = Buckets(ns_hash, digest, header_->buckets - 1);
  const uint64_t b = used_[b2] < used_[b1] ? b2 : b1;
  if (used_[b] == kBucketSlots) {
    header_->unpublished.fetch_add(1, std::memory_order_relaxed);
    return false;
  }
  Slot* slot = &slots_[b * kBucketSlots];
  while (slot->ns_hash.load(std::memory_order_relaxed) != 0) ++slot;  // a free one exists
  ++used_[b];
  const uint64_t seq = slot->seq.load(std::memory_order_relaxed);
  slot->seq.store(seq + 1, std::memory_order_relaxed);
  std::atomic_thread_fence(std::memory_order_release);  // odd before any field changes
  slot->digest_hi.store(High64(digest), std::memory_order_relaxed);
  slot->digest_lo.store(digest.Low64(), std::memory_order_relaxed);
  slot->offset.store(offset, std::memory_order_relaxed);
  slot->size.store(size, std::memory_order_relaxed);
  slot->checksum.store(checksum, std::memory_order_relaxed);
  slot->ns_hash.store(ns_hash, std::memory_order_relaxed);
  slot->seq.store(seq + 2, std::memory_order_release);
  return true;
}

void Writer::Unpublish(uint64_t ns_hash, const Digest& digest, bool published) {
  if (!published) {
    header_->unpublished.fetch_sub(1, std::memory_order_relaxed);
    return;
  }
  absl::MutexLock lock(&mu_);
  auto [b1, b2] = Buckets(ns_hash, digest, header_->buckets - 1);
  for (uint64_t b : {b1, b2}) {
    for (uint32_t i = 0; i < kBucketSlots; ++i) {
      Slot& slot = slots_[b * kBucketSlots + i];
      if (!SameKey(slot, ns_hash, digest)) continue;
      const uint64_t seq = slot.seq.load(std::memory_order_relaxed);
      slot.seq.store(seq + 1, std::memory_order_relaxed);
      std::atomic_thread_fence(std::memory_order_release);
      slot.ns_hash.store(0, std::memory_order_relaxed);
      // Release: a reader that sees the block's bytes rewritten (after this, the node frees
      // the block) then sees this seq moved.
      slot.seq.store(seq + 2, std::memory_order_release);
      --used_[b];
      return;
    }
  }
}

// --- Reader ----------------------------------------------------------------------------------

absl::StatusOr<std::unique_ptr<Reader>> Reader::Map(int fd, uint64_t bytes) {
  if (bytes < sizeof(Header) + kBucketSlots * sizeof(Slot)) {
    return absl::InvalidArgumentError(
        absl::StrCat("block directory of ", bytes, " bytes is too small"));
  }
  void* base = mmap(nullptr, bytes, PROT_READ, MAP_SHARED, fd, 0);
  if (base == MAP_FAILED) {
    return absl::InternalError(
        absl::StrCat("cannot map the node's block directory: ", std::strerror(errno)));
  }
  const auto* header = static_cast<const Header*>(base);
  if (header->magic != kMagic || header->buckets != BucketsFor(bytes) ||
      !std::has_single_bit(header->buckets)) {
    munmap(base, bytes);
    return absl::InvalidArgumentError(
        absl::StrCat("the node's block directory of ", bytes, " bytes has a bad header"));
  }
  return std::unique_ptr<Reader>(new Reader(static_cast<const uint8_t*>(base), bytes));
}

Reader::Reader(const uint8_t* base, uint64_t bytes)
    : base_(base),
      bytes_(bytes),
      header_(reinterpret_cast<const Header*>(base)),
      slots_(reinterpret_cast<const Slot*>(base + sizeof(Header))),
      mask_(header_->buckets - 1) {}

Reader::~Reader() { munmap(const_cast<uint8_t*>(base_), bytes_); }

bool Reader::complete() const { return header_->unpublished.load(std::memory_order_relaxed) == 0; }

bool Reader::Find(uint64_t ns_hash, const Digest& digest, Hit* hit) const {
  auto [b1, b2] = Buckets(ns_hash, digest, mask_);
  for (uint64_t b : {b1, b2}) {
    for (uint32_t i = 0; i < kBucketSlots; ++i) {
      const Slot& slot = slots_[b * kBucketSlots + i];
      // A writer holds a slot for a few stores; a busy or torn slot is retried a few times and
      // then taken as absent (the block is appearing or going: a miss is a correct answer).
      for (int attempt = 0; attempt < 4; ++attempt) {
        const uint64_t seq = slot.seq.load(std::memory_order_acquire);
        if (seq & 1) continue;
        const bool same = SameKey(slot, ns_hash, digest);
        hit->offset = slot.offset.load(std::memory_order_relaxed);
        hit->size = slot.size.load(std::memory_order_relaxed);
        hit->checksum = slot.checksum.load(std::memory_order_relaxed);
        std::atomic_thread_fence(std::memory_order_acquire);
        if (slot.seq.load(std::memory_order_relaxed) != seq) continue;
        if (!same) break;
        hit->slot = &slot;
        hit->seq = seq;
        return true;
      }
    }
  }
  return false;
}

bool Reader::StillValid(const Hit& hit) {
  // Orders the caller's reads of the block before the re-read of seq.
  std::atomic_thread_fence(std::memory_order_acquire);
  return hit.slot->seq.load(std::memory_order_relaxed) == hit.seq;
}

}  // namespace ems::directory
