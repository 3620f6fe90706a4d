#include "harness/putget.h"

#include <cstring>
#include <string>

#include "absl/container/flat_hash_map.h"
#include "absl/time/time.h"
#include "client/testing/unused_client.h"
#include "common/prefix_hash.h"
#include "ems/v1/data.pb.h"
#include "gtest/gtest.h"

namespace ems::bench {
namespace {

// A clock that moves only when told to, and a microsecond each time it is read.
struct FakeClock {
  absl::Time t = absl::UnixEpoch();
  absl::Time Now() { return t += absl::Microseconds(1); }
};

// An in-memory store that keeps what was put; each call takes a millisecond of `clock`.
class MemoryClient final : public testing::UnusedClient {
 public:
  explicit MemoryClient(FakeClock* clock) : clock_(clock) {}
  absl::Status Put(const BlockKey& key, absl::Span<const uint8_t> value, const BlockKey*) override {
    clock_->t += absl::Milliseconds(1);
    blocks_[key.digest].assign(value.begin(), value.end());
    return absl::OkStatus();
  }
  absl::StatusOr<size_t> Get(const BlockKey& key, absl::Span<uint8_t> out) override {
    clock_->t += absl::Milliseconds(1);
    auto it = blocks_.find(key.digest);
    if (it == blocks_.end() || it->second.size() > out.size()) {
      return absl::NotFoundError("not stored");
    }
    std::memcpy(out.data(), it->second.data(), it->second.size());
    return it->second.size();
  }
  absl::StatusOr<size_t> MatchPrefix(absl::Span<const BlockKey> keys) override {
    clock_->t += absl::Seconds(1);  // not a put or a get: none of it is theirs
    size_t n = 0;
    while (n < keys.size() && blocks_.contains(keys[n].digest)) ++n;
    return n;
  }

 private:
  FakeClock* const clock_;
  absl::flat_hash_map<Digest, std::vector<uint8_t>> blocks_;
};

std::vector<BlockKey> PromptKeys(int blocks) {
  std::vector<uint32_t> tokens(static_cast<size_t>(blocks) * 16);
  for (size_t t = 0; t < tokens.size(); ++t) tokens[t] = static_cast<uint32_t>(t);
  std::vector<BlockKey> keys;
  for (const Digest& d : PrefixHasher(16).Hash(tokens)) keys.push_back({"test/putget", d});
  return keys;
}

// putget's GB/s is bytes over the time spent in the store's calls: each call's own time,
// from just before it to just after, and nothing between calls (making each block's bytes,
// checking each read, the MatchPrefix between the puts and the gets). The loop once timed
// all of it, which more than halved the GB/s of a 2 MiB read over loopback.
TEST(PutGetTest, ThroughputTimesTheCallsAndNothingBetweenThem) {
  constexpr int kBlocks = 16;
  FakeClock clock;
  MemoryClient client(&clock);
  const StoreAndVerifyResult r =
      StoreAndVerify(client, PromptKeys(kBlocks), 64 << 10, [&] { return clock.Now(); });
  ASSERT_TRUE(r.put_error.ok()) << r.put_error;
  ASSERT_TRUE(r.matched.ok());
  EXPECT_EQ(*r.matched, static_cast<size_t>(kBlocks));
  EXPECT_EQ(r.missing, 0);
  EXPECT_EQ(r.wrong, 0) << "every byte read back is the block's own";
  EXPECT_EQ(r.put_latency.count(), static_cast<size_t>(kBlocks));
  EXPECT_EQ(r.get_latency.count(), static_cast<size_t>(kBlocks));
  // A call: a millisecond in the store, and one read of the clock after its start.
  const absl::Duration per_call = absl::Milliseconds(1) + absl::Microseconds(1);
  EXPECT_EQ(r.put_time, kBlocks * per_call);
  EXPECT_EQ(r.get_time, kBlocks * per_call);
}

// A read that returns other bytes, or none, is counted, not timed away.
TEST(PutGetTest, WrongAndMissingReadsAreCounted) {
  class Flaky final : public testing::UnusedClient {
   public:
    absl::Status Put(const BlockKey&, absl::Span<const uint8_t>, const BlockKey*) override {
      return absl::OkStatus();
    }
    absl::StatusOr<size_t> Get(const BlockKey&, absl::Span<uint8_t> out) override {
      if (++gets_ % 2 == 0) return absl::NotFoundError("evicted");
      std::memset(out.data(), 0, out.size());
      return out.size();
    }
    absl::StatusOr<size_t> MatchPrefix(absl::Span<const BlockKey>) override { return 0; }

   private:
    int gets_ = 0;
  } client;
  const StoreAndVerifyResult r = StoreAndVerify(client, PromptKeys(4), 4096);
  EXPECT_EQ(r.missing, 2);
  EXPECT_EQ(r.wrong, 2);
}

}  // namespace
}  // namespace ems::bench
