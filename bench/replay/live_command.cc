// ems-bench replay (live): the requests against an EMS cluster — one it starts on loopback
// (a controller and --nodes ems-node processes sized to --capacity blocks) or one given by
// --controller / --address — beside two baselines computed in the same run: no cache, and a
// local cache per prefill instance with the same total capacity (the pool's policy code,
// in-process). TTFTs come from the model in replay/model.h; every parameter is printed.
#include "replay/live_command.h"

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>
#include <memory>
#include <optional>
#include <random>
#include <utility>

#include "absl/flags/declare.h"
#include "absl/flags/flag.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "client/client.h"
#include "ems/v1/data.pb.h"
#include "harness/commands.h"
#include "harness/services.h"
#include "replay/live.h"
#include "replay/model.h"
#include "replay/queue.h"
#include "replay/report.h"
#include "replay/simulate.h"

ABSL_DECLARE_FLAG(std::string, policies);  // replay_command.cc: the plot's sweep

ABSL_FLAG(std::string, model, "llama3-8b", "model preset: llama3-8b, llama3-70b, qwen2-7b");
ABSL_FLAG(std::string, kv_scale, "1/1024",
          "fraction of the model's KV bytes actually stored per block (e.g. 1/1024 or 0.01), "
          "so a replay fits a small machine; TTFTs use the full size");
ABSL_FLAG(std::string, gpu, "h100", "GPU of the prefill model: h100 or a100");
ABSL_FLAG(double, mfu, 0.4, "model FLOPs utilization reached in prefill");
ABSL_FLAG(double, pool_gbps, 25,
          "GB/s per GPU from the pool into GPU memory (one 200 Gb/s RDMA NIC per GPU)");
ABSL_FLAG(double, local_gbps, 50,
          "GB/s per GPU from the instance's own DRAM into GPU memory (PCIe 5.0 x16)");
ABSL_FLAG(int, instances, 3,
          "simulated prefill instances (threads); each request goes to the first free one");
ABSL_FLAG(double, speedup, 0,
          "replay at trace timestamps divided by this factor; 0 = back to back");
ABSL_FLAG(int, nodes, 3, "ems-node processes of the cluster the replay starts");
ABSL_FLAG(uint64_t, capacity, 1000,
          "total capacity in blocks: of the cluster the replay starts, and of the local caches");
ABSL_FLAG(std::string, policy, "lru", "eviction policy of the pool and the local caches");
ABSL_FLAG(std::string, controller, "",
          "use this running cluster (membership address) instead of starting one");
ABSL_FLAG(std::string, address, "", "use this running ems-node instead of starting a cluster");
ABSL_FLAG(std::string, cluster, "default", "cluster name with --controller");
ABSL_FLAG(std::string, csv, "", "write one CSV row per request to this file");
ABSL_FLAG(std::string, plot_dir, "",
          "write TTFT CDF and hit ratio vs capacity plots (PNG and SVG, via gnuplot) here");
ABSL_FLAG(bool, progress, true, "progress bar on stderr");

