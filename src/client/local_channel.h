// Same-machine data path, client side: maps the node's arena (memfd received over the node's
// Unix socket) and moves bytes with plain memcpy; only control messages cross the socket.
#ifndef EMS_CLIENT_LOCAL_CHANNEL_H_
#define EMS_CLIENT_LOCAL_CHANNEL_H_

#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "common/key.h"
#include "directory/directory.h"
#include "ems/v1/local.pb.h"

namespace ems::client {

// One item of a batch put: the value's bytes stay owned by the caller.
struct LocalPutItem {
  BlockKey key;
  absl::Span<const uint8_t> value;
  const BlockKey* parent = nullptr;
};

// Lookups and reads go through the node's block directory (directory/directory.h) when the node
// publishes one: no round trip. The reads are reported to the node afterwards, so its eviction
// policy and counters see them: batched (a send per 32 reads, or within 2 ms), and always
// ahead of this channel's next write, so a client's own write never
// evicts a block it has just read without the node knowing of the read. Blocks the directory
// cannot vouch for (changed while copied, or missing from an overfull directory) are read under
// a lease.
//
// Thread-safe. Each call borrows one of up to `max_connections` control connections to the node
// for its whole exchange (leases belong to the connection that took them), so threads do not
// queue behind one another's round trips; copies run in parallel. The arena mapping lives as long
// as the channel, which must outlive every call on it.
class LocalChannel {
 public:
  struct Options {
    std::string socket_path;
    // Recompute XXH3-64 of every block read (fused with the copy) and compare with the sealed
    // checksum; checksum each value put so the node verifies what it seals.
    bool verify_checksums = false;
    // Control connections opened on demand, one per concurrent call; more calls wait.
    int max_connections = 8;
    // Use the node's block directory when it offers one; false asks the node for every read.
    bool use_directory = true;
    // Blanks (arena space granted ahead, for no key yet) each connection keeps for its next
    // puts: a put of new blocks then copies into blanks and seals them with their keys in one
    // round trip, where asking for space first takes two. The channel holds at most 1/64 of
    // the arena in blanks, split over `max_connections`, and gives back blanks unused for 10 s
    // whether or not it puts again; 0 = always ask first. At most 64 (what the node grants per
    // seal); more is taken as 64.
    int write_ahead_blocks = 16;
    // Longest wait for the node's answer (and for a free control connection): a stalled node
    // fails a call with DEADLINE_EXCEEDED instead of hanging it.
    absl::Duration timeout = absl::Seconds(10);
    // The project's cdKey, presented in every connection's hello ("" = none): a node that
    // requires one serves no connection without it.
    std::string cd_key;
  };

  // Counters since Connect; relaxed, for tests and metrics.
  struct Counters {
    uint64_t round_trips = 0;      // requests that waited for the node's answer
    uint64_t directory_reads = 0;  // blocks read (or found missing) through the directory
    uint64_t leased_reads = 0;     // blocks read under a lease from the node
    uint64_t blank_puts = 0;       // blocks put into blanks (one round trip per batch)
  };

  // UNAVAILABLE if the node's socket cannot be reached.
  static absl::StatusOr<std::unique_ptr<LocalChannel>> Connect(const Options& options);
  ~LocalChannel();

  // Writes each value into its block and seals it; one status per item. An item already
  // stored with the same size is OK (nothing copied, unless it was stored since the directory
  // last said it was not). `epoch` is the caller's cluster map (0 = none): an item is
  // FAILED_PRECONDITION, and not stored, when the node's map is newer and no longer places it
  // there (route it again under a fresh map).
  std::vector<absl::Status> BatchPut(absl::Span<const LocalPutItem> items, uint64_t epoch = 0);
  absl::Status Put(const BlockKey& key, absl::Span<const uint8_t> value,
                   const BlockKey* parent = nullptr);

  // Copies each block into its buffer; result per item = bytes read, NOT_FOUND on a miss,
  // OUT_OF_RANGE naming both sizes if the buffer is too small.
  std::vector<absl::StatusOr<size_t>> BatchGet(absl::Span<const BlockKey> keys,
                                               absl::Span<const absl::Span<uint8_t>> buffers);
  absl::StatusOr<size_t> Get(const BlockKey& key, absl::Span<uint8_t> out);

  // Number of leading keys present on this node.
  absl::StatusOr<size_t> MatchPrefix(absl::Span<const BlockKey> keys);
  // Whether `key` is stored, from the directory alone; nullopt when the directory cannot say
  // (the node publishes none, or some block is missing from it).
  std::optional<bool> Contains(const BlockKey& key) const;

