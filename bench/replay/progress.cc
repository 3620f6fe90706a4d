#include "replay/progress.h"

#include <unistd.h>

#include <algorithm>
#include <cstdio>

#include "absl/time/clock.h"

namespace ems::bench {

ProgressBar::ProgressBar(std::string label, uint64_t total, bool enabled)
    : label_(std::move(label)),
      total_(std::max<uint64_t>(total, 1)),
      tty_(isatty(STDERR_FILENO) != 0),
      start_(absl::Now()) {
  if (!enabled) return;
  drawer_ = std::thread([this] {
    while (!stop_.WaitForNotificationWithTimeout(absl::Milliseconds(250))) Draw(false);
    Draw(true);
  });
}

ProgressBar::~ProgressBar() {
  stop_.Notify();
  if (drawer_.joinable()) drawer_.join();
}

void ProgressBar::Draw(bool final) {
  const uint64_t done = std::min(done_.load(std::memory_order_relaxed), total_);
  const double frac = static_cast<double>(done) / total_;
  const int decile = static_cast<int>(frac * 10);
  if (!tty_ && !final && decile == last_decile_) return;
  last_decile_ = decile;
  constexpr int kWidth = 30;
  const int fill = static_cast<int>(frac * kWidth);
  std::string bar(fill, '#');
  bar.resize(kWidth, '.');
  const double secs = absl::ToDoubleSeconds(absl::Now() - start_);
  const double eta = done > 0 ? secs * (total_ - done) / done : 0;
  std::fprintf(stderr, "%s%s [%s] %llu/%llu %5.1f%%  %.0fs elapsed, ~%.0fs left%s",
               tty_ ? "\r" : "", label_.c_str(), bar.c_str(), static_cast<unsigned long long>(done),
               static_cast<unsigned long long>(total_), 100 * frac, secs, eta,
               tty_ && !final ? "" : "\n");
  std::fflush(stderr);
}

}  // namespace ems::bench