namespace ems::bench {
namespace {

constexpr uint64_t kPage = 2ull << 20;  // ems-node's default hugepage flavor

absl::StatusOr<double> ParseScale(const std::string& s) {
  double v = 0;
  std::vector<std::string> parts = absl::StrSplit(s, '/');
  if (parts.size() == 1 && absl::SimpleAtod(parts[0], &v) && v > 0 && v <= 1) return v;
  double num = 0, den = 0;
  if (parts.size() == 2 && absl::SimpleAtod(parts[0], &num) && absl::SimpleAtod(parts[1], &den) &&
      num > 0 && den > 0 && num <= den) {
    return num / den;
  }
  return absl::InvalidArgumentError(
      absl::StrCat("bad --kv-scale '", s, "': want a fraction in (0, 1] like 0.01 or 1/1024"));
}

std::string Bytes(double b) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  int u = 0;
  while (b >= 1024 && u < 4) b /= 1024, ++u;
  return absl::StrFormat("%.4g %s", b, units[u]);
}

int Fail(const absl::Status& s) {
  std::fprintf(stderr, "replay: %s\n", s.ToString().c_str());
  return 1;
}

// A local cache per instance (`capacity` blocks over `instances`),
// requests served as the queue model sends them: to the instance free first or, `by_prefix`,
// to the one where they would finish first. Fills `b`'s hits, TTFTs and queued TTFTs; returns
// the instance of each request. REQUIRES: `policy` names a pool policy.
// Instance k's share of `capacity` blocks: the remainder of the division goes one block each
// to the first instances, so the local caches hold what the pool does in all (8 x 187 was 4
// blocks short of 1,500).
uint64_t LocalShare(uint64_t capacity, int instances, int k) {
  const uint64_t n = static_cast<uint64_t>(instances);
  return capacity / n + (static_cast<uint64_t>(k) < capacity % n ? 1 : 0);
}

// What `caches` hold: "8 x 187-188 blocks = 1500" (or "8 x 100 blocks = 800" when all are
// equal). Read off the caches themselves, so the label cannot say more than they hold.
std::string CachesLabel(const std::vector<CacheSim>& caches) {
  size_t lo = std::numeric_limits<size_t>::max(), hi = 0, total = 0;
  for (const CacheSim& c : caches) {
    lo = std::min(lo, c.capacity());
    hi = std::max(hi, c.capacity());
    total += c.capacity();
  }
  return lo == hi ? absl::StrFormat("%d x %d blocks = %d", caches.size(), lo, total)
                  : absl::StrFormat("%d x %d-%d blocks = %d", caches.size(), lo, hi, total);
}

std::vector<int> ServeLocally(const std::vector<Request>& requests,
                              const std::vector<double>& arrival_s, int instances,
                              uint64_t capacity, const TtftModel& ttft, double gbps, bool by_prefix,
                              const std::string& policy, Baseline& b) {
  std::vector<CacheSim> caches;
  for (int k = 0; k < instances; ++k) {
    caches.push_back(*CacheSim::Create(policy, LocalShare(capacity, instances, k)));
  }
  b.detail = absl::StrFormat("%s, %s%s", CachesLabel(caches), policy.c_str(),
                             by_prefix ? ", by prefix" : "");
  auto estimate = [&](size_t i, int k) {
    return ttft.Seconds(0, caches[k].LeadingHits(requests[i]), requests[i].input_length, gbps);
  };
  auto serve = [&](size_t i, int k) {
    const Request& r = requests[i];
    const size_t hits = caches[k].LeadingHits(r);
    caches[k].Admit(r);
    b.hit_blocks.push_back(hits);
    b.ttft_s.push_back(ttft.Seconds(0, hits, r.input_length, gbps));
    return b.ttft_s.back();
  };
  QueueResult q = by_prefix ? QueueByFinish(arrival_s, instances, estimate, serve)
                            : Queue(arrival_s, instances, serve);
  b.queued_s = std::move(q.ttft_s);
  return std::move(q.instance);
}

}  // namespace

