// Latency recording for the harnesses: collects samples, answers percentiles.
#ifndef EMS_BENCH_HARNESS_STATS_H_
#define EMS_BENCH_HARNESS_STATS_H_

#include <algorithm>
#include <vector>

#include "absl/time/time.h"

namespace ems::bench {

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
    if (us_.empty()) return 0;
    std::vector<double> sorted = us_;
    std::sort(sorted.begin(), sorted.end());
    size_t rank = static_cast<size_t>(p / 100.0 * sorted.size());
    return sorted[std::min(rank, sorted.size() - 1)];
  }

 private:
  std::vector<double> us_;
};

}  // namespace ems::bench

#endif  // EMS_BENCH_HARNESS_STATS_H_
