// ems-bench throughput: one workload (put then get of fixed-size blocks, every read verified)
// against EMS over gRPC, EMS over shared memory, Redis, memcached and plain memcpy, in one run.
#include <hiredis/hiredis.h>
#include <libmemcached/memcached.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <latch>
#include <memory>
#include <optional>
#include <thread>
#include <vector>

#include "absl/cleanup/cleanup.h"
#include "absl/flags/flag.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "client/client.h"
#include "common/prefix_hash.h"
#include "ems/v1/data.pb.h"
#include "harness/commands.h"
#include "harness/services.h"
#include "harness/stats.h"

ABSL_FLAG(std::string, targets, "ems,ems-local,redis,memcached,memcpy",
          "comma-separated targets: ems (remote, bulk channel), ems-grpc (remote, values in "
          "gRPC messages), ems-local (shared memory), ems-local-2rt (shared memory without "
          "write-ahead blanks: two round trips per put, the baseline for them), redis, "
          "memcached, memcpy");
ABSL_FLAG(std::string, sizes, "64KiB,256KiB,2MiB,8MiB", "block sizes (KiB or MiB suffix)");
ABSL_FLAG(std::string, concurrency, "1,4,16", "client threads");
ABSL_FLAG(uint64_t, bytes_per_case, 256ull << 20, "bytes written (and read) per case");
ABSL_FLAG(int, rounds, 1,
          "rounds per case: in each round every target puts its blocks once (the last round's "
          "removed first, untimed), in turn, and then, in more rounds, reads them once, in "
          "turn; a target's put and get figures are its median rounds");

namespace ems::bench {
namespace {

// One connection set per thread; each call moves one whole block.
class Target {
 public:
  virtual ~Target() = default;
  virtual absl::Status Put(int thread, const std::string& key, absl::Span<const uint8_t> v) = 0;
  virtual absl::StatusOr<size_t> Get(int thread, const std::string& key,
                                     absl::Span<uint8_t> out) = 0;
  // Makes the next put of `keys` a fresh write. The stores that overwrite in place (Redis,
  // memcached, memcpy) need nothing; EMS answers a put of a stored key without a copy.
  virtual absl::Status Forget(const std::vector<std::string>& keys) { return absl::OkStatus(); }
};

BlockKey EmsKey(const std::string& key) {
  const uint64_t h = Checksum(key.data(), key.size());
  Digest d;
  std::memcpy(d.bytes.data(), &h, 8);
  std::memcpy(d.bytes.data() + 8, &h, 8);
  return BlockKey{"bench/tput", d};
}

class EmsTarget : public Target {
 public:
  explicit EmsTarget(std::unique_ptr<Client> c) : client_(std::move(c)) {}
  absl::Status Put(int, const std::string& key, absl::Span<const uint8_t> v) override {
    return client_->Put(EmsKey(key), v);
  }
  absl::StatusOr<size_t> Get(int, const std::string& key, absl::Span<uint8_t> out) override {
    return client_->Get(EmsKey(key), out);
  }
  absl::Status Forget(const std::vector<std::string>& keys) override {
    std::vector<BlockKey> ems;
    for (const std::string& k : keys) ems.push_back(EmsKey(k));
    auto removed = client_->Remove(ems);
    if (!removed.ok()) return removed.status();
    if (*removed != ems.size()) {  // a key left would make its next put a no-op
      return absl::InternalError(absl::StrCat("removed ", *removed, " of ", ems.size(), " keys"));
    }
    return absl::OkStatus();
  }

 private:
  std::unique_ptr<Client> client_;
};

class RedisTarget : public Target {
 public:
  RedisTarget(int port, int threads) {
    for (int t = 0; t < threads; ++t) conns_.push_back(redisConnect("127.0.0.1", port));
  }
  ~RedisTarget() override {
    for (auto* c : conns_) redisFree(c);
  }
  absl::Status Put(int t, const std::string& key, absl::Span<const uint8_t> v) override {
    auto* r = static_cast<redisReply*>(
        redisCommand(conns_[t], "SET %b %b", key.data(), key.size(), v.data(), v.size()));
    const bool ok = r != nullptr && r->type == REDIS_REPLY_STATUS;
    freeReplyObject(r);
    return ok ? absl::OkStatus() : absl::InternalError("redis SET failed");
  }
  absl::StatusOr<size_t> Get(int t, const std::string& key, absl::Span<uint8_t> out) override {
    auto* r = static_cast<redisReply*>(redisCommand(conns_[t], "GET %b", key.data(), key.size()));
    if (r == nullptr || r->type != REDIS_REPLY_STRING || r->len > out.size()) {
      freeReplyObject(r);
      return absl::NotFoundError("redis GET missed");
    }
    std::memcpy(out.data(), r->str, r->len);  // hiredis owns the reply: one copy out
    const size_t n = r->len;
    freeReplyObject(r);
    return n;
  }