int RunLiveReplay(const std::vector<Request>& requests, const std::string& workload) {
  const int block_tokens = absl::GetFlag(FLAGS_block_tokens);
  auto model = FindModel(absl::GetFlag(FLAGS_model));
  if (!model.ok()) return Fail(model.status());
  auto tflops = FindGpuTflops(absl::GetFlag(FLAGS_gpu));
  if (!tflops.ok()) return Fail(tflops.status());
  auto scale = ParseScale(absl::GetFlag(FLAGS_kv_scale));
  if (!scale.ok()) return Fail(scale.status());
  const double mfu = absl::GetFlag(FLAGS_mfu);
  if (!(mfu > 0 && mfu <= 1)) return Fail(absl::InvalidArgumentError("--mfu must be in (0, 1]"));
  const int instances = absl::GetFlag(FLAGS_instances);
  const int nodes = absl::GetFlag(FLAGS_nodes);
  // Each instance is a thread and each node a process on this machine.
  if (instances < 1 || instances > 1024) {
    return Fail(absl::InvalidArgumentError(
        absl::StrCat("--instances must be between 1 and 1024, got ", instances)));
  }
  if (nodes < 1 || nodes > 64) {
    return Fail(
        absl::InvalidArgumentError(absl::StrCat("--nodes must be between 1 and 64, got ", nodes)));
  }
  const std::string policy = absl::GetFlag(FLAGS_policy);
  if (auto p = CacheSim::Create(policy, 1); !p.ok()) return Fail(p.status());
  // The plots' sweep runs after the replay: check its policies before the cluster starts.
  const std::vector<std::string> sweep_policies =
      absl::StrSplit(absl::GetFlag(FLAGS_policies), ',');
  if (!absl::GetFlag(FLAGS_plot_dir).empty()) {
    for (const std::string& p : sweep_policies) {
      if (absl::Status s = CheckSimPolicy(p, 1); !s.ok()) return Fail(s);
    }
  }
  for (const auto& [flag, gbps] : {std::pair{"--pool-gbps", absl::GetFlag(FLAGS_pool_gbps)},
                                   std::pair{"--local-gbps", absl::GetFlag(FLAGS_local_gbps)}}) {
    if (!(gbps > 0 && gbps < 1e6)) {  // 0 would make every transfer free
      return Fail(absl::InvalidArgumentError(
          absl::StrCat(flag, " must be a bandwidth in GB/s above 0, got ", gbps)));
    }
  }
  // A negative factor ran back to back, as if it were 0.
  if (const double speedup = absl::GetFlag(FLAGS_speedup); !(speedup >= 0 && speedup < 1e9)) {
    return Fail(absl::InvalidArgumentError(
        absl::StrCat("--speedup must be 0 (back to back) or above, got ", speedup)));
  }
  // The CSV and the plots are written after the replay: a path that cannot take them should
  // fail the run now, not after minutes of replay.
  if (const std::string csv = absl::GetFlag(FLAGS_csv); !csv.empty()) {
    if (absl::Status s = CheckCsvPath(csv); !s.ok()) return Fail(s);
  }
  if (const std::string dir = absl::GetFlag(FLAGS_plot_dir); !dir.empty()) {
    if (absl::Status s = CheckPlotDir(dir); !s.ok()) return Fail(s);
  }
  const bool own_cluster =
      absl::GetFlag(FLAGS_controller).empty() && absl::GetFlag(FLAGS_address).empty();
  // A cluster this replay starts holds whole blocks per node: round to a multiple of nodes.
  uint64_t capacity = absl::GetFlag(FLAGS_capacity);
  // 2^40 blocks of 4 KiB are 4 PiB: far past any machine, and far from overflowing below.
  if (capacity > (uint64_t{1} << 40)) {
    return Fail(absl::InvalidArgumentError(
        absl::StrCat("--capacity must be at most 2^40 blocks, got ", capacity)));
  }
  if (own_cluster) capacity = std::max<uint64_t>(1, (capacity + nodes / 2) / nodes) * nodes;
  if (capacity < static_cast<uint64_t>(instances)) {
    return Fail(absl::InvalidArgumentError("--capacity must be at least --instances blocks"));
  }

  const uint64_t kv_per_token = model->KvBytesPerToken();
  const uint64_t full_block = kv_per_token * block_tokens;
  // Stored blocks are whole 4 KiB pages: the pool's allocation granule.
  const uint64_t block_bytes = std::max<uint64_t>(
      4096, (static_cast<uint64_t>(std::ceil(full_block * *scale)) + 4095) & ~uint64_t{4095});
  if (block_bytes > (64ull << 20)) {
    return Fail(
        absl::InvalidArgumentError(absl::StrCat("a block of ", Bytes(block_bytes),
                                                " exceeds the nodes' 64 MiB value limit; lower "
                                                "--kv-scale")));
  }
  TtftModel ttft{PrefillModel::FromFlops(*model, *tflops, mfu), kv_per_token, block_tokens};
  const double pool_gbps = absl::GetFlag(FLAGS_pool_gbps) * model->gpus;
  const double local_gbps = absl::GetFlag(FLAGS_local_gbps) * model->gpus;

  // --- What this run is ---------------------------------------------------------------------
  const bool json = absl::GetFlag(FLAGS_json);
  std::FILE* info = json ? stderr : stdout;
  std::fprintf(info, "workload: %s: %zu requests, %d tokens per block\n", workload.c_str(),
               requests.size(), block_tokens);
  std::fprintf(info,
               "model: %s, KV %s per token (%d layers x %d KV heads x %d dims x K,V x bf16), "
               "%s per block\n",
               model->name.c_str(), Bytes(kv_per_token).c_str(), model->layers, model->kv_heads,
               model->head_dim, Bytes(full_block).c_str());
  std::fprintf(info,
               "kv-scale %s: blocks are stored and moved at %s (x%.6g of full size); a cluster "
               "of %llu blocks holds %s here and stands for %s of real KV cache; TTFTs use "
               "full-size bytes\n",
               absl::GetFlag(FLAGS_kv_scale).c_str(), Bytes(block_bytes).c_str(),
               static_cast<double>(block_bytes) / full_block,
               static_cast<unsigned long long>(capacity), Bytes(capacity * block_bytes).c_str(),
               Bytes(static_cast<double>(capacity) * full_block).c_str());
  std::fprintf(info,
               "prefill model: %d x %s (%.0f TFLOPS dense bf16) at MFU %.2f: %.3g us/token "
               "(2 x %.3g params) + %.3g ns per query-key pair (4 x %d layers x %d hidden); "
               "8k tokens from scratch = %.0f ms\n",
               model->gpus, absl::GetFlag(FLAGS_gpu).c_str(), *tflops, mfu,
               ttft.prefill.seconds_per_token * 1e6, model->params,
               ttft.prefill.seconds_per_pair * 1e9, model->layers, model->hidden,
               ttft.prefill.Seconds(8192, 0) * 1e3);
  std::fprintf(info,
               "TTFT = lookup (measured) + hit KV / bandwidth (pool %.0f GB/s, local %.0f GB/s "
               "per instance) + prefill(missed tokens); queueing is not included\n",
               pool_gbps, local_gbps);
  std::fflush(info);

  // --- The cluster --------------------------------------------------------------------------
  std::unique_ptr<LocalCluster> cluster;
  ClientOptions copts;
  std::string ns = ReplayNamespace(model->name);
  if (own_cluster) {
    const uint64_t per_node = capacity / nodes;
    const uint64_t pages = ((per_node + 1) * block_bytes + kPage - 1) / kPage;
    if (pages > static_cast<uint64_t>(std::numeric_limits<int>::max())) {
      return Fail(absl::InvalidArgumentError(
          absl::StrCat("--capacity ", capacity, " of ", Bytes(block_bytes), " blocks needs ",
                       Bytes(pages * kPage), " per node: lower --capacity or --kv-scale")));
    }
    // Watermarks at per_node + 1/2 blocks: the node evicts exactly when a block more would
    // not fit, so it holds per_node blocks like the simulator's cache of the same size.
    const double mark = (per_node + 0.5) * block_bytes / (pages * kPage);
    std::fprintf(info,
                 "cluster: controller + %d ems-node on loopback, %llu blocks each (%llu MiB "
                 "arena, watermark %.4f), policy %s\n",
                 nodes, static_cast<unsigned long long>(per_node),
                 static_cast<unsigned long long>(pages * 2), mark, policy.c_str());
    auto c = LocalCluster::Start(
        nodes, static_cast<int>(pages),
        {"--eviction_policy=" + policy, absl::StrFormat("--high_watermark=%.6f", mark),
         absl::StrFormat("--low_watermark=%.6f", mark), "--log_level=error"});
    if (!c.ok()) return Fail(c.status());
    cluster = *std::move(c);
    copts.controller = cluster->membership();
    copts.cluster = "bench";
  } else if (!absl::GetFlag(FLAGS_controller).empty()) {
    copts.controller = absl::GetFlag(FLAGS_controller);
    copts.cluster = absl::GetFlag(FLAGS_cluster);
    // A shared cluster: keep this run's keys apart from anything stored before.
    absl::StrAppend(&ns, "/", std::random_device{}());
  } else {
    copts.address = absl::GetFlag(FLAGS_address);
    absl::StrAppend(&ns, "/", std::random_device{}());
  }
  auto client = Client::Connect(copts);
  if (!client.ok()) return Fail(client.status());
  if (!own_cluster) {
    auto st = (*client)->Stats();
    if (st.ok()) {
      std::fprintf(info,
                   "cluster: %s, %s of arena = %llu blocks of %s (local caches and the "
                   "simulation use --capacity %llu)\n",
                   copts.controller.empty() ? copts.address.c_str() : copts.controller.c_str(),
                   Bytes(st->capacity_bytes()).c_str(),
                   static_cast<unsigned long long>(st->capacity_bytes() / block_bytes),
                   Bytes(block_bytes).c_str(), static_cast<unsigned long long>(capacity));
    }
  }
  std::fprintf(
      info, "replay: %d prefill instances, %s\n", instances,
      absl::GetFlag(FLAGS_speedup) > 0
          ? absl::StrFormat("trace timestamps / %.3g", absl::GetFlag(FLAGS_speedup)).c_str()
          : "back to back");
  std::fflush(info);

  // --- The run ------------------------------------------------------------------------------
  LiveOptions lo;
  lo.ns = ns;
  lo.block_bytes = block_bytes;
  lo.instances = instances;
  lo.speedup = absl::GetFlag(FLAGS_speedup);
  lo.progress = absl::GetFlag(FLAGS_progress);
  LiveResult live = RunLive(**client, requests, lo);
  // What cluster mode absorbs instead of failing a call (a read that timed out is a miss, a
  // put that reached no node is dropped): a node that died shows here, not as an error.
  const ClientCounters absorbed = (*client)->counters();
  live.bytes_written -= std::min(live.bytes_written, absorbed.put_drops * block_bytes);
  client->reset();
  // A node that did not stop cleanly fails the run, after the report: the figures of the
  // run are still worth having.
  absl::Status stopped;
  if (cluster != nullptr) {
    stopped = cluster->Stop();
    if (stopped.ok()) {
      std::fprintf(info,
                   "cluster: %d ems-node and the controller stopped cleanly (SIGTERM, status "
                   "0)\n",
                   nodes);
    } else {
      std::fprintf(info, "cluster: did not stop cleanly: %s\n", stopped.ToString().c_str());
    }
    cluster.reset();
  }

  // --- Baselines ----------------------------------------------------------------------------
  const size_t n = requests.size();
  Baseline none{"no-cache", "prefill everything", std::vector<size_t>(n, 0), {}};
  Baseline local{"local", "", {}, {}};  // ServeLocally says what its caches hold
  Baseline ems{"ems",
               absl::StrFormat("%llu blocks, %s, live", static_cast<unsigned long long>(capacity),
                               policy.c_str()),
               {},
               {}};
  CsvExtra extra;
  for (size_t i = 0; i < n; ++i) {
    const Request& r = requests[i];
    const LiveRecord& rec = live.records[i];
    ems.hit_blocks.push_back(rec.loaded);
    none.ttft_s.push_back(ttft.Seconds(0, 0, r.input_length, 0));
    ems.ttft_s.push_back(ttft.Seconds(rec.lookup_s, rec.loaded, r.input_length, pool_gbps));
    extra.instance.push_back(rec.instance);
    extra.lookup_ms.push_back(rec.lookup_s * 1e3);
    extra.get_ms.push_back(rec.get_s * 1e3);
    extra.put_ms.push_back(rec.put_s * 1e3);
    extra.late_ms.push_back(rec.late_s * 1e3);
  }
  // The queue model: requests arrive at their trace timestamps (the load the trace describes,
  // whatever --speedup paced the live run) and wait for the instance free first. A local
  // cache baseline uses the cache of the instance that model gives it, not of the thread that
  // happened to run it live on this machine.
  const int64_t t0_ms = requests.front().timestamp_ms;
  std::vector<double> arrival_s;
  for (const Request& r : requests) arrival_s.push_back((r.timestamp_ms - t0_ms) / 1e3);
  const double span_s = arrival_s.back();
  none.queued_s = Queue(arrival_s, instances, [&](size_t i, int) { return none.ttft_s[i]; }).ttft_s;
  ems.queued_s = Queue(arrival_s, instances, [&](size_t i, int) { return ems.ttft_s[i]; }).ttft_s;
  extra.local_instance = ServeLocally(requests, arrival_s, instances, capacity, ttft, local_gbps,
                                      /*by_prefix=*/false, policy, local);
  // The same local caches behind a cache-aware router: each request goes to the instance where
  // it would finish first, its cached prefix there weighed against the wait.
  Baseline routed{"routed", "", {}, {}};
  extra.routed_instance = ServeLocally(requests, arrival_s, instances, capacity, ttft, local_gbps,
                                       /*by_prefix=*/true, policy, routed);
  std::vector<Baseline> baselines = {none, local, routed, ems};
  constexpr size_t kEms = 3;  // index of the pool in `baselines` and `stats`
  std::vector<BaselineStats> stats;
  for (const Baseline& b : baselines) {
    stats.push_back(
        Summarize(b, requests, block_tokens, stats.empty() ? nullptr : &stats[0], instances));
  }
  auto sim = Simulate(requests, policy, capacity, block_tokens);
  if (!sim.ok()) return Fail(sim.status());
  // The cluster this run started, simulated block for block: its nodes' caches behind its ring.
  std::optional<Placement> cluster_placement;
  std::optional<SimResult> ring_sim;
  if (own_cluster && nodes > 1) {
    auto placement = LocalClusterPlacement(ns, nodes);
    if (!placement.ok()) return Fail(placement.status());
    cluster_placement = *std::move(placement);
    auto r = Simulate(requests, policy, capacity, block_tokens, *cluster_placement);
    if (!r.ok()) return Fail(r.status());
    ring_sim = *r;
  }

  // --- Report -------------------------------------------------------------------------------
  double lookup_sum = 0, get_sum = 0, put_sum = 0;
  for (const LiveRecord& r : live.records) {
    lookup_sum += r.lookup_s;
    get_sum += r.get_s;
    put_sum += r.put_s;
  }
  std::fprintf(info,
               "live: %.1f s, %llu blocks read back and verified (%s), %s written, %llu corrupt, "
               "%llu evicted between lookup and read, %llu errors%s%s\n",
               live.wall_s, static_cast<unsigned long long>(live.bytes_read / block_bytes),
               Bytes(live.bytes_read).c_str(), Bytes(live.bytes_written).c_str(),
               static_cast<unsigned long long>(live.corrupt_blocks),
               static_cast<unsigned long long>(live.raced_misses),
               static_cast<unsigned long long>(live.errors),
               live.first_error.empty() ? "" : ", first: ", live.first_error.c_str());
  if (absorbed.get_timeouts > 0 || absorbed.put_drops > 0) {
    std::fprintf(info,
                 "  the client absorbed %llu reads that timed out (counted as misses) and %llu "
                 "puts that reached no node (not written): was a node down?\n",
                 static_cast<unsigned long long>(absorbed.get_timeouts),
                 static_cast<unsigned long long>(absorbed.put_drops));
  }
  std::fprintf(info,
               "measured on this machine (scaled blocks, loopback): MatchPrefix mean %.3f ms, "
               "BatchGet %.1f MB/s, BatchPut %.1f MB/s\n",
               lookup_sum * 1e3 / std::max<size_t>(n, 1),
               get_sum > 0 ? live.bytes_read / get_sum / 1e6 : 0.0,
               put_sum > 0 ? live.bytes_written / put_sum / 1e6 : 0.0);
  const double live_ratio = stats[kEms].prefix_hit_ratio;
  std::fprintf(info,
               "simulated pool (same policy and capacity, --simulate): one cache of %llu "
               "blocks: prefix hit %.4f; live %.4f (%+.2f points)\n",
               static_cast<unsigned long long>(capacity), sim->prefix_hit_ratio, live_ratio,
               100 * (live_ratio - sim->prefix_hit_ratio));
  if (ring_sim) {
    // Partitioning, not only the policy, sets the hit ratio: near a cliff of the hit-ratio
    // curve, N caches of C/N behind a ring part from one cache of C (docs/replay.md).
    std::fprintf(info,
                 "  as this cluster, %d caches of %llu blocks behind its ring (--simulate "
                 "--simulate_nodes %d): prefix hit %.4f; live %+.2f points from it\n",
                 nodes, static_cast<unsigned long long>(capacity / nodes), nodes,
                 ring_sim->prefix_hit_ratio, 100 * (live_ratio - ring_sim->prefix_hit_ratio));
  }
  if (json) {
    PrintJson(stats);
    std::printf(
        "{\"live\":true,\"policy\":\"%s\",\"capacity_blocks\":%llu,"
        "\"prefix_hit_ratio\":%.4f,\"simulated_prefix_hit_ratio\":%.4f,"
        "\"simulated_ring_prefix_hit_ratio\":%s,"
        "\"corrupt_blocks\":%llu,\"errors\":%llu,\"raced_misses\":%llu,"
        "\"get_timeouts\":%llu,\"put_drops\":%llu,"
        "\"blocks_read\":%llu,\"block_bytes\":%llu}\n",
        policy.c_str(), static_cast<unsigned long long>(capacity), stats[kEms].prefix_hit_ratio,
        sim->prefix_hit_ratio,
        ring_sim ? absl::StrFormat("%.4f", ring_sim->prefix_hit_ratio).c_str() : "null",
        static_cast<unsigned long long>(live.corrupt_blocks),
        static_cast<unsigned long long>(live.errors),
        static_cast<unsigned long long>(live.raced_misses),
        static_cast<unsigned long long>(absorbed.get_timeouts),
        static_cast<unsigned long long>(absorbed.put_drops),
        static_cast<unsigned long long>(live.bytes_read / block_bytes),
        static_cast<unsigned long long>(block_bytes));
  } else {
    PrintTable(stats,
               absl::StrFormat("%d instances, requests arriving at their trace timestamps (%zu "
                               "over %.0f s, %.2f/s), each waiting for the instance free first "
                               "(routed: the one where it would finish first), which is then "
                               "busy for its TTFT above",
                               instances, n, span_s, span_s > 0 ? n / span_s : 0.0));
    std::printf(
        "TTFT saved = 1 - mean TTFT / mean TTFT without a cache. The EMS pool saves "
        "%.1f%% against %.1f%% for local caches of the same total size (%.1f%% routed by "
        "prefix); queued, %.1f%% against %.1f%% (%.1f%%).\n",
        100 * stats[kEms].savings, 100 * stats[1].savings, 100 * stats[2].savings,
        100 * stats[kEms].queued_savings, 100 * stats[1].queued_savings,
        100 * stats[2].queued_savings);
  }
  if (!absl::GetFlag(FLAGS_csv).empty()) {
    if (absl::Status s = WriteCsv(absl::GetFlag(FLAGS_csv), requests, baselines, extra); !s.ok()) {
      return Fail(s);
    }
    std::fprintf(info, "per-request CSV: %s\n", absl::GetFlag(FLAGS_csv).c_str());
  }
  if (!absl::GetFlag(FLAGS_plot_dir).empty()) {
    std::vector<SimResult> sweep;
    for (const std::string& p : sweep_policies) {
      for (double f : {0.125, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0}) {
        auto r = Simulate(requests, p, static_cast<size_t>(capacity * f), block_tokens);
        if (!r.ok()) return Fail(r.status());
        sweep.push_back(*r);
      }
    }
    if (cluster_placement) {
      // The live policy on this cluster's nodes: where the live point should sit.
      for (double f : {0.125, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0}) {
        auto r = Simulate(requests, policy, static_cast<size_t>(capacity * f), block_tokens,
                          *cluster_placement);
        if (!r.ok()) return Fail(r.status());
        r->policy = absl::StrCat(policy, ", ", nodes, " nodes");
        sweep.push_back(*r);
      }
    }
    auto images =
        WritePlots(absl::GetFlag(FLAGS_plot_dir), baselines, sweep, policy, capacity,
                   stats[kEms].prefix_hit_ratio, absl::StrCat(workload, ", ", model->name));
    if (!images.ok()) return Fail(images.status());
    for (const std::string& img : *images) std::fprintf(info, "plot: %s\n", img.c_str());
  }
  if (!stopped.ok()) return Fail(stopped);
  return live.corrupt_blocks == 0 && live.errors == 0 ? 0 : 1;
}

}  // namespace ems::bench
