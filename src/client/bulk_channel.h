// The bulk data channel, client side (wire format in bulk/wire.h): values go from the caller's
// buffer to the socket and from the socket into the caller's buffer, with no copy in between.
#ifndef EMS_CLIENT_BULK_CHANNEL_H_
#define EMS_CLIENT_BULK_CHANNEL_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "bulk/wire.h"
#include "common/key.h"

namespace ems::client {

struct BulkChannelOptions {
  std::string host;
  int port = 0;
  std::string cd_key;
  absl::Duration timeout = absl::Seconds(10);  // connect, and each blocking send or receive
  bool verify_checksums = true;
};

// Pooled connections to one node's bulk channel; a call takes one and gives it back when the
// answer has been read. Thread-safe.
class BulkChannel {
 public:
  explicit BulkChannel(BulkChannelOptions options) : options_(std::move(options)) {}
  ~BulkChannel();  // closes idle connections
  BulkChannel(const BulkChannel&) = delete;
  BulkChannel& operator=(const BulkChannel&) = delete;

  const BulkChannelOptions& options() const { return options_; }
  // A new connection that has passed HELLO, outside the pool; the caller closes it. Connect,
  // HELLO and the socket's later sends and receives wait at most `timeout` (default: the
  // channel's).
  absl::StatusOr<int> Open() { return Open(options_.timeout); }
  absl::StatusOr<int> Open(absl::Duration timeout);

  // Idle connections kept for the next calls. A burst of parallel calls would otherwise hold
  // all its connections, and the node's threads and slots for them (1,024 by default), for
  // the client's whole life.
  static constexpr size_t kMaxIdle = 16;

 private:
  friend class BulkCall;
  // An idle connection (`*reused` = true) or a new one that has passed HELLO, waiting at most
  // `timeout` for it.
  absl::StatusOr<int> Take(bool* reused, absl::Duration timeout);
  // Keeps `fd` for the next call, or closes it when kMaxIdle are kept already.
  void Give(int fd);

  const BulkChannelOptions options_;
  absl::Mutex mu_;
  std::vector<int> idle_ ABSL_GUARDED_BY(mu_);
};

// One request to one node, in two steps so a client fans out over nodes without threads: Send()
// writes the whole request (a PUT's values included), Finish() reads the answer. A connection
// from the pool that turns out dead is replaced once (every operation is idempotent).
// The keys, buffers and values given to Add* are borrowed until Finish returns.
class BulkCall {
 public:
  BulkCall(BulkChannel* channel, bulk::Op op, uint64_t epoch);
  ~BulkCall();  // a call abandoned between Send and Finish closes its connection

  void AddGet(const BlockKey* key, absl::Span<uint8_t> out);
  void AddPut(const BlockKey* key, absl::Span<const uint8_t> value, uint64_t checksum,
              const BlockKey* parent);
  void AddKey(const BlockKey* key);  // MATCH_PREFIX

  // Sends the request, waiting for the node (a new connection's HELLO, a put the node reads
  // slowly) at most until `deadline` (at least a short floor).
  void Send(absl::Time deadline);
  void Send() { Send(absl::Now() + channel_->options().timeout); }
  // Reads the answer, waiting at most until `deadline` (at least a short floor).
  void Finish(absl::Time deadline);
  void Finish() { Finish(absl::Now() + channel_->options().timeout); }

  // The request's outcome: OK; FAILED_PRECONDITION when the node's map is newer (node_epoch());
  // UNAVAILABLE or DEADLINE_EXCEEDED when the node could not be reached; the node's error.
  const absl::Status& status() const { return status_; }
  uint64_t node_epoch() const { return node_epoch_; }
  // GET: each block's size, or NOT_FOUND, OUT_OF_RANGE (buffer too small), DATA_LOSS.
  // PUT: 0 or the node's error for each item.
  const std::vector<absl::StatusOr<size_t>>& results() const { return results_; }
  uint32_t matched() const { return matched_; }

 private:
  struct Item {
    const BlockKey* key;
    const BlockKey* parent;
    uint8_t* data;
    uint64_t size;
    uint64_t checksum;
  };
  // What is left until `deadline`, at least a short floor and at most the channel's timeout:
  // a fan-out's stalled nodes share one timeout, and a healthy node still streaming is not
  // failed for want of a few milliseconds.
  absl::Duration Left(absl::Time deadline) const;
  absl::Status SendOn(int fd, absl::Time deadline);
  absl::Status ReceiveOn(int fd);
  void Close();

  BulkChannel* const channel_;
  const bulk::Op op_;
  const uint64_t epoch_;
  std::vector<Item> items_;
  int fd_ = -1;
  bool reused_ = false;
  bool retried_ = false;
  absl::Status status_;
  uint64_t node_epoch_ = 0;
  uint32_t matched_ = 0;
  std::vector<absl::StatusOr<size_t>> results_;
};

}  // namespace ems::client

#endif  // EMS_CLIENT_BULK_CHANNEL_H_
