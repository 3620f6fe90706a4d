#include "client/key_mirror.h"

#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <vector>

#include "absl/strings/str_cat.h"
#include "bulk/wire.h"
#include "spdlog/spdlog.h"

namespace ems::client {
namespace {

constexpr absl::Duration kFirstRetry = absl::Milliseconds(100);
constexpr absl::Duration kLastRetry = absl::Seconds(2);

}  // namespace

KeyMirror::KeyMirror(BulkChannel* channel) : channel_(channel), thread_([this] { Run(); }) {}

KeyMirror::~KeyMirror() {
  {
    absl::MutexLock lock(&mu_);
    stop_ = true;
    if (fd_ >= 0) shutdown(fd_, SHUT_RDWR);  // wakes the blocked read
  }
  thread_.join();
}

std::optional<bool> KeyMirror::Contains(const BlockKey& key) const {
  absl::ReaderMutexLock lock(&mu_);
  if (!synced_) return std::nullopt;
  if (keys_.contains(key)) return true;
  if (noted_.empty()) return false;
  auto it = noted_.find(key);
  return it != noted_.end() && absl::Now() < it->second;
}

void KeyMirror::NoteStored(const BlockKey& key) {
  absl::MutexLock lock(&mu_);
  if (synced_) noted_[key] = absl::Now() + kStaleAfter;
}

void KeyMirror::NoteRemoved(const BlockKey& key) {
  absl::MutexLock lock(&mu_);
  keys_.erase(key);
  noted_.erase(key);
}

void KeyMirror::Run() {
  absl::Duration retry = kFirstRetry;
  const std::string peer = absl::StrCat(channel_->options().host, ":", channel_->options().port);
  while (true) {
    // Bounded by kStaleAfter, not the client's call timeout: a node that cannot answer
    // within it would be stale anyway, and a mirror being destroyed waits no longer.
    auto fd = channel_->Open(kStaleAfter);
    absl::Status s = fd.status();
    if (fd.ok()) {
      {
        absl::MutexLock lock(&mu_);
        if (stop_) {
          close(*fd);
          return;
        }
        fd_ = *fd;
      }
      s = Follow(*fd);
      absl::MutexLock lock(&mu_);
      fd_ = -1;
      close(*fd);
    }
    {
      absl::MutexLock lock(&mu_);
      // Out of step from here until a new snapshot: lookups go to the node.
      if (synced_) retry = kFirstRetry;
      synced_ = false;
      keys_.clear();
      noted_.clear();
      if (stop_) return;
      spdlog::debug("key mirror of {}: {}; again in {}", peer, s.ToString(),
                    absl::FormatDuration(retry));
      auto stopping = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return stop_; };
      if (mu_.AwaitWithTimeout(absl::Condition(&stopping), retry)) return;
    }
    retry = std::min(retry * 2, kLastRetry);
  }
}

absl::Status KeyMirror::Follow(int fd) {
  // The node speaks at least every kWatchIdleInterval; `fd` was opened with kStaleAfter as its
  // receive timeout, so longer silence ends the stream, and with it the mirror's answers.
  bulk::RequestHeader h;
  h.op = static_cast<uint8_t>(bulk::Op::kWatchKeys);
  if (absl::Status s = bulk::WriteAll(fd, &h, sizeof(h)); !s.ok()) return s;
  bulk::Reader in(fd);
  bulk::ResponseHeader rh;
  if (absl::Status s = in.Read(&rh, sizeof(rh)); !s.ok()) return s;
  if (rh.code != 0) {
    std::string message(std::min(rh.message_bytes, bulk::kMaxMessageBytes), '\0');
    in.Read(message.data(), message.size()).IgnoreError();
    return absl::Status(static_cast<absl::StatusCode>(rh.code), message);
  }
  absl::flat_hash_set<BlockKey> snapshot;
  bool synced = false;
  std::vector<BlockKey> keys;
  while (true) {
    bulk::WatchFrame f;
    if (absl::Status s = in.Read(&f, sizeof(f)); !s.ok()) return s;
    if (f.count > bulk::kWatchFrameKeys) {
      return absl::DataLossError(absl::StrCat("key stream: a frame of ", f.count, " keys"));
    }
    keys.clear();
    for (uint32_t i = 0; i < f.count; ++i) {
      auto key = in.ReadKey();
      if (!key.ok()) return key.status();
      keys.push_back(*std::move(key));
    }
    switch (static_cast<bulk::WatchKind>(f.kind)) {
      case bulk::WatchKind::kSnapshot:
        if (synced) return absl::DataLossError("key stream: a snapshot after kSynced");
        for (BlockKey& k : keys) snapshot.insert(std::move(k));
        break;
      case bulk::WatchKind::kSynced: {
        absl::MutexLock lock(&mu_);
        keys_ = std::move(snapshot);
        synced_ = synced = true;
        break;
      }
      case bulk::WatchKind::kAdded:
      case bulk::WatchKind::kRemoved: {
        const bool added = static_cast<bulk::WatchKind>(f.kind) == bulk::WatchKind::kAdded;
        if (!synced) return absl::DataLossError("key stream: a change before kSynced");
        absl::MutexLock lock(&mu_);
        for (BlockKey& k : keys) {
          noted_.erase(k);
          if (added) {
            keys_.insert(std::move(k));
          } else {
            keys_.erase(k);
          }
        }
        break;
      }
      case bulk::WatchKind::kIdle:
        break;
      default:
        return absl::DataLossError(absl::StrCat("key stream: frame kind ", f.kind));
    }
    // Notes the stream never confirmed lapse: drop them now and then.
    absl::MutexLock lock(&mu_);
    const absl::Time now = absl::Now();
    if (!noted_.empty() && now - noted_swept_ >= kStaleAfter) {
      absl::erase_if(noted_, [now](const auto& n) { return n.second <= now; });
      noted_swept_ = now;
    }
  }
}

}  // namespace ems::client
