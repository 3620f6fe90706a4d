// ems-bench replay: trace-driven hit ratios and TTFT. --simulate runs the pool's eviction
// policies offline over capacity × policy sweeps; without it the requests are replayed live
// (live_command.cc).
#include "replay/replay_command.h"

#include <cstdio>
#include <string>
#include <vector>

#include "absl/flags/declare.h"
#include "absl/flags/flag.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "harness/commands.h"
#include "replay/live.h"
#include "replay/live_command.h"
#include "replay/model.h"
#include "replay/simulate.h"
#include "replay/trace.h"

ABSL_FLAG(std::string, trace, "", "Mooncake-format JSONL trace to replay");
ABSL_FLAG(std::string, workload, "",
          "built-in synthetic workload instead of --trace: multiturn (docs/replay.md)");
ABSL_FLAG(bool, simulate, false, "offline: the pool's eviction code over capacity sweeps");
ABSL_FLAG(std::string, policies, "lru,s3fifo,prefix", "eviction policies to compare");
ABSL_FLAG(int, simulate_nodes, 1,
          "--simulate: 1 = one cache of each capacity; N = N caches of capacity/N behind the "
          "pool's hash ring, block for block as the N-node cluster a live replay starts");
ABSL_FLAG(std::string, capacities, "5000,10000,20000",
          "capacities in blocks (0 = unbounded, the ideal)");
ABSL_FLAG(uint64_t, limit, 0, "replay only the first N requests (0 = all)");
ABSL_FLAG(bool, strict, false, "a malformed trace line is fatal (default: reported and skipped)");
ABSL_FLAG(uint64_t, seed, 1, "seed of the synthetic workload");
ABSL_FLAG(int, sessions, 400, "sessions of the synthetic multi-turn workload");

ABSL_DECLARE_FLAG(std::string, model);  // live_command.cc: names the keys, so the ring

namespace ems::bench {

int RunReplay(int, char**) {
  std::vector<Request> requests;
  std::string workload;
  const int block_tokens = absl::GetFlag(FLAGS_block_tokens);
  if (block_tokens < 1) {
    std::fprintf(stderr, "replay: --block-tokens must be positive\n");
    return 2;
  }
  if (!absl::GetFlag(FLAGS_trace).empty()) {
    auto r = ReadMooncakeTrace(absl::GetFlag(FLAGS_trace), {.strict = absl::GetFlag(FLAGS_strict),
                                                            .limit = absl::GetFlag(FLAGS_limit),
                                                            .block_tokens = block_tokens});
    if (!r.ok()) {
      std::fprintf(stderr, "replay: %s\n", r.status().ToString().c_str());
      return 1;
    }
    requests = *std::move(r);
    workload = absl::GetFlag(FLAGS_trace);
    if (const size_t slash = workload.rfind('/'); slash != std::string::npos) {
      workload = workload.substr(slash + 1);
    }
  } else if (absl::GetFlag(FLAGS_workload) == "multiturn") {
    MultiturnOptions o;
    o.block_tokens = block_tokens;
    o.seed = absl::GetFlag(FLAGS_seed);
    o.sessions = absl::GetFlag(FLAGS_sessions);
    requests = GenerateMultiturn(o);
    if (absl::GetFlag(FLAGS_limit) > 0 && requests.size() > absl::GetFlag(FLAGS_limit)) {
      requests.resize(absl::GetFlag(FLAGS_limit));
    }
    workload = absl::StrCat("multiturn (", o.sessions, " sessions of ", o.turns, " turns, seed ",
                            o.seed, ")");
  } else {
    std::fprintf(stderr, "replay: give --trace FILE or --workload multiturn\n");
    return 2;
  }
  if (requests.empty()) {
    std::fprintf(stderr, "replay: no requests to replay\n");
    return 2;
  }
  if (!absl::GetFlag(FLAGS_simulate)) return RunLiveReplay(requests, workload);
  std::vector<size_t> capacities;
  for (absl::string_view c : absl::StrSplit(absl::GetFlag(FLAGS_capacities), ',')) {
    size_t v = 0;
    if (!absl::SimpleAtoi(c, &v)) {
      std::fprintf(stderr, "replay: bad --capacities entry '%s'\n", std::string(c).c_str());
      return 2;
    }
    capacities.push_back(v);
  }
  const int sim_nodes = absl::GetFlag(FLAGS_simulate_nodes);
  // The ring holds 2,048 points per node: 1,024 nodes are 2M points, built in about a second.
  if (sim_nodes < 1 || sim_nodes > 1024) {
    std::fprintf(stderr, "replay: --simulate_nodes must be between 1 and 1024, got %d\n",
                 sim_nodes);
    return 2;
  }
  Placement placement;
  if (sim_nodes > 1) {
    auto model = FindModel(absl::GetFlag(FLAGS_model));
    auto p = model.ok() ? LocalClusterPlacement(ReplayNamespace(model->name), sim_nodes)
                        : absl::StatusOr<Placement>(model.status());
    if (!p.ok()) {
      std::fprintf(stderr, "replay: %s\n", p.status().ToString().c_str());
      return 2;
    }
    placement = *std::move(p);
  }
  // Every policy is checked before the first case runs: a typo in the last of a sweep's
  // policies should not surface after the others have run for minutes.
  const std::vector<std::string> policies = absl::StrSplit(absl::GetFlag(FLAGS_policies), ',');
  for (const std::string& p : policies) {
    if (absl::Status s = CheckSimPolicy(p, sim_nodes); !s.ok()) {
      std::fprintf(stderr, "replay: %s\n", s.ToString().c_str());
      return 2;
    }
  }
  const bool json = absl::GetFlag(FLAGS_json);
  if (!json) {
    std::printf("%zu requests, block %d tokens, %s\n%-8s %10s %10s %10s %10s\n", requests.size(),
                block_tokens,
                sim_nodes == 1 ? "one cache"
                               : absl::StrCat(sim_nodes, " caches behind the pool's ring").c_str(),
                "policy", "capacity", "per_block", "prefix", "token");
  }
  for (const std::string& p : policies) {
    for (size_t cap : capacities) {
      auto r = Simulate(requests, p, cap, block_tokens, placement);
      if (!r.ok()) {
        std::fprintf(stderr, "replay: %s\n", r.status().ToString().c_str());
        return 2;
      }
      if (json) {
        std::printf(
            "{\"policy\":\"%s\",\"capacity_blocks\":%zu,\"per_block_hit_ratio\":%.4f,"
            "\"prefix_hit_ratio\":%.4f,\"token_prefix_hit_ratio\":%.4f,"
            "\"requests\":%llu,\"blocks\":%llu,\"nodes\":%d}\n",
            r->policy.c_str(), cap, r->per_block_hit_ratio, r->prefix_hit_ratio,
            r->token_prefix_hit_ratio, static_cast<unsigned long long>(r->requests),
            static_cast<unsigned long long>(r->blocks), sim_nodes);
      } else {
        std::printf("%-8s %10zu %10.4f %10.4f %10.4f\n", r->policy.c_str(), cap,
                    r->per_block_hit_ratio, r->prefix_hit_ratio, r->token_prefix_hit_ratio);
      }
      std::fflush(stdout);
    }
  }
  return 0;
}

}  // namespace ems::bench
