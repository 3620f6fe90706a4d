// LocalChannel's reads: through the node's shared block directory with no round trip, or
// leased by the node; and the batched reports of directory reads that keep its recency true.
#include <algorithm>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "client/local_channel.h"
#include "common/key_proto.h"
#include "common/prefix_hash.h"

namespace ems::client {
namespace {

// Directory reads are reported per this many blocks, or after kReportDelay: a send per read
// cost a 2 MiB local read half its speed (the node's wake-up), and recency only needs the
// reads before the next eviction (writes carry the pending report; see the class comment).
constexpr int kReportBatch = 32;
constexpr absl::Duration kReportDelay = absl::Milliseconds(2);

}  // namespace

LocalChannel::DirectoryRead LocalChannel::ReadThroughDirectory(
    const BlockKey& key, absl::Span<uint8_t> buf, absl::StatusOr<size_t>* result) const {
  directory::Hit hit;
  if (!directory_->Find(directory::NamespaceHash(key.ns), key.digest, &hit)) {
    if (!directory_->complete()) return DirectoryRead::kAsk;  // it may be one left out
    *result = absl::NotFoundError(absl::StrCat("key ", key.ToString(), " not found"));
    return DirectoryRead::kMiss;
  }
  // Never touch memory on the directory's word alone; the node answers for a bad entry.
  if (hit.offset > arena_bytes_ || hit.size > arena_bytes_ - hit.offset) return DirectoryRead::kAsk;
  if (hit.size > buf.size()) {
    *result = absl::OutOfRangeError(absl::StrCat("block ", key.ToString(), " is ", hit.size,
                                                 " bytes; the buffer holds ", buf.size()));
    return DirectoryRead::kFailed;
  }
  const uint8_t* block = base_ + hit.offset;
  uint64_t sum = 0;
  if (verify_) {
    sum = CopyAndChecksum(buf.data(), block, hit.size);
  } else {
    std::memcpy(buf.data(), block, hit.size);
  }
  // Evicted or removed while we copied: its space may have been rewritten. Ask the node.
  if (!directory::Reader::StillValid(hit)) return DirectoryRead::kAsk;
  if (verify_ && sum != hit.checksum) {
    *result = absl::DataLossError(
        absl::StrCat("block ", key.ToString(), " failed its checksum on the local path"));
    return DirectoryRead::kFailed;
  }
  *result = hit.size;
  return DirectoryRead::kRead;
}

void LocalChannel::QueueReads(const std::vector<const BlockKey*>& hits, uint64_t misses) {
  if (hits.empty() && misses == 0) return;
  v1::LocalReadReport full;
  {
    absl::MutexLock lock(&report_mu_);
    for (const BlockKey* k : hits) ToProto(*k, pending_.add_hits());
    pending_.set_misses(pending_.misses() + misses);
    if (pending_.hits_size() < kReportBatch) return;  // the flusher or the next write sends it
    full.Swap(&pending_);
  }
  SendReport(full);
}

bool LocalChannel::TakeReport(v1::LocalReadReport* report) {
  absl::MutexLock lock(&report_mu_);
  if (pending_.hits_size() == 0 && pending_.misses() == 0) return false;
  report->Swap(&pending_);
  return true;
}

void LocalChannel::SendReport(const v1::LocalReadReport& report) {
  auto conn = Borrow();
  if (!conn.ok()) return;  // recency and statistics only: a lost report loses no data
  // In messages of kItemsPerRequest keys, as requests are: one batch read through the directory
  // (a long prompt's blocks) made a report that no socket message could hold, and the node saw
  // none of those reads.
  const int hits = report.hits_size();
  const int per_message = static_cast<int>(kItemsPerRequest);
  for (int first = 0; first == 0 || first < hits; first += per_message) {
    v1::LocalRequest req;
    v1::LocalReadReport* part = req.mutable_read_report();
    if (first == 0) part->set_misses(report.misses());
    for (int i = first; i < std::min(hits, first + per_message); ++i) {
      *part->add_hits() = report.hits(i);
    }
    SendNoReply(**conn, req);
    if ((**conn).broken) return;
  }
}

void LocalChannel::FlushLoop() {
  while (true) {
    {
      absl::MutexLock lock(&report_mu_);
      auto ready = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(report_mu_) {
        return stopping_ || pending_.hits_size() > 0 || pending_.misses() > 0;
      };
      report_mu_.Await(absl::Condition(&ready));
      if (stopping_) return;
      // Let a batch gather; a stop cuts the wait short.
      report_mu_.AwaitWithTimeout(absl::Condition(&stopping_), kReportDelay);
    }
    v1::LocalReadReport report;
    if (TakeReport(&report)) SendReport(report);
  }
}

std::vector<absl::StatusOr<size_t>> LocalChannel::BatchGet(
    absl::Span<const BlockKey> keys, absl::Span<const absl::Span<uint8_t>> buffers) {
  std::vector<absl::StatusOr<size_t>> out(keys.size(), absl::InternalError("not read"));
  if (buffers.size() != keys.size()) {
    for (auto& o : out) {
      o = absl::InvalidArgumentError(
          absl::StrCat("batch get of ", keys.size(), " keys got ", buffers.size(), " buffers"));
    }
    return out;
  }
  std::vector<size_t> ask;  // items only the node can answer
  if (directory_ == nullptr || !node_alive()) {
    for (size_t i = 0; i < keys.size(); ++i) ask.push_back(i);
  } else {
    std::vector<const BlockKey*> hits;
    uint64_t misses = 0;
    for (size_t i = 0; i < keys.size(); ++i) {
      switch (ReadThroughDirectory(keys[i], buffers[i], &out[i])) {
        case DirectoryRead::kRead:
          hits.push_back(&keys[i]);
          break;
        case DirectoryRead::kMiss:
          ++misses;
          break;
        case DirectoryRead::kFailed:
          break;
        case DirectoryRead::kAsk:
          ask.push_back(i);
          break;
      }
    }
    counters_.directory_reads.fetch_add(keys.size() - ask.size(), std::memory_order_relaxed);
    QueueReads(hits, misses);
  }
  if (!ask.empty()) GetLeased(keys, buffers, ask, out);
  return out;
}

void LocalChannel::GetLeased(absl::Span<const BlockKey> keys,
                             absl::Span<const absl::Span<uint8_t>> buffers,
                             const std::vector<size_t>& idx,
                             std::vector<absl::StatusOr<size_t>>& out) {
  counters_.leased_reads.fetch_add(idx.size(), std::memory_order_relaxed);
  auto conn = Borrow();
  if (!conn.ok()) {
    for (size_t i : idx) out[i] = conn.status();
    return;
  }
  for (size_t first = 0; first < idx.size(); first += kItemsPerRequest) {
    ReadLeased(**conn, keys, buffers, absl::MakeConstSpan(idx).subspan(first, kItemsPerRequest),
               out);
  }
}

void LocalChannel::ReadLeased(Conn& c, absl::Span<const BlockKey> keys,
                              absl::Span<const absl::Span<uint8_t>> buffers,
                              absl::Span<const size_t> idx,
                              std::vector<absl::StatusOr<size_t>>& out) {
  v1::LocalRequest req;
  for (size_t i : idx) ToProto(keys[i], req.mutable_read()->add_keys());
  auto resp = CountedRoundTrip(c, req);
  if (!resp.ok() || resp->grants_size() != static_cast<int>(idx.size())) {
    absl::Status s = resp.ok() ? absl::InternalError("local node answered a different key count")
                               : resp.status();
    for (size_t i : idx) out[i] = s;
    return;
  }
  std::vector<uint64_t> leases;
  for (size_t j = 0; j < idx.size(); ++j) {
    const size_t i = idx[j];
    const v1::LocalGrant& g = resp->grants(static_cast<int>(j));
    if (absl::Status s = GrantStatus(g); !s.ok()) {
      out[i] = s;
      continue;
    }
    leases.push_back(g.lease());
    auto block = Block(g);
    if (!block.ok()) {
      out[i] = block.status();
    } else if (block->size() > buffers[i].size()) {
      out[i] =
          absl::OutOfRangeError(absl::StrCat("block ", keys[i].ToString(), " is ", block->size(),
                                             " bytes; the buffer holds ", buffers[i].size()));
    } else {
      if (verify_ &&
          CopyAndChecksum(buffers[i].data(), block->data(), block->size()) != g.checksum()) {
        out[i] = absl::DataLossError(
            absl::StrCat("block ", keys[i].ToString(), " failed its checksum on the local path"));
      } else {
        if (!verify_) std::memcpy(buffers[i].data(), block->data(), block->size());
        out[i] = block->size();
      }
    }
  }
  ReleaseLeases(c, leases);
}

absl::StatusOr<size_t> LocalChannel::Get(const BlockKey& key, absl::Span<uint8_t> out) {
  return BatchGet(absl::MakeConstSpan(&key, 1), absl::MakeConstSpan(&out, 1))[0];
}

std::optional<bool> LocalChannel::Contains(const BlockKey& key) const {
  if (directory_ == nullptr || !node_alive() || !directory_->complete()) return std::nullopt;
  directory::Hit hit;
  return directory_->Find(directory::NamespaceHash(key.ns), key.digest, &hit);
}

absl::StatusOr<size_t> LocalChannel::MatchPrefix(absl::Span<const BlockKey> keys) {
  if (directory_ != nullptr && node_alive() && directory_->complete()) {
    size_t matched = 0;
    // Contains can stop vouching mid-walk (the node died, the directory filled up): then the
    // node answers the whole prompt instead.
    std::optional<bool> present;
    while (matched < keys.size() && (present = Contains(keys[matched])) && *present) ++matched;
    if (present.has_value() || matched == keys.size()) return matched;
  }
  auto conn = Borrow();
  if (!conn.ok()) return conn.status();
  size_t matched = 0;
  for (size_t first = 0; first < keys.size(); first += kItemsPerRequest) {
    const absl::Span<const BlockKey> part = keys.subspan(first, kItemsPerRequest);
    v1::LocalRequest req;
    for (const BlockKey& k : part) ToProto(k, req.mutable_match_prefix()->add_keys());
    auto resp = CountedRoundTrip(**conn, req);
    if (!resp.ok()) return resp.status();
    matched += std::min<size_t>(resp->matched(), part.size());
    if (resp->matched() < part.size()) break;  // the prefix ends in this part
  }
  return matched;
}

}  // namespace ems::client
