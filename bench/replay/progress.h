// A progress bar on stderr for long replays: redrawn in place on a terminal, one line per 10%
// otherwise (logs stay readable).
#ifndef EMS_BENCH_REPLAY_PROGRESS_H_
#define EMS_BENCH_REPLAY_PROGRESS_H_

#include <atomic>
#include <cstdint>
#include <string>
#include <thread>

#include "absl/synchronization/notification.h"
#include "absl/time/time.h"

namespace ems::bench {

// Thread-safe Add; the bar is drawn by its own thread until destruction.
class ProgressBar {
 public:
  // Draws nothing when `enabled` is false.
  ProgressBar(std::string label, uint64_t total, bool enabled);
  ~ProgressBar();
  ProgressBar(const ProgressBar&) = delete;
  ProgressBar& operator=(const ProgressBar&) = delete;

  void Add(uint64_t n) { done_.fetch_add(n, std::memory_order_relaxed); }  // a counter only

 private:
  void Draw(bool final);

  const std::string label_;
  const uint64_t total_;
  const bool tty_;
  const absl::Time start_;
  std::atomic<uint64_t> done_{0};
  int last_decile_ = -1;  // drawing thread only
  absl::Notification stop_;
  std::thread drawer_;
};

}  // namespace ems::bench

#endif  // EMS_BENCH_REPLAY_PROGRESS_H_
