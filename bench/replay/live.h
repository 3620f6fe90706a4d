// Live replay: a request stream against a running EMS cluster through ems::Client, by N
// simulated prefill instances. Real MatchPrefix, BatchGet and BatchPut of real bytes, every
// byte read back verified.
#ifndef EMS_BENCH_REPLAY_LIVE_H_
#define EMS_BENCH_REPLAY_LIVE_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/types/span.h"
#include "client/client.h"
#include "common/key.h"
#include "replay/simulate.h"
#include "replay/trace.h"

namespace ems::bench {

struct LiveOptions {
  std::string ns = "replay";  // key namespace of the run
  uint64_t block_bytes = 0;   // bytes stored per block (already scaled by --kv-scale)
  // Prefill instances, each serving one request at a time; requests start in trace order on
  // the first free instance.
  int instances = 1;
  // > 0: request i starts at its trace timestamp / speedup (or when its instance is free);
  // 0: back to back.
  double speedup = 0;
  bool progress = true;
};

// What one request did. Per request (index = request index).
struct LiveRecord {
  int instance = 0;
  size_t matched = 0;   // MatchPrefix's answer: leading blocks the pool holds
  size_t loaded = 0;    // leading blocks read back and verified (< matched if one was evicted
                        // between lookup and read: the engine recomputes from there)
  double start_s = 0;   // since the replay started
  double late_s = 0;    // behind its scheduled start (its instance was busy)
  double lookup_s = 0;  // MatchPrefix
  double get_s = 0;     // BatchGet of the matched blocks
  double put_s = 0;     // BatchPut of the rest
};

struct LiveResult {
  std::vector<LiveRecord> records;
  uint64_t corrupt_blocks = 0;  // read back with other bytes than were stored: a bug
  uint64_t raced_misses = 0;    // matched, then gone before the read
  uint64_t errors = 0;          // failed calls other than misses
  std::string first_error;
  uint64_t bytes_read = 0;
  uint64_t bytes_written = 0;
  double wall_s = 0;
};

// Runs the replay. Blocks the caller until every request is done.
LiveResult RunLive(Client& client, const std::vector<Request>& requests,
                   const LiveOptions& options);

// The key namespace of a replay of `model` on a cluster the replay starts.
std::string ReplayNamespace(absl::string_view model);
// Where the cluster the replay starts (LocalCluster::Start with `nodes` nodes of equal size)
// keeps each trace block: the pool's own ring over the same node ids, at ReplayKey(ns, id).
// `Simulate` with it models that cluster block for block. INVALID_ARGUMENT if nodes < 1.
absl::StatusOr<Placement> LocalClusterPlacement(const std::string& ns, int nodes);

// The key of trace block `hash_id` in namespace `ns` (a uniform 128-bit digest of the id).
BlockKey ReplayKey(const std::string& ns, uint64_t hash_id);
// The bytes block `hash_id` holds: a stream seeded by the id, so every reader can check them.
// REQUIRES: out.size() % 8 == 0.
void FillBlock(uint64_t hash_id, absl::Span<uint8_t> out);

}  // namespace ems::bench

#endif  // EMS_BENCH_REPLAY_LIVE_H_