  const std::string& node_id() const { return node_id_; }
  uint64_t arena_bytes() const { return arena_bytes_; }
  // Control connections open now (idle or in use).
  int open_connections() const;
  bool has_directory() const { return directory_ != nullptr; }
  // False once the node's process is gone (its sockets hung up, or a new connection reached
  // another arena: the node restarted on the same socket). The directory and arena this
  // channel maps are then a dead node's, so every call fails (UNAVAILABLE) and the owner
  // should connect a new channel.
  bool node_alive() const { return !node_gone_.load(std::memory_order_relaxed); }
  Counters counters() const;

 private:
  // Items per request, and so per answer, and keys per read report. A SOCK_SEQPACKET message
  // goes whole or not at all, and the sender's socket buffer bounds it (net.core.wmem_default:
  // 208 KiB on Debian; 1 MiB for the node's receive buffer does not help). 256 items with the
  // longest keys (256-byte namespaces, with parents) take under 150 KiB, and so do their
  // grants with error messages.
  static constexpr size_t kItemsPerRequest = 256;
  // Blanks a seal may ask for: the node grants no more (local_server.cc).
  static constexpr int kMaxWriteAhead = 64;
  // Which arena a memfd is (device, inode): a restarted node creates a new one.
  using ArenaId = std::pair<uint64_t, uint64_t>;
  // A blank granted on a connection: `blank_size` bytes at `offset`, checked inside the arena.
  struct Blank {
    uint64_t lease;
    uint64_t offset;
    absl::Time taken;
  };
  // One control connection; used by one call at a time.
  struct Conn {
    explicit Conn(int fd) : fd(fd) {}
    ~Conn();
    int fd;
    uint64_t next_id = 1;
    bool broken = false;               // a send or receive failed: close it, do not reuse
    std::unique_ptr<char[]> recv_buf;  // allocated at the first answer, kept for the next
    std::vector<Blank> blanks;         // leases of this connection, ended with it
    uint64_t blank_size = 0;
  };
  // A borrowed connection, given back (or closed, if broken) when it goes out of scope.
  class Borrowed {
   public:
    Borrowed(LocalChannel* channel, std::unique_ptr<Conn> conn)
        : channel_(channel), conn_(std::move(conn)) {}
    Borrowed(Borrowed&&) = default;
    ~Borrowed() {
      if (conn_ != nullptr) channel_->GiveBack(std::move(conn_));
    }
    Conn& operator*() { return *conn_; }

   private:
    LocalChannel* channel_;
    std::unique_ptr<Conn> conn_;
  };

  // What reading one block through the directory came to.
  enum class DirectoryRead { kRead, kMiss, kFailed, kAsk };

