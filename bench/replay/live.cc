#include "replay/live.h"

#include <algorithm>
#include <atomic>
#include <cstring>
#include <memory>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "common/hash_ring.h"
#include "harness/services.h"
#include "replay/progress.h"

namespace ems::bench {
namespace {

uint64_t SplitMix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

// Counters shared by the instance threads; each ordering is relaxed (read after join).
struct Shared {
  std::atomic<uint64_t> corrupt{0}, raced{0}, errors{0}, read{0}, written{0};
  absl::Mutex mu;
  std::string first_error ABSL_GUARDED_BY(mu);

  void Error(const absl::Status& s) {
    errors.fetch_add(1, std::memory_order_relaxed);
    absl::MutexLock lock(&mu);
    if (first_error.empty()) first_error = s.ToString();
  }
};

// One request: lookup, read the matched prefix back, store the rest.
void Serve(Client& client, const Request& req, const LiveOptions& o, std::vector<uint8_t>& buf,
           std::vector<uint8_t>& want, Shared& shared, LiveRecord& rec) {
  const size_t n = req.hash_ids.size();
  const uint64_t bb = o.block_bytes;
  std::vector<BlockKey> keys;
  keys.reserve(n);
  for (uint64_t id : req.hash_ids) keys.push_back(ReplayKey(o.ns, id));

  absl::Time t = absl::Now();
  auto m = client.MatchPrefix(keys);
  rec.lookup_s = absl::ToDoubleSeconds(absl::Now() - t);
  if (!m.ok()) shared.Error(m.status());
  rec.matched = m.ok() ? *m : 0;

  // The engine loads the matched prefix; it can use it up to the first block that is gone.
  size_t loaded = rec.matched;
  if (rec.matched > 0) {
    if (buf.size() < rec.matched * bb) buf.resize(rec.matched * bb);
    // The buffer is reused from request to request and may hold these very blocks already
    // (a prefix read or written just before): without this a read that reports success but
    // copies nothing would pass the check below.
    std::memset(buf.data(), 0xA5, rec.matched * bb);
    std::vector<GetItem> gets;
    for (size_t i = 0; i < rec.matched; ++i) {
      gets.push_back({keys[i], absl::MakeSpan(buf.data() + i * bb, bb)});
    }
    t = absl::Now();
    auto got = client.BatchGet(gets);
    rec.get_s = absl::ToDoubleSeconds(absl::Now() - t);
    want.resize(bb);
    for (size_t i = 0; i < rec.matched; ++i) {
      if (!got[i].ok()) {
        if (absl::IsNotFound(got[i].status())) {
          shared.raced.fetch_add(1, std::memory_order_relaxed);
        } else {
          shared.Error(got[i].status());
        }
        loaded = std::min(loaded, i);
        continue;
      }
      shared.read.fetch_add(*got[i], std::memory_order_relaxed);
      FillBlock(req.hash_ids[i], absl::MakeSpan(want));
      if (*got[i] != bb || std::memcmp(buf.data() + i * bb, want.data(), bb) != 0) {
        shared.corrupt.fetch_add(1, std::memory_order_relaxed);
        loaded = std::min(loaded, i);
      }
    }
  }
  rec.loaded = loaded;

  // The engine computed the rest and offers it to the pool. Blocks already stored (present
  // past a gap) are a no-op for the pool apart from touching them.
  const size_t first = loaded;
  if (first < n) {
    const size_t count = n - first;
    if (buf.size() < count * bb) buf.resize(count * bb);
    std::vector<PutItem> puts;
    for (size_t i = first; i < n; ++i) {
      auto span = absl::MakeSpan(buf.data() + (i - first) * bb, bb);
      FillBlock(req.hash_ids[i], span);
      puts.push_back({keys[i], span, i > 0 ? &keys[i - 1] : nullptr});
    }
    t = absl::Now();
    auto put = client.BatchPut(puts);
    rec.put_s = absl::ToDoubleSeconds(absl::Now() - t);
    for (const absl::Status& s : put) {
      if (s.ok()) {
        shared.written.fetch_add(bb, std::memory_order_relaxed);
      } else {
        shared.Error(s);
      }
    }
  }
}

}  // namespace

std::string ReplayNamespace(absl::string_view model) { return absl::StrCat("replay/", model); }

absl::StatusOr<Placement> LocalClusterPlacement(const std::string& ns, int nodes) {
  if (nodes < 1) return absl::InvalidArgumentError("a cluster needs at least one node");
  std::vector<RingNode> members;
  for (int i = 0; i < nodes; ++i) members.push_back({LocalClusterNodeId(i), 1, ""});
  // The nodes are equal, so any equal capacity gives the ring their map builds.
  absl::StatusOr<HashRing> built = HashRing::Build(std::move(members));
  if (!built.ok()) return built.status();
  auto ring = std::make_shared<const HashRing>(*std::move(built));
  Placement p;
  p.caches = nodes;
  p.owner = [ring, ns](uint64_t hash_id) {
    return ring->Owner(HashRing::Position(ReplayKey(ns, hash_id)));
  };
  return p;
}

BlockKey ReplayKey(const std::string& ns, uint64_t hash_id) {
  BlockKey k{ns, {}};
  const uint64_t hi = SplitMix64(hash_id);
  const uint64_t lo = SplitMix64(hash_id ^ 0x5ca1ab1e0ddba11ull);
  std::memcpy(k.digest.bytes.data(), &hi, 8);
  std::memcpy(k.digest.bytes.data() + 8, &lo, 8);
  return k;
}

void FillBlock(uint64_t hash_id, absl::Span<uint8_t> out) {
  uint64_t x = SplitMix64(hash_id) | 1;  // xorshift state must not be 0
  for (size_t off = 0; off + 8 <= out.size(); off += 8) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    std::memcpy(out.data() + off, &x, 8);
  }
}

