#include "replay/queue.h"

#include <algorithm>

namespace ems::bench {

QueueResult Queue(const std::vector<double>& arrival_s, int instances,
                  absl::FunctionRef<double(size_t request, int instance)> service) {
  QueueResult r;
  r.ttft_s.reserve(arrival_s.size());
  r.instance.reserve(arrival_s.size());
  std::vector<double> free_at(std::max(instances, 1), 0.0);
  for (size_t i = 0; i < arrival_s.size(); ++i) {
    // A linear scan: instances are few, and it keeps the tie rule obvious.
    const int k =
        static_cast<int>(std::min_element(free_at.begin(), free_at.end()) - free_at.begin());
    const double start = std::max(arrival_s[i], free_at[k]);
    free_at[k] = start + service(i, k);
    r.ttft_s.push_back(free_at[k] - arrival_s[i]);
    r.instance.push_back(k);
  }
  return r;
}

}  // namespace ems::bench
