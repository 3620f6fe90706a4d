// Latency recording for the harnesses: collects samples, answers percentiles.
#ifndef EMS_BENCH_HARNESS_STATS_H_
#define EMS_BENCH_HARNESS_STATS_H_

#include <algorithm>
#include <cmath>
#include <vector>

#include "absl/time/time.h"

namespace ems::bench {

// Nearest-rank percentile of ascending `sorted`: the smallest sample with at least p% of the
// samples at or below it (p50 of 1..10 is 5, p90 is 9); 0 for no samples.
inline double NearestRank(const std::vector<double>& sorted, double p) {
  if (sorted.empty()) return 0;
  const double rank = std::ceil(p / 100.0 * static_cast<double>(sorted.size()));
  const size_t index = rank < 1 ? 0 : static_cast<size_t>(rank) - 1;
  return sorted[std::min(index, sorted.size() - 1)];
}

// Not thread-safe: one recorder per thread, merged with Merge.
class LatencyRecorder {
 public:
  void Add(absl::Duration d) { us_.push_back(absl::ToDoubleMicroseconds(d)); }
  void Merge(const LatencyRecorder& other) {
    us_.insert(us_.end(), other.us_.begin(), other.us_.end());
  }
  size_t count() const { return us_.size(); }
  // Nearest-rank percentile in microseconds; 0 with no samples.
  double PercentileUs(double p) const {
    std::vector<double> sorted = us_;
    std::sort(sorted.begin(), sorted.end());
    return NearestRank(sorted, p);
  }

 private:
  std::vector<double> us_;
};

}  // namespace ems::bench

#endif  // EMS_BENCH_HARNESS_STATS_H_
