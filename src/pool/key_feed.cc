#include "pool/key_feed.h"

#include <algorithm>

#include "absl/strings/str_cat.h"

namespace ems::pool {

KeyFeed::KeyFeed(size_t capacity) : ring_(std::max<size_t>(capacity, 1)) {}

void KeyFeed::Append(bool present, const std::string& ns, const Digest& digest) {
  absl::MutexLock lock(&mu_);
  Event& e = ring_[next_ % ring_.size()];
  e.seq = next_++;
  e.present = present;
  e.key.ns.assign(ns);  // reuses the slot's string: no allocation once the ring is warm
  e.key.digest = digest;
}

uint64_t KeyFeed::next() const {
  absl::MutexLock lock(&mu_);
  return next_;
}

absl::StatusOr<std::vector<KeyFeed::Event>> KeyFeed::Read(uint64_t from, size_t max,
                                                          absl::Duration wait) {
  absl::MutexLock lock(&mu_);
  auto ready = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return next_ > from; };
  mu_.AwaitWithTimeout(absl::Condition(&ready), wait);
  if (next_ > ring_.size() && from < next_ - ring_.size()) {
    return absl::OutOfRangeError(absl::StrCat("key feed: event ", from, " was overwritten (next ",
                                              next_, ", ", ring_.size(), " kept)"));
  }
  std::vector<Event> out;
  for (uint64_t seq = from; seq < next_ && out.size() < max; ++seq) {
    out.push_back(ring_[seq % ring_.size()]);
  }
  return out;
}

}  // namespace ems::pool
