// Micro benchmarks of the pool: allocator, index under contention, pins, metadata, fragmentation,
// eviction policies.
#include <cstring>
#include <memory>
#include <random>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "benchmark/benchmark.h"
#include "pool/eviction_policy.h"
#include "pool/internal/allocator.h"
#include "pool/internal/prefix_policy.h"
#include "pool/pool.h"

namespace ems::pool {
namespace {

constexpr uint64_t kKiB = 1024, kMiB = 1024 * 1024;

BlockKey Key(uint64_t i) {
  Digest d;
  std::memcpy(d.bytes.data(), &i, 8);
  std::memcpy(d.bytes.data() + 8, &i, 8);
  return BlockKey{"bench/ns", d};
}

std::unique_ptr<Pool> MakePool(uint64_t pages, bool key_feed = false) {
  PoolOptions o;
  o.huge_page_num = pages;
  o.key_feed_events = key_feed ? 64 << 10 : 0;
  return *Pool::Create(o);
}

void BM_Allocator_AllocFree(benchmark::State& state) {
  internal::Allocator a(1024 * kMiB, 4096);
  std::mt19937_64 rng(1);
  std::vector<internal::Chunk*> live;
  for (int i = 0; i < 1000; ++i) live.push_back(a.Allocate((1 + rng() % 64) * 4096));
  for (auto _ : state) {
    const size_t i = rng() % live.size();
    a.Free(live[i]);
    live[i] = a.Allocate((1 + rng() % 64) * 4096);
    benchmark::DoNotOptimize(live[i]);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_Allocator_AllocFree);

// Fragmentation after churn on a mixed workload: 4 KiB 70%, 256 KiB 20%, 3 MiB 10%.
// fragmentation = 1 - largest free extent / total free.
void BM_Allocator_FragmentationAfterChurn(benchmark::State& state) {
  const uint64_t cap = 1024 * kMiB;
  double frag = 0, fill = 0;
  for (auto _ : state) {
    internal::Allocator a(cap, 4096);
    std::mt19937_64 rng(42);
    std::vector<internal::Chunk*> live;
    auto size = [&] {
      const uint64_t r = rng() % 10;
      return r < 7 ? 4 * kKiB : r < 9 ? 256 * kKiB : 3 * kMiB;
    };
    for (int step = 0; step < 200000; ++step) {
      // Keep the arena around 80% full: free at random when above, allocate otherwise.
      if (a.used_bytes() > cap * 8 / 10 && !live.empty()) {
        const size_t i = rng() % live.size();
        a.Free(live[i]);
        live[i] = live.back();
        live.pop_back();
      } else if (internal::Chunk* c = a.Allocate(size())) {
        live.push_back(c);
      }
    }
    frag = 1.0 - static_cast<double>(a.LargestFree()) / a.free_bytes();
    fill = static_cast<double>(a.used_bytes()) / cap;
    for (auto* c : live) a.Free(c);
  }
  state.counters["fragmentation"] = frag;
  state.counters["fill"] = fill;
}
BENCHMARK(BM_Allocator_FragmentationAfterChurn)->Iterations(1)->Unit(benchmark::kMillisecond);

Pool* SharedPool() {
  static Pool* pool = [] {
    Pool* p = MakePool(64).release();  // 128 MiB, 16k blocks of 4 KiB
    for (uint64_t i = 0; i < 16384; ++i) {
      auto h = p->Allocate(Key(i), 4096);
      p->Seal(*std::move(h)).IgnoreError();
    }
    return p;
  }();
  return pool;
}

void BM_Index_Lookup(benchmark::State& state) {
  Pool* pool = SharedPool();
  std::mt19937_64 rng(state.thread_index());
  for (auto _ : state) benchmark::DoNotOptimize(pool->Contains(Key(rng() % 16384)));
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_Index_Lookup)->Threads(1)->Threads(2)->Threads(4);

void BM_Pin_GetAndRelease(benchmark::State& state) {
  Pool* pool = SharedPool();
  std::mt19937_64 rng(state.thread_index() + 100);
  for (auto _ : state) {
    auto h = pool->Get(Key(rng() % 16384));
    benchmark::DoNotOptimize(h->data());
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_Pin_GetAndRelease)->Threads(1)->Threads(2)->Threads(4);

// Arg 1: with the key feed an ems-node keeps for key mirrors (every seal and removal appends
// an event), against 0 without it, in the same run.
void BM_Index_InsertRemove(benchmark::State& state) {
  static Pool* pools[2] = {MakePool(64).release(), MakePool(64, /*key_feed=*/true).release()};
  Pool* pool = pools[state.range(0)];
  uint64_t i = (state.thread_index() + 1) * (1ull << 40);
  for (auto _ : state) {
    auto h = pool->Allocate(Key(i), 4096);
    pool->Seal(*std::move(h)).IgnoreError();
    pool->Remove(Key(i)).IgnoreError();
    ++i;
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_Index_InsertRemove)->Arg(0)->Arg(1)->Threads(1)->Threads(2)->Threads(4);

void BM_Pool_MetadataBytesPerBlock(benchmark::State& state) {
  double per_block = 0;
  for (auto _ : state) {
    auto pool = MakePool(64);
    for (uint64_t i = 0; i < 16384; ++i) {
      auto h = pool->Allocate(Key(i), 4096);
      pool->Seal(*std::move(h)).IgnoreError();
    }
    per_block = static_cast<double>(pool->Stats().metadata_bytes) / 16384;
  }
  state.counters["metadata_bytes_per_block"] = per_block;
}
BENCHMARK(BM_Pool_MetadataBytesPerBlock)->Iterations(1)->Unit(benchmark::kMillisecond);

// One block in, one out, at a steady 64k blocks: what each policy costs per put once the pool
// is full. Prompts of 16 chained blocks, half of them repeating an earlier prompt's prefix so
// that hits, parents and ghosts all occur. Arg 0..2: lru, s3fifo, prefix (dueling three
// tunings); 3: prefix with its first tuning alone, the duel's baseline in the same run.
void BM_Policy_UseAndEvict(benchmark::State& state) {
  std::unique_ptr<EvictionPolicy> p;
  static const char* const kNames[] = {"lru", "s3fifo", "prefix"};
  if (state.range(0) < 3) {
    p = *MakeEvictionPolicy(kNames[state.range(0)]);
  } else {
    p = std::make_unique<internal::PrefixPolicy>(
        std::vector<internal::PrefixPolicy::Tuning>{internal::PrefixPolicy::DefaultTunings()[0]});
  }
  constexpr size_t kBlocks = 64 << 10, kChain = 16;
  absl::flat_hash_set<uint64_t> present;
  std::mt19937_64 rng(1);
  uint64_t next_prompt = 1, uses = 0;
  auto evict_to = [&](size_t n) {
    while (p->size() > n) {
      auto v = p->Evict([](uint64_t) { return true; });
      if (!v) break;
      present.erase(*v);
    }
  };
  for (auto _ : state) {
    // A prompt: a repeat of a recent one (its ids are prompt * 16 + depth) or a new one.
    const uint64_t prompt =
        rng() % 2 == 0 && next_prompt > 64 ? next_prompt - 1 - rng() % 64 : next_prompt++;
    uint64_t parent = 0;
    for (uint64_t d = 0; d < kChain; ++d) {
      const uint64_t id = prompt * kChain + d;
      if (present.contains(id)) {
        p->OnAccess(id);
      } else {
        p->OnInsert(id, parent);
        present.insert(id);
        evict_to(kBlocks);
      }
      parent = id;
    }
    uses += kChain;
  }
  state.SetItemsProcessed(uses);
}
BENCHMARK(BM_Policy_UseAndEvict)->DenseRange(0, 3);

}  // namespace
}  // namespace ems::pool
