// The live mode of `ems-bench replay`: cluster set-up, the three baselines, the report.
#ifndef EMS_BENCH_REPLAY_LIVE_COMMAND_H_
#define EMS_BENCH_REPLAY_LIVE_COMMAND_H_

#include <string>
#include <vector>

#include "replay/trace.h"

namespace ems::bench {

// Returns the process exit code. `workload` describes the requests for the report.
int RunLiveReplay(const std::vector<Request>& requests, const std::string& workload);

}  // namespace ems::bench

#endif  // EMS_BENCH_REPLAY_LIVE_COMMAND_H_