 private:
  std::vector<redisContext*> conns_;
};

class MemcachedTarget : public Target {
 public:
  MemcachedTarget(int port, int threads) {
    const std::string config = absl::StrCat("--SERVER=127.0.0.1:", port, " --BINARY-PROTOCOL");
    for (int t = 0; t < threads; ++t) conns_.push_back(memcached(config.data(), config.size()));
  }
  ~MemcachedTarget() override {
    for (auto* c : conns_) memcached_free(c);
  }
  absl::Status Put(int t, const std::string& key, absl::Span<const uint8_t> v) override {
    memcached_return_t rc = memcached_set(conns_[t], key.data(), key.size(),
                                          reinterpret_cast<const char*>(v.data()), v.size(), 0, 0);
    return rc == MEMCACHED_SUCCESS ? absl::OkStatus()
                                   : absl::InternalError(memcached_strerror(conns_[t], rc));
  }
  absl::StatusOr<size_t> Get(int t, const std::string& key, absl::Span<uint8_t> out) override {
    size_t len = 0;
    uint32_t flags = 0;
    memcached_return_t rc;
    char* v = memcached_get(conns_[t], key.data(), key.size(), &len, &flags, &rc);
    if (v == nullptr || len > out.size()) {
      free(v);
      return absl::NotFoundError("memcached GET missed");
    }
    std::memcpy(out.data(), v, len);
    free(v);
    return len;
  }

 private:
  std::vector<memcached_st*> conns_;
};

// The physical limit: the same copies with no store in between.
class MemcpyTarget : public Target {
 public:
  MemcpyTarget(size_t size, size_t threads, size_t per_thread)
      : per_thread_(per_thread), store_(threads * per_thread, std::vector<uint8_t>(size)) {}
  absl::Status Put(int, const std::string& key, absl::Span<const uint8_t> v) override {
    std::memcpy(Slot(key).data(), v.data(), v.size());
    return absl::OkStatus();
  }
  absl::StatusOr<size_t> Get(int, const std::string& key, absl::Span<uint8_t> out) override {
    auto& s = Slot(key);
    std::memcpy(out.data(), s.data(), s.size());
    return s.size();
  }

