// Results of a live replay: per-baseline statistics, the summary table, the per-request CSV
// and gnuplot plots.
#ifndef EMS_BENCH_REPLAY_REPORT_H_
#define EMS_BENCH_REPLAY_REPORT_H_

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "replay/simulate.h"
#include "replay/trace.h"

namespace ems::bench {

// One way of serving the requests, per request: the prefix hit (blocks), the TTFT, and the
// TTFT with the wait for an instance at the trace's arrival times (replay/queue.h).
struct Baseline {
  std::string name;    // short: no-cache, local, ems
  std::string detail;  // for the table: "3 x 333 blocks, lru"
  std::vector<size_t> hit_blocks;
  std::vector<double> ttft_s;
  std::vector<double> queued_s;
};

struct BaselineStats {
  std::string name;
  std::string detail;
  double prefix_hit_ratio = 0;  // hit blocks / blocks
  double token_hit_ratio = 0;   // hit tokens / input tokens
  double mean_ms = 0, p50_ms = 0, p90_ms = 0, p99_ms = 0;
  double savings = 0;  // 1 - mean TTFT / mean TTFT without a cache (0 for that baseline)
  // The same with queueing.
  double queued_mean_ms = 0, queued_p50_ms = 0, queued_p90_ms = 0, queued_p99_ms = 0;
  double queued_savings = 0;
  // Offered load: the TTFTs summed over the instances' time from the first arrival to the
  // last. At 1 or more the instances cannot keep up and the wait grows with the run.
  double load = 0;
};

// `reference`: the no-cache baseline's stats (savings are relative to its means; null = none).
BaselineStats Summarize(const Baseline& b, const std::vector<Request>& requests, int block_tokens,
                        const BaselineStats* reference, int instances);

// `queue`: what the queued table's heading says about the queue model.
void PrintTable(const std::vector<BaselineStats>& stats, const std::string& queue);
void PrintJson(const std::vector<BaselineStats>& stats);

// One row per request: its shape, each baseline's hit blocks and TTFT, and the live timings.
struct CsvExtra {
  std::vector<int> instance;         // live: the thread that ran it
  std::vector<int> local_instance;   // the queue model's instance, whose local cache it used
  std::vector<int> routed_instance;  // the same for the cache-aware router
  std::vector<double> lookup_ms, get_ms, put_ms, late_ms;
};
// OK if WriteCsv could create `path` now (its directories are created, and a file is made in
// the last and removed); otherwise an error naming --csv and the path. For a run to check
// before it starts, not after the replay.
absl::Status CheckCsvPath(const std::string& path);
absl::Status WriteCsv(const std::string& path, const std::vector<Request>& requests,
                      const std::vector<Baseline>& baselines, const CsvExtra& extra);

// Writes into `dir` (created if needed): ttft_cdf.{dat,gp,png,svg} from `baselines` and
// hit_ratio.{dat,gp,png,svg} from `sweep` (prefix hit ratio vs capacity, one line per policy;
// `live_*` marks the live run's point). Returns the paths of the images written.
// The same for WritePlots' `dir`, named as --plot-dir.
absl::Status CheckPlotDir(const std::string& dir);
absl::StatusOr<std::vector<std::string>> WritePlots(const std::string& dir,
                                                    const std::vector<Baseline>& baselines,
                                                    const std::vector<SimResult>& sweep,
                                                    const std::string& live_policy,
                                                    size_t live_capacity, double live_ratio,
                                                    const std::string& title);

}  // namespace ems::bench

#endif  // EMS_BENCH_REPLAY_REPORT_H_
