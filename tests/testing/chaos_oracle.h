// The chaos test's model of the store: the keys its clients use (chained prefix keys, each
// with one deterministic value, as an engine's KV blocks are a function of their prefix), what
// each client was told about each key, and the promise breaches it saw.
//
// Each key belongs to one worker thread, which alone changes its state while it runs; the
// checker reads and changes states only while every worker is paused (ChaosGate), whose mutex
// orders the two. Breaches are internally synchronized.
#ifndef EMS_TESTS_TESTING_CHAOS_ORACLE_H_
#define EMS_TESTS_TESTING_CHAOS_ORACLE_H_

#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "common/key.h"
#include "common/prefix_hash.h"
#include "testing/blocks.h"

namespace ems::testing {

// What the clients were told of a key. Only kHeld carries a promise: readable (through one
// node's death with replication 2) until removed. kUnknown is a key whose last put was dropped
// or failed, or whose remove failed: it may or may not be stored, but any bytes read back must
// still be exactly its value.
enum class KeyState { kAbsent, kHeld, kUnknown };

struct ChaosKey {
  BlockKey key;
  int parent = -1;  // index of the previous block of its prompt, -1 for the first
  std::vector<uint8_t> value;
};

class ChaosOracle {
 public:
  // `threads` workers × `prompts` prompts × `blocks` blocks; values of 16 to 96 KiB (multiples
  // of the pool's 4 KiB granule, so used bytes can be checked exactly).
  ChaosOracle(int threads, int prompts, int blocks, uint64_t seed)
      : threads_(threads), prompts_(prompts), blocks_(blocks) {
    static constexpr size_t kSizes[] = {16 << 10, 32 << 10, 64 << 10, 96 << 10};
    for (int t = 0; t < threads; ++t) {
      for (int p = 0; p < prompts; ++p) {
        Digest d = kRootDigest;
        for (int b = 0; b < blocks; ++b) {
          const uint32_t tokens[4] = {static_cast<uint32_t>(seed), static_cast<uint32_t>(t),
                                      static_cast<uint32_t>(p), static_cast<uint32_t>(b)};
          d = ChainDigest(HashAlgorithm::kXxh3_128, d, tokens);
          const uint64_t id = keys_.size();
          ChaosKey k{BlockKey{"chaos/model", d}, b == 0 ? -1 : static_cast<int>(id - 1), {}};
          k.value = TestValue(id * 7919 + seed, kSizes[(id * 2654435761u + seed) % 4]);
          keys_.push_back(std::move(k));
        }
      }
    }
    state_.assign(keys_.size(), KeyState::kAbsent);
  }

  int size() const { return static_cast<int>(keys_.size()); }
  int Index(int thread, int prompt, int block) const {
    return (thread * prompts_ + prompt) * blocks_ + block;
  }
  int prompts() const { return prompts_; }
  int blocks() const { return blocks_; }
  const ChaosKey& key(int i) const { return keys_[i]; }
  KeyState state(int i) const { return state_[i]; }
  void set_state(int i, KeyState s) { state_[i] = s; }

  // True if `got` bytes (the size a read returned, then the buffer) are exactly key i's value.
  bool Matches(int i, size_t got, const uint8_t* data) const {
    const std::vector<uint8_t>& v = keys_[i].value;
    return got == v.size() && std::memcmp(data, v.data(), v.size()) == 0;
  }

  // Records a broken promise; the first few are kept word for word.
  void Breach(const std::string& what) {
    absl::MutexLock lock(&mu_);
    ++breaches_;
    if (messages_.size() < 40) messages_.push_back(what);
  }
  int breaches() const {
    absl::MutexLock lock(&mu_);
    return breaches_;
  }
  std::string BreachReport() const {
    absl::MutexLock lock(&mu_);
    std::string out;
    for (const std::string& m : messages_) absl::StrAppend(&out, "  ", m, "\n");
    return out;
  }

 private:
  const int threads_, prompts_, blocks_;
  std::vector<ChaosKey> keys_;
  std::vector<KeyState> state_;

  mutable absl::Mutex mu_;
  int breaches_ ABSL_GUARDED_BY(mu_) = 0;
  std::vector<std::string> messages_ ABSL_GUARDED_BY(mu_);
};

// Lets the checker stop every worker between two calls: Pause returns once none is inside
// one, and workers wait in Enter until Resume. Thread-safe.
class ChaosGate {
 public:
  void Enter() {
    absl::MutexLock lock(&mu_);
    mu_.Await(absl::Condition(
        +[](bool* paused) { return !*paused; }, &paused_));
    ++inside_;
  }
  void Exit() {
    absl::MutexLock lock(&mu_);
    --inside_;
  }
  void Pause() {
    absl::MutexLock lock(&mu_);
    paused_ = true;
    mu_.Await(absl::Condition(
        +[](int* n) { return *n == 0; }, &inside_));
  }
  void Resume() {
    absl::MutexLock lock(&mu_);
    paused_ = false;
  }

 private:
  absl::Mutex mu_;
  bool paused_ ABSL_GUARDED_BY(mu_) = false;
  int inside_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace ems::testing

#endif  // EMS_TESTS_TESTING_CHAOS_ORACLE_H_
