// Queueing: the TTFT a request sees when it arrives at its trace timestamp and waits for one of
// N prefill instances, each busy for the modeled TTFT of the request it serves. The live
// replay's instances do not sleep for their modeled prefill, so its own TTFTs are service
// times; this adds the wait the same load would cause on real GPUs.
#ifndef EMS_BENCH_REPLAY_QUEUE_H_
#define EMS_BENCH_REPLAY_QUEUE_H_

#include <cstddef>
#include <vector>

#include "absl/functional/function_ref.h"

namespace ems::bench {

struct QueueResult {
  std::vector<double> ttft_s;  // wait + service, per request
  std::vector<int> instance;   // the instance that served it
};

// First come, first served in request order: request i arrives at arrival_s[i] and goes to
// the instance that became free first (so idle instances take turns; the lowest index on a
// tie), which is then busy for service(i, instance) seconds. `service` is called once per
// request, in order, so it may depend on the instance (a cache per instance).
// REQUIRES: instances >= 1.
QueueResult Queue(const std::vector<double>& arrival_s, int instances,
                  absl::FunctionRef<double(size_t request, int instance)> service);

// Like Queue, but each request goes to the instance where it would finish first,
// max(arrival, free) + estimate(request, instance) (the earlier free one, then the lower index,
// on a tie): how a cache-aware scheduler (Mooncake's Conductor, a prefix-aware router) weighs
// a longer cached prefix on one instance against a shorter wait on another. `estimate` is
// called for every instance before `service` is called for the chosen one.
QueueResult QueueByFinish(const std::vector<double>& arrival_s, int instances,
                          absl::FunctionRef<double(size_t request, int instance)> estimate,
                          absl::FunctionRef<double(size_t request, int instance)> service);

}  // namespace ems::bench

#endif  // EMS_BENCH_REPLAY_QUEUE_H_