LiveResult RunLive(Client& client, const std::vector<Request>& requests, const LiveOptions& o) {
  LiveResult result;
  result.records.resize(requests.size());
  Shared shared;
  const int instances = std::max(1, o.instances);
  const int64_t t0_ms = requests.empty() ? 0 : requests.front().timestamp_ms;
  ProgressBar bar("replay", requests.size(), o.progress);
  const absl::Time start = absl::Now();
  std::vector<std::thread> threads;
  // Requests start in trace order, each on the first free instance: an instance that ran
  // ahead on its own share would reorder the stream (and change what is cached when).
  std::atomic<size_t> next{0};  // relaxed: only hands out indices
  for (int k = 0; k < instances; ++k) {
    threads.emplace_back([&, k] {
      std::vector<uint8_t> buf, want;
      for (size_t i = next.fetch_add(1, std::memory_order_relaxed); i < requests.size();
           i = next.fetch_add(1, std::memory_order_relaxed)) {
        LiveRecord& rec = result.records[i];
        rec.instance = k;
        if (o.speedup > 0) {
          const absl::Time due =
              start + absl::Milliseconds((requests[i].timestamp_ms - t0_ms) / o.speedup);
          absl::SleepFor(due - absl::Now());
          rec.late_s = std::max(0.0, absl::ToDoubleSeconds(absl::Now() - due));
        }
        rec.start_s = absl::ToDoubleSeconds(absl::Now() - start);
        Serve(client, requests[i], o, buf, want, shared, rec);
        bar.Add(1);
      }
    });
  }
  for (auto& t : threads) t.join();
  result.wall_s = absl::ToDoubleSeconds(absl::Now() - start);
  result.corrupt_blocks = shared.corrupt.load(std::memory_order_relaxed);
  result.raced_misses = shared.raced.load(std::memory_order_relaxed);
  result.errors = shared.errors.load(std::memory_order_relaxed);
  result.bytes_read = shared.read.load(std::memory_order_relaxed);
  result.bytes_written = shared.written.load(std::memory_order_relaxed);
  {
    absl::MutexLock lock(&shared.mu);
    result.first_error = shared.first_error;
  }
  return result;
}

}  // namespace ems::bench
