// Cost of routing a key: the ring lookup every client call makes per key (issue #3 asks for it
// at 512 nodes), and building the ring, which a client does on every new cluster map.
#include <random>
#include <vector>

#include "absl/strings/str_cat.h"
#include "benchmark/benchmark.h"
#include "common/hash_ring.h"

namespace ems {
namespace {

std::vector<RingNode> EqualNodes(int n) {
  std::vector<RingNode> nodes;
  for (int i = 0; i < n; ++i) nodes.push_back({absl::StrCat("node-", i), 1 << 20, ""});
  return nodes;
}

// Owner() of random positions: 2048 vnodes per node, so 512 nodes is a 1M-entry ring.
void BM_HashRing_Owner(benchmark::State& state) {
  auto ring = HashRing::Build(EqualNodes(static_cast<int>(state.range(0))));
  if (!ring.ok()) {
    state.SkipWithError(ring.status().ToString().c_str());
    return;
  }
  std::mt19937_64 rng(1);
  std::vector<uint64_t> positions(1 << 16);
  for (auto& p : positions) p = rng();
  size_t i = 0;
  for (auto _ : state) {
    benchmark::DoNotOptimize(ring->Owner(positions[i++ & (positions.size() - 1)]));
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_HashRing_Owner)->Arg(3)->Arg(64)->Arg(512);

// Position() of a key (namespace seed and digest hashed together) plus Owner(): a whole route.
void BM_HashRing_RouteKey(benchmark::State& state) {
  auto ring = HashRing::Build(EqualNodes(static_cast<int>(state.range(0))));
  if (!ring.ok()) {
    state.SkipWithError(ring.status().ToString().c_str());
    return;
  }
  std::mt19937_64 rng(2);
  std::vector<BlockKey> keys(1 << 12);
  for (auto& k : keys) {
    k.ns = "llama3-8b";
    for (auto& b : k.digest.bytes) b = static_cast<uint8_t>(rng());
  }
  size_t i = 0;
  for (auto _ : state) {
    benchmark::DoNotOptimize(ring->Owner(HashRing::Position(keys[i++ & (keys.size() - 1)])));
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_HashRing_RouteKey)->Arg(3)->Arg(512);

void BM_HashRing_Build(benchmark::State& state) {
  const auto nodes = EqualNodes(static_cast<int>(state.range(0)));
  for (auto _ : state) benchmark::DoNotOptimize(HashRing::Build(nodes));
}
BENCHMARK(BM_HashRing_Build)->Arg(3)->Arg(512)->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace ems