  LocalChannel(std::unique_ptr<Conn> first, uint8_t* base, uint64_t bytes, ArenaId arena_id,
               std::string node_id, std::unique_ptr<directory::Reader> directory,
               const Options& options);
  static absl::StatusOr<std::unique_ptr<Conn>> Dial(const std::string& socket_path,
                                                    absl::Duration timeout);
  static absl::StatusOr<ArenaId> IdOf(int arena_fd);
  // A new connection's hello: UNAVAILABLE (and the channel marked gone) unless the node
  // behind it passes the arena this channel maps.
  absl::Status CheckSameArena(Conn& c);
  absl::Status GoneError() const;
  // A grant's or lease's outcome as the node reported it.
  static absl::Status GrantStatus(const v1::LocalGrant& g);
  absl::StatusOr<Borrowed> Borrow();
  void GiveBack(std::unique_ptr<Conn> conn);
  // Sends `req` on `c` and waits for its response (and the fds passed with it, for hello).
  static absl::StatusOr<v1::LocalResponse> RoundTrip(Conn& c, v1::LocalRequest& req,
                                                     std::vector<int>* received_fds = nullptr);
  absl::StatusOr<v1::LocalResponse> CountedRoundTrip(Conn& c, v1::LocalRequest& req);
  // Copies `key`'s block into `buf` if the directory vouches for it; sets `*result` unless kAsk.
  DirectoryRead ReadThroughDirectory(const BlockKey& key, absl::Span<uint8_t> buf,
                                     absl::StatusOr<size_t>* result) const;
  // Reads items `idx` under leases, one round trip per kItemsPerRequest.
  void GetLeased(absl::Span<const BlockKey> keys, absl::Span<const absl::Span<uint8_t>> buffers,
                 const std::vector<size_t>& idx, std::vector<absl::StatusOr<size_t>>& out);
  // One request of GetLeased: at most kItemsPerRequest of `idx`.
  void ReadLeased(Conn& c, absl::Span<const BlockKey> keys,
                  absl::Span<const absl::Span<uint8_t>> buffers, absl::Span<const size_t> idx,
                  std::vector<absl::StatusOr<size_t>>& out);
  // Tells the node about reads served by the directory; sends, never waits.
  void QueueReads(const std::vector<const BlockKey*>& hits, uint64_t misses);
  // Takes the reads not yet reported (false if there are none).
  bool TakeReport(v1::LocalReadReport* report);
  // Puts them in `req`, a write: a client's reads reach the node before its writes evict.
  void AttachReport(v1::LocalRequest& req);
  void SendReport(const v1::LocalReadReport& report);
  void FlushLoop();
  // Gives back the blanks idle connections have kept too long (kBlankKeep), until the
  // destructor: a connection drops them at its next put, and one that never puts again
  // (an idle client, a connection a burst opened) held them, and their arena space, for good.
  void SweepLoop();
  // Puts items `idx` the long way: asks for their blocks, copies, seals (two round trips).
  void PutWithGrants(Conn& c, absl::Span<const LocalPutItem> items, const std::vector<size_t>& idx,
                     uint64_t epoch, std::vector<absl::Status>& out);
  // Puts every item into one of `c`'s blanks and seals them with their keys (one round trip).
  // Items whose blank the node no longer knows (expired) go to `retry`.
  void PutIntoBlanks(Conn& c, absl::Span<const LocalPutItem> items, uint64_t epoch,
                     std::vector<absl::Status>& out, std::vector<size_t>& retry);
  // Whether `c` holds a blank for every item, and no item is known to be stored already (the
  // long way copies nothing for those).
  bool FitsBlanks(const Conn& c, absl::Span<const LocalPutItem> items) const;
  // Asks, in `seal`, for blanks of `size` bytes up to the connection's share; gives back held
  // blanks of another size, and ones kept too long to trust (their leases near expiry).
  void AskForBlanks(Conn& c, uint64_t size, v1::LocalSeal* seal) const;
  // Keeps the blanks a seal's answer granted.
  void TakeBlanks(Conn& c, const v1::LocalResponse& resp) const;
  // Copies `value` to `dst`; returns its checksum if verifying, else 0.
  uint64_t CopyIn(uint8_t* dst, absl::Span<const uint8_t> value) const;
  // The granted block as a span, after checking it lies inside the arena.
  absl::StatusOr<absl::Span<uint8_t>> Block(const v1::LocalGrant& g) const;
  // Sends `req` (numbered on `c`) for a node that will not answer it; marks `c` broken on error.
  static void SendNoReply(Conn& c, v1::LocalRequest& req);
  // Ends leases taken on `c` without waiting for the node's answer.
  static void ReleaseLeases(Conn& c, const std::vector<uint64_t>& leases);

  uint8_t* const base_;
  const uint64_t arena_bytes_;
  const ArenaId arena_id_;
  const std::string node_id_;
  const std::string socket_path_;
  const std::string cd_key_;  // presented in each new connection's hello
  const bool verify_;
  const int max_connections_;
  const int write_ahead_blocks_;
  const absl::Duration timeout_;
  const std::unique_ptr<directory::Reader> directory_;  // null: the node publishes none

  absl::Mutex report_mu_;
  v1::LocalReadReport pending_ ABSL_GUARDED_BY(report_mu_);
  bool stopping_ ABSL_GUARDED_BY(report_mu_) = false;
  std::thread flusher_;  // sends what no batch or write carried within kReportDelay

  // A connection used for nothing but noticing the node's end: a node that crashed and
  // restarted leaves this channel mapping its old arena and a directory nobody updates.
  int watch_fd_ = -1;
  std::atomic<bool> node_gone_{false};  // relaxed: a hint that only ever goes false -> true
  std::thread watcher_;
  void WatchLoop();

  struct AtomicCounters {
    std::atomic<uint64_t> round_trips{0}, directory_reads{0}, leased_reads{0}, blank_puts{0};
  } counters_;  // relaxed: statistics only

  mutable absl::Mutex mu_;
  std::vector<std::unique_ptr<Conn>> idle_ ABSL_GUARDED_BY(mu_);
  int open_ ABSL_GUARDED_BY(mu_) = 0;          // idle + borrowed
  bool closing_ ABSL_GUARDED_BY(mu_) = false;  // the destructor stops the sweeper
  std::thread sweeper_;
};

}  // namespace ems::client

#endif  // EMS_CLIENT_LOCAL_CHANNEL_H_
