// Prefix hashing cost per token.
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

}  // namespace
}  // namespace ems
