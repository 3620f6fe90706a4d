// One chaos client thread: random Put / BatchPut / Get / BatchGet / MatchPrefix / Exists /
// Remove over its own prompts, each answer checked against the oracle as it arrives.
// Not thread-safe: one thread runs it; counters() may be read once it has stopped.
#ifndef EMS_TESTS_TESTING_CHAOS_WORKER_H_
#define EMS_TESTS_TESTING_CHAOS_WORKER_H_

#include <algorithm>
#include <atomic>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "client/client.h"
#include "testing/chaos_oracle.h"

namespace ems::testing {

struct ChaosWorkerCounters {
  uint64_t ops = 0, hits = 0, misses_of_held = 0, dropped_puts = 0, remove_errors = 0;
  // Reads, lookups and Exists that found a key the oracle says is absent (removed, or never
  // put): a removed block that came back.
  uint64_t absent_found = 0;
  uint64_t absent_read = 0, absent_matched = 0, absent_exists = 0;
  absl::Duration slowest = absl::ZeroDuration();
  std::string slowest_op;
};

class ChaosWorker {
 public:
  // `bound`: the longest any call may take (the client's timeout plus slack) before it counts
  // as a hang.
  ChaosWorker(ChaosOracle& oracle, ChaosGate& gate, Client& client, int thread, uint64_t seed,
              absl::Duration bound)
      : o_(oracle), gate_(gate), client_(client), thread_(thread), rng_(seed), bound_(bound) {}

  void Run(const std::atomic<bool>& stop) {
    std::vector<uint8_t> buf(kMaxBatch * kMaxValue);
    while (!stop.load()) {
      gate_.Enter();
      Step(buf);
      gate_.Exit();
      // Paced: on two cores an unpaced loop per thread starves the nodes' heartbeats, and the
      // controller rightly marks them DOWN; that is not the fault under test.
      absl::SleepFor(absl::Milliseconds(Uniform(1, 4)));
    }
  }

  const ChaosWorkerCounters& counters() const { return c_; }

 private:
  static constexpr int kMaxBatch = 8;
  static constexpr size_t kMaxValue = 96 << 10;

  int Uniform(int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng_); }

  // Runs one random call on a random run [first, first + n) of one prompt's blocks.
  void Step(std::vector<uint8_t>& buf) {
    const int prompt = Uniform(0, o_.prompts() - 1);
    const int first = Uniform(0, o_.blocks() - 1);
    const int n = std::min(Uniform(1, kMaxBatch), o_.blocks() - first);
    const int base = o_.Index(thread_, prompt, 0);
    const int roll = Uniform(0, 99);
    ++c_.ops;
    if (roll < 22) {
      Put(base + first, 1);
    } else if (roll < 40) {
      Put(base + first, n);
    } else if (roll < 55) {
      Get(base + first, 1, buf);
    } else if (roll < 70) {
      Get(base + first, n, buf);
    } else if (roll < 80) {
      Match(base);
    } else if (roll < 90) {
      Exists(base + first, n);
    } else {
      // Mostly a prompt's tail, as a cache drops the least shared part of a prefix first.
      Remove(base + first, Uniform(0, 2) == 0 ? 1 : o_.blocks() - first);
    }
  }

  static std::string Now() {
    return absl::FormatTime("%H:%M:%E3S", absl::Now(), absl::UTCTimeZone());
  }

  void Absent(int i, const char* op, uint64_t& counter) {
    ++counter;
    if (c_.absent_found++ < 5) {
      absl::PrintF("[chaos %s] thread %d: key %d, removed or never put, found by %s\n", Now(),
                   thread_, i, op);
    }
  }

  template <typename F>
  auto Timed(const char* op, F&& call) {
    const absl::Time start = absl::Now();
    auto result = call();
    const absl::Duration took = absl::Now() - start;
    if (took > c_.slowest) {
      c_.slowest = took;
      c_.slowest_op = op;
    }
    if (took > bound_) {
      o_.Breach(absl::StrCat("thread ", thread_, ": ", op, " took ", absl::FormatDuration(took)));
    }
    return result;
  }