 private:
  // Keys are "c<case>-t<thread>-<i>"; each (thread, i) gets its own slot.
  std::vector<uint8_t>& Slot(const std::string& key) {
    std::vector<absl::string_view> parts = absl::StrSplit(key, '-');
    uint64_t t = 0, i = 0;
    absl::SimpleAtoi(parts[1].substr(1), &t);
    absl::SimpleAtoi(parts[2], &i);
    return store_[(t * per_thread_ + i) % store_.size()];
  }
  size_t per_thread_;
  std::vector<std::vector<uint8_t>> store_;
};

// A --sizes entry: bytes, or a count of KiB or MiB. An entry that is not one ("64KB", "2M",
// "0") is an error naming it: read as whatever digits it starts with, "64KB" ran a 64-byte
// case under a 64 KB label, and 0 divided by zero.
absl::StatusOr<uint64_t> ParseSize(absl::string_view s) {
  uint64_t n = 0;
  int shift = 0;
  absl::string_view digits = s;
  if (absl::ConsumeSuffix(&digits, "MiB")) {
    shift = 20;
  } else if (absl::ConsumeSuffix(&digits, "KiB")) {
    shift = 10;
  }
  // At most 1 GiB, so the shift cannot wrap (the nodes and memcached refuse values over 64 MiB).
  if (!absl::SimpleAtoi(digits, &n) || n == 0 || n > (uint64_t{1} << (30 - shift))) {
    return absl::InvalidArgumentError(absl::StrCat(
        "bad --sizes entry '", s, "': want bytes up to 1 GiB, like 65536, 64KiB or 2MiB"));
  }
  return n << shift;
}

// A --concurrency entry: a thread count from 1 to 1024.
absl::StatusOr<int> ParseConcurrency(absl::string_view s) {
  int c = 0;
  if (!absl::SimpleAtoi(s, &c) || c < 1 || c > 1024) {
    return absl::InvalidArgumentError(
        absl::StrCat("bad --concurrency entry '", s, "': want a thread count from 1 to 1024"));
  }
  return c;
}

void Fill(uint64_t seed, absl::Span<uint8_t> out) {
  uint64_t x = seed * 0x9e3779b97f4a7c15ull + 1;
  for (size_t j = 0; j + 8 <= out.size(); j += 8) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    std::memcpy(out.data() + j, &x, 8);
  }
}

struct CaseResult {
  double gbps = 0;
  LatencyRecorder latency;
  int failures = 0;
};

// One case's blocks. Each thread moves its blocks through one source and one destination
// buffer of its own, as an engine moves KV through reused staging buffers: value i is the
// thread's random pattern stamped with (thread, i), so every key holds distinct bytes, and each
// read is checked against the checksum of what was put. (Fresh buffers per operation would
// time page-table work instead: on this VM, writing 4 KiB pages that were not touched lately
// costs more than the transfer itself, for every target alike.)
struct CaseData {
  CaseData(size_t size, int threads, size_t per_thread, int case_id) {
    for (int t = 0; t < threads; ++t) {
      auto& k = keys.emplace_back();
      auto& e = expected.emplace_back();
      auto& src = sources.emplace_back(size);
      Fill((static_cast<uint64_t>(case_id) << 32) | t, absl::MakeSpan(src));
      for (size_t i = 0; i < per_thread; ++i) {
        k.push_back(absl::StrCat("c", case_id, "-t", t, "-", i));
        Stamp(absl::MakeSpan(src), t, i);
        e.push_back(Checksum(src.data(), src.size()));
      }
      got.emplace_back(per_thread, 0);
      sinks.emplace_back(size);
    }
  }
  // Makes the source hold value (t, i): its first bytes name the block.
  static void Stamp(absl::Span<uint8_t> v, uint64_t t, uint64_t i) {
    const uint64_t tag[2] = {t, i};
    std::memcpy(v.data(), tag, std::min(v.size(), sizeof(tag)));
  }
  std::vector<std::vector<std::string>> keys;        // [thread][i]
  std::vector<std::vector<uint64_t>> expected;       // [thread][i]: checksum of value (t, i)
  std::vector<std::vector<uint64_t>> got;            // [thread][i]: checksum of what was read
  std::vector<std::vector<uint8_t>> sources, sinks;  // [thread]
};

// All threads start together; throughput is the bytes moved over the wall time from that start
// to the last thread's end. (Summing each thread's time in its calls instead counts time spent
// descheduled while another thread ran, and lets 4 threads on 2 cores report more than the
// machine can move.) Latency is per call; the stamp and the checksum of a read, the same for
// every target, fall outside it.
CaseResult RunOp(Target& target, bool put, CaseData& data) {
  const int threads = static_cast<int>(data.keys.size());
  const size_t per_thread = data.keys[0].size();
  const size_t size = data.sources[0].size();
  std::vector<LatencyRecorder> lat(threads);
  std::vector<int> fails(threads, 0);
  std::latch start(threads + 1);
  std::vector<std::thread> loops;
  for (int t = 0; t < threads; ++t) {
    loops.emplace_back([&, t] {
      auto src = absl::MakeSpan(data.sources[t]);
      auto sink = absl::MakeSpan(data.sinks[t]);
      start.arrive_and_wait();
      for (size_t i = 0; i < per_thread; ++i) {
        if (put) CaseData::Stamp(src, t, i);
        const absl::Time t0 = absl::Now();
        bool ok;
        if (put) {
          ok = target.Put(t, data.keys[t][i], src).ok();
        } else {
          auto n = target.Get(t, data.keys[t][i], sink);
          ok = n.ok() && *n == size;
        }
        lat[t].Add(absl::Now() - t0);
        if (put) {
          fails[t] += !ok;
        } else {
          data.got[t][i] = ok ? Checksum(sink.data(), sink.size()) : ~data.expected[t][i];
        }
      }
    });
  }
  // The clock starts before the last arrival releases the threads: taken after, a main thread
  // descheduled for a while would miss work already done.
  const absl::Time begin = absl::Now();
  start.arrive_and_wait();
  for (auto& l : loops) l.join();
  const absl::Duration wall = absl::Now() - begin;
  CaseResult r;
  for (int t = 0; t < threads; ++t) {
    r.latency.Merge(lat[t]);
    r.failures += fails[t];
    if (put) continue;
    for (size_t i = 0; i < per_thread; ++i) r.failures += data.got[t][i] != data.expected[t][i];
  }
  r.gbps = static_cast<double>(size) * per_thread * threads / absl::ToDoubleSeconds(wall) / 1e9;
  return r;
}

bool IsTarget(const std::string& t) {
  return t == "ems" || t == "ems-grpc" || t == "ems-local" || t == "ems-local-2rt" ||
         t == "redis" || t == "memcached" || t == "memcpy";
}

// A server target and what it runs on; destroying it stops the processes.
struct Running {
  std::unique_ptr<Process> node;
  std::optional<Server> server;
  std::unique_ptr<Target> target;
};

absl::StatusOr<Running> StartTarget(const std::string& tname, const std::string& sock_dir,
                                    uint64_t server_mb, int max_threads) {
  Running r;
  if (tname == "redis" || tname == "memcached") {
    auto s = tname == "redis" ? StartRedis() : StartMemcached(static_cast<int>(server_mb));
    if (!s.ok()) return s.status();
    r.server = *std::move(s);
    if (tname == "redis") {
      r.target = std::make_unique<RedisTarget>(r.server->port, max_threads);
    } else {
      r.target = std::make_unique<MemcachedTarget>(r.server->port, max_threads);
    }
    return r;
  }
  const std::string sock = sock_dir + "/" + tname + ".sock";
  auto n = StartNode(SiblingBinary("ems-node"), {absl::StrCat("--huge_page_num=", server_mb / 2),
                                                 "--log_level=error", "--local_socket=" + sock});
  if (!n.ok()) return n.status();
  r.node = *std::move(n);
  ClientOptions o{.address = r.node->Value("LISTENING")};
  o.use_local = absl::StartsWith(tname, "ems-local");
  o.local_write_ahead_blocks = tname == "ems-local-2rt" ? 0 : o.local_write_ahead_blocks;
  o.use_bulk = tname == "ems";
  o.local_socket = o.use_local ? sock : "";
  auto c = Client::Connect(o);
  if (!c.ok()) return c.status();
  // 4 KiB-page memory costs dearly to write on some VMs (shadow paging): say which one the
  // node got, since it moves the figures (docs/zero-copy.md).
  if (auto st = (*c)->Stats(); st.ok()) {
    std::fprintf(stderr, "throughput: %s node arena on %s\n", tname.c_str(),
                 st->hugepages() ? "hugetlb pages" : "4 KiB/THP pages (no hugepages reserved)");
  }
  r.target = std::make_unique<EmsTarget>(*std::move(c));
  return r;
}

// The round with the median throughput, carrying the failures of every round (each round's
// puts are checked, and its reads verified).
CaseResult Median(std::vector<CaseResult> rounds) {
  int failures = 0;
  for (const CaseResult& r : rounds) failures += r.failures;
  std::sort(rounds.begin(), rounds.end(),
            [](const CaseResult& a, const CaseResult& b) { return a.gbps < b.gbps; });
  CaseResult median = std::move(rounds[rounds.size() / 2]);
  median.failures = failures;
  return median;
}

}  // namespace

