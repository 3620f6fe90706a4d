#include "pool/key_feed.h"

#include <algorithm>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"

namespace ems::pool {

KeyFeed::KeyFeed(size_t capacity, NamespaceName ns_name)
    : ns_name_(std::move(ns_name)), ring_(std::max<size_t>(capacity, 1)) {}

void KeyFeed::Append(bool present, uint32_t ns, const Digest& digest) {
  absl::MutexLock lock(&mu_);
  Entry& e = ring_[next_ % ring_.size()];
  e.seq = next_++;
  e.ns = ns;
  e.present = present;
  e.digest = digest;
}

uint64_t KeyFeed::next() const {
  absl::MutexLock lock(&mu_);
  return next_;
}

absl::StatusOr<std::vector<KeyFeed::Event>> KeyFeed::Read(uint64_t from, size_t max,
                                                          absl::Duration wait) {
  std::vector<Entry> entries;
  {
    absl::MutexLock lock(&mu_);
    auto ready = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return next_ > from; };
    mu_.AwaitWithTimeout(absl::Condition(&ready), wait);
    if (next_ > ring_.size() && from < next_ - ring_.size()) {
      return absl::OutOfRangeError(absl::StrCat("key feed: event ", from, " was overwritten (next ",
                                                next_, ", ", ring_.size(), " kept)"));
    }
    for (uint64_t seq = from; seq < next_ && entries.size() < max; ++seq) {
      entries.push_back(ring_[seq % ring_.size()]);
    }
  }
  // Names outside the lock; a batch names few namespaces, each once.
  absl::flat_hash_map<uint32_t, std::string> names;
  std::vector<Event> out;
  out.reserve(entries.size());
  for (const Entry& e : entries) {
    auto it = names.find(e.ns);
    if (it == names.end()) it = names.emplace(e.ns, ns_name_(e.ns)).first;
    out.push_back(Event{e.seq, e.present, BlockKey{it->second, e.digest}});
  }
  return out;
}

}  // namespace ems::pool