  void Put(int first, int n) {
    std::vector<PutItem> items;
    for (int i = first; i < first + n; ++i) {
      const ChaosKey& k = o_.key(i);
      items.push_back({k.key, k.value, k.parent < 0 ? nullptr : &o_.key(k.parent).key});
    }
    const uint64_t drops = client_.counters().put_drops;
    std::vector<absl::Status> st = Timed(n == 1 ? "Put" : "BatchPut", [&] {
      return n == 1 ? std::vector<absl::Status>{client_.Put(items[0].key, items[0].value,
                                                            items[0].parent)}
                    : client_.BatchPut(items);
    });
    // In cluster mode a put that reached no owner is OK and counted as a drop; this worker
    // owns its client, so a rise means one of these items may not be stored.
    const bool dropped = client_.counters().put_drops != drops;
    c_.dropped_puts += dropped;
    for (int j = 0; j < n; ++j) {
      const int i = first + j;
      if (!st[j].ok()) {
        o_.Breach(absl::StrCat("thread ", thread_, ": put of key ", i, ": ", st[j].ToString()));
      }
      if (o_.state(i) == KeyState::kHeld) continue;  // stored before: nothing changes
      o_.set_state(i, st[j].ok() && !dropped ? KeyState::kHeld : KeyState::kUnknown);
    }
  }

  void Get(int first, int n, std::vector<uint8_t>& buf) {
    std::vector<GetItem> items;
    for (int j = 0; j < n; ++j) {
      items.push_back(
          {o_.key(first + j).key, absl::MakeSpan(buf.data() + j * kMaxValue, kMaxValue)});
    }
    std::vector<absl::StatusOr<size_t>> got = Timed(n == 1 ? "Get" : "BatchGet", [&] {
      return n == 1
                 ? std::vector<absl::StatusOr<size_t>>{client_.Get(items[0].key, items[0].buffer)}
                 : client_.BatchGet(items);
    });
    for (int j = 0; j < n; ++j) {
      const int i = first + j;
      if (got[j].ok()) {
        ++c_.hits;
        if (!o_.Matches(i, *got[j], items[j].buffer.data())) {
          o_.Breach(absl::StrCat("thread ", thread_, ": read of key ", i, " returned ", *got[j],
                                 " wrong bytes (value is ", o_.key(i).value.size(), ")"));
        }
        if (o_.state(i) == KeyState::kAbsent) Absent(i, "Get", c_.absent_read);
      } else if (absl::IsNotFound(got[j].status())) {
        // Allowed while a fault is on (a frozen owner costs the call its deadline); the
        // checker asserts readability once the fault has settled.
        if (o_.state(i) == KeyState::kHeld && c_.misses_of_held++ < 3) {
          absl::PrintF("[chaos %s] thread %d: key %d, held, missed by %s\n", Now(), thread_, i,
                       n == 1 ? "Get" : "BatchGet");
        }
      } else {
        o_.Breach(absl::StrCat("thread ", thread_, ": read of key ", i, ": ",
                               got[j].status().ToString()));
      }
    }
  }

  void Match(int base) {
    std::vector<BlockKey> prompt;
    for (int b = 0; b < o_.blocks(); ++b) prompt.push_back(o_.key(base + b).key);
    absl::StatusOr<size_t> m = Timed("MatchPrefix", [&] { return client_.MatchPrefix(prompt); });
    if (!m.ok()) {
      o_.Breach(absl::StrCat("thread ", thread_, ": MatchPrefix: ", m.status().ToString()));
      return;
    }
    for (size_t b = 0; b < *m; ++b) {
      if (o_.state(base + b) == KeyState::kAbsent)
        Absent(base + b, "MatchPrefix", c_.absent_matched);
    }
  }

  void Exists(int first, int n) {
    std::vector<BlockKey> keys;
    for (int j = 0; j < n; ++j) keys.push_back(o_.key(first + j).key);
    auto present = Timed("Exists", [&] { return client_.Exists(keys); });
    if (!present.ok()) {
      o_.Breach(absl::StrCat("thread ", thread_, ": Exists: ", present.status().ToString()));
      return;
    }
    for (int j = 0; j < n; ++j) {
      if ((*present)[j] && o_.state(first + j) == KeyState::kAbsent) {
        Absent(first + j, "Exists", c_.absent_exists);
      }
    }
  }

  void Remove(int first, int n) {
    std::vector<BlockKey> keys;
    for (int j = 0; j < n; ++j) keys.push_back(o_.key(first + j).key);
    absl::StatusOr<size_t> removed = Timed("Remove", [&] { return client_.Remove(keys); });
    // Remove is an error when a node that may hold a key could not be asked (documented):
    // those keys may be left anywhere.
    c_.remove_errors += !removed.ok();
    for (int j = 0; j < n; ++j) {
      o_.set_state(first + j, removed.ok() ? KeyState::kAbsent : KeyState::kUnknown);
    }
  }

  ChaosOracle& o_;
  ChaosGate& gate_;
  Client& client_;
  const int thread_;
  std::mt19937_64 rng_;
  const absl::Duration bound_;
  ChaosWorkerCounters c_;
};

}  // namespace ems::testing

#endif  // EMS_TESTS_TESTING_CHAOS_WORKER_H_
