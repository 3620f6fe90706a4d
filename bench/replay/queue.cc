#include "replay/queue.h"

#include <algorithm>

namespace ems::bench {

QueueResult Queue(const std::vector<double>& arrival_s, int instances,
                  absl::FunctionRef<double(size_t request, int instance)> service) {
  // With no estimate every free instance finishes a request at its arrival, and the tie goes
  // to the one free first: the instance that became free first.
  return QueueByFinish(
      arrival_s, instances, [](size_t, int) { return 0.0; }, service);
}

QueueResult QueueByFinish(const std::vector<double>& arrival_s, int instances,
                          absl::FunctionRef<double(size_t request, int instance)> estimate,
                          absl::FunctionRef<double(size_t request, int instance)> service) {
  QueueResult r;
  r.ttft_s.reserve(arrival_s.size());
  r.instance.reserve(arrival_s.size());
  std::vector<double> free_at(std::max(instances, 1), 0.0);
  for (size_t i = 0; i < arrival_s.size(); ++i) {
    int best = 0;
    double best_finish = 0;
    for (int k = 0; k < static_cast<int>(free_at.size()); ++k) {
      const double finish = std::max(arrival_s[i], free_at[k]) + estimate(i, k);
      if (k == 0 || finish < best_finish || (finish == best_finish && free_at[k] < free_at[best])) {
        best = k;
        best_finish = finish;
      }
    }
    const double start = std::max(arrival_s[i], free_at[best]);
    free_at[best] = start + service(i, best);
    r.ttft_s.push_back(free_at[best] - arrival_s[i]);
    r.instance.push_back(best);
  }
  return r;
}

}  // namespace ems::bench
