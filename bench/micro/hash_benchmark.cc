// Prefix hashing cost per token, and the cost of verifying a block as it is read.
#include <xxhash.h>

#include <cstring>
#include <numeric>
#include <vector>

#include "benchmark/benchmark.h"
#include "common/prefix_hash.h"

namespace ems {
namespace {

void BM_PrefixHash_PerToken(benchmark::State& state, HashAlgorithm algo) {
  std::vector<uint32_t> tokens(16384);
  std::iota(tokens.begin(), tokens.end(), 1000u);
  PrefixHasher hasher(static_cast<size_t>(state.range(0)), algo);
  for (auto _ : state) benchmark::DoNotOptimize(hasher.Hash(tokens));
  state.SetItemsProcessed(state.iterations() * tokens.size());  // items = tokens
}
BENCHMARK_CAPTURE(BM_PrefixHash_PerToken, Xxh3, HashAlgorithm::kXxh3_128)->Arg(16)->Arg(512);
BENCHMARK_CAPTURE(BM_PrefixHash_PerToken, Sha256, HashAlgorithm::kSha256)->Arg(16)->Arg(512);

// Reading a block out of the pool with verification: copy then checksum the copy, against the
// fused CopyAndChecksum. Sources rotate over 128 MiB so they come from memory, not cache, as
// they do from a large arena.
struct Blocks {
  explicit Blocks(size_t size) : size(size), src((128 << 20) / size, std::vector<uint8_t>(size)) {
    for (auto& b : src) std::iota(b.begin(), b.end(), static_cast<uint8_t>(b.size()));
  }
  size_t size;
  std::vector<std::vector<uint8_t>> src;
};

// One way of reading a block out of the pool into the caller's buffer.
using ReadFn = void (*)(uint8_t* dst, const uint8_t* src, size_t size);

void BM_Read(benchmark::State& state, ReadFn read) {
  Blocks b(static_cast<size_t>(state.range(0)));
  std::vector<uint8_t> dst(b.size);
  size_t i = 0;
  for (auto _ : state) {
    read(dst.data(), b.src[i++ % b.src.size()].data(), b.size);
    benchmark::DoNotOptimize(dst.data());
  }
  state.SetBytesProcessed(state.iterations() * b.size);
}

void Copy(uint8_t* dst, const uint8_t* src, size_t n) { std::memcpy(dst, src, n); }
// The baseline: libxxhash's default entry point, built for SSE2 (no dispatch).
void CopyThenChecksumBaseline(uint8_t* dst, const uint8_t* src, size_t n) {
  std::memcpy(dst, src, n);
  benchmark::DoNotOptimize(XXH3_64bits(dst, n));
}
void CopyThenChecksum(uint8_t* dst, const uint8_t* src, size_t n) {
  std::memcpy(dst, src, n);
  benchmark::DoNotOptimize(Checksum(dst, n));
}
void CopyAndChecksumFused(uint8_t* dst, const uint8_t* src, size_t n) {
  benchmark::DoNotOptimize(CopyAndChecksum(dst, src, n));
}
BENCHMARK_CAPTURE(BM_Read, Copy, &Copy)->Arg(256 << 10)->Arg(2 << 20);
BENCHMARK_CAPTURE(BM_Read, CopyThenChecksumBaseline, &CopyThenChecksumBaseline)
    ->Arg(256 << 10)
    ->Arg(2 << 20);
BENCHMARK_CAPTURE(BM_Read, CopyThenChecksum, &CopyThenChecksum)->Arg(256 << 10)->Arg(2 << 20);
BENCHMARK_CAPTURE(BM_Read, CopyAndChecksum, &CopyAndChecksumFused)->Arg(256 << 10)->Arg(2 << 20);

}  // namespace
}  // namespace ems
