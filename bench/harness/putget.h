// The store-and-verify loop of `ems-bench putget`, on any Client.
#ifndef EMS_BENCH_HARNESS_PUTGET_H_
#define EMS_BENCH_HARNESS_PUTGET_H_

#include <cstdint>
#include <vector>

#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "client/client.h"
#include "common/key.h"
#include "harness/stats.h"

namespace ems::bench {

// What storing and reading back a prompt's blocks did. The times are spent in the client's
// calls only: making each block's bytes and checking what was read are the harness's work,
// not the store's (timed with them, a read of 2 MiB over loopback once showed half its GB/s).
struct StoreAndVerifyResult {
  absl::Status put_error;  // the first failed put (the loop stops there), naming the block
  absl::Duration put_time, get_time;
  LatencyRecorder put_latency, get_latency;
  absl::StatusOr<size_t> matched = 0;  // MatchPrefix over the whole prompt after the puts
  int missing = 0;                     // reads that failed
  int wrong = 0;                       // reads with other bytes than were put
};

// Puts block i of `keys` (parent: block i - 1) with `block_bytes` bytes of its own pattern,
// asks MatchPrefix over all of them, then reads each back and checks every byte. `now` is the
// clock the calls are timed by (a test's own, to check what is timed without timing anything).
StoreAndVerifyResult StoreAndVerify(Client& client, const std::vector<BlockKey>& keys,
                                    uint64_t block_bytes,
                                    absl::FunctionRef<absl::Time()> now = absl::Now);

}  // namespace ems::bench

#endif  // EMS_BENCH_HARNESS_PUTGET_H_