int RunThroughput(int, char**) {
  std::vector<uint64_t> sizes;
  for (absl::string_view s : absl::StrSplit(absl::GetFlag(FLAGS_sizes), ',')) {
    auto size = ParseSize(s);
    if (!size.ok()) {
      std::fprintf(stderr, "throughput: %s\n", std::string(size.status().message()).c_str());
      return 2;
    }
    sizes.push_back(*size);
  }
  // Every entry counts: one dropped in silence left the list empty (a crash below) or ran
  // fewer cases than asked.
  std::vector<int> concurrency;
  for (absl::string_view s : absl::StrSplit(absl::GetFlag(FLAGS_concurrency), ',')) {
    auto c = ParseConcurrency(s);
    if (!c.ok()) {
      std::fprintf(stderr, "throughput: %s\n", std::string(c.status().message()).c_str());
      return 2;
    }
    concurrency.push_back(*c);
  }
  const uint64_t per_case = absl::GetFlag(FLAGS_bytes_per_case);
  const int max_threads = *std::max_element(concurrency.begin(), concurrency.end());
  // Servers hold one case at a time (keys differ per case; old ones are evicted).
  const uint64_t server_mb = 2 * per_case / (1 << 20) + 256;

  std::printf("%-10s %-4s %9s %5s %9s %10s %10s\n", "target", "op", "size", "conc", "GB/s",
              "p50_us", "p99_us");
  std::vector<std::string> json;
  int bad = 0, case_id = 0;
  char sock_template[] = "/tmp/ems-tput-XXXXXX";
  if (mkdtemp(sock_template) == nullptr) {
    std::fprintf(stderr, "throughput: cannot make a socket directory in /tmp: %s\n",
                 std::strerror(errno));
    return 1;
  }
  const std::string sock_dir = sock_template;
  // Whatever way this returns: the nodes it started are killed, so their sockets stay behind.
  absl::Cleanup remove_sock_dir = [&sock_dir] {
    std::error_code ignored;
    std::filesystem::remove_all(sock_dir, ignored);
  };
  std::vector<std::string> names;
  for (absl::string_view name : absl::StrSplit(absl::GetFlag(FLAGS_targets), ',')) {
    names.emplace_back(name);
    if (!IsTarget(names.back())) {
      std::fprintf(stderr, "throughput: unknown target '%s'\n", names.back().c_str());
      return 2;
    }
  }
  const int rounds = std::max(1, absl::GetFlag(FLAGS_rounds));
  auto report = [&](const std::string& tname, bool put, uint64_t size, int conc,
                    const CaseResult& r) {
    bad += r.failures;
    std::printf("%-10s %-4s %9llu %5d %9.2f %10.1f %10.1f%s\n", tname.c_str(), put ? "put" : "get",
                static_cast<unsigned long long>(size), conc, r.gbps, r.latency.PercentileUs(50),
                r.latency.PercentileUs(99), r.failures ? "  FAILED" : "");
    json.push_back(absl::StrCat("{\"target\":\"", tname, "\",\"op\":\"", put ? "put" : "get",
                                "\",\"size\":", size, ",\"concurrency\":", conc,
                                ",\"gbps\":", absl::StrFormat("%.3f", r.gbps),
                                ",\"p50_us\":", absl::StrFormat("%.1f", r.latency.PercentileUs(50)),
                                ",\"p99_us\":", absl::StrFormat("%.1f", r.latency.PercentileUs(99)),
                                ",\"failures\":", r.failures, "}"));
    std::fflush(stdout);
  };
  for (uint64_t size : sizes) {
    // Every size starts from fresh, empty servers: memcached's slabs, once given to one item
    // size, would refuse the next size's values (slab calcification), and Redis would keep
    // every case's keys. All targets run side by side, so their reads can take turns.
    std::vector<Running> running(names.size());
    for (size_t t = 0; t < names.size(); ++t) {
      if (names[t] == "memcpy") continue;
      auto r = StartTarget(names[t], sock_dir, server_mb, max_threads);
      if (!r.ok()) {
        std::fprintf(stderr, "throughput: %s\n", r.status().ToString().c_str());
        return 1;
      }
      running[t] = *std::move(r);
    }
    for (int conc : concurrency) {
      const size_t per_thread = std::max<size_t>(4, per_case / size / conc);
      std::vector<std::unique_ptr<CaseData>> data;
      for (size_t t = 0; t < names.size(); ++t) {
        if (names[t] == "memcpy") {
          running[t].target = std::make_unique<MemcpyTarget>(size, conc, per_thread);
        }
        data.push_back(std::make_unique<CaseData>(size, conc, per_thread, ++case_id));
      }
      // Puts, then reads, take turns round by round, and each target reports its median round:
      // on a VM whose speed drifts by tens of percent over seconds, this keeps a quiet moment
      // from favouring whichever target happened to run in it. (Puts in a fixed order, one
      // round each, once showed blanks both faster and slower at 2 MiB; docs/zero-copy.md.)
      for (bool put : {true, false}) {
        std::vector<std::vector<CaseResult>> results(names.size());
        for (int round = 0; round < rounds; ++round) {
          for (size_t t = 0; t < names.size(); ++t) {
            int forgotten = 0;  // a failed removal makes the round's puts not fresh writes
            if (put && round > 0) {
              for (const auto& keys : data[t]->keys) {
                forgotten += !running[t].target->Forget(keys).ok();
              }
            }
            results[t].push_back(RunOp(*running[t].target, put, *data[t]));
            results[t].back().failures += forgotten;
          }
        }
        for (size_t t = 0; t < names.size(); ++t) {
          report(names[t], put, size, conc, Median(std::move(results[t])));
        }
      }
    }
  }
  if (absl::GetFlag(FLAGS_json)) {
    for (const std::string& line : json) std::printf("%s\n", line.c_str());
  }
  return bad == 0 ? 0 : 1;
}

}  // namespace ems::bench
