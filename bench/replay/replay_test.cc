#include <filesystem>

#include "absl/container/flat_hash_set.h"
#include "client/testing/unused_client.h"
#include "ems/v1/data.pb.h"
#include "gtest/gtest.h"
#include "harness/stats.h"
#include "replay/live.h"
#include "replay/model.h"
#include "replay/queue.h"
#include "replay/report.h"
#include "replay/simulate.h"
#include "replay/trace.h"

namespace ems::bench {
namespace {

TEST(TraceTest, ParsesMooncakeLinesAndNamesWhatIsWrong) {
  auto r = ParseTraceLine(
      R"({"timestamp": 5, "input_length": 1030, "output_length": 7, "hash_ids": [0, 9, 12]})");
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->timestamp_ms, 5);
  EXPECT_EQ(r->input_length, 1030);
  EXPECT_EQ(r->hash_ids, (std::vector<uint64_t>{0, 9, 12}));
  EXPECT_NE(ParseTraceLine("{nope").status().message().find("JSON"), std::string::npos);
  EXPECT_NE(ParseTraceLine(R"({"timestamp": 1, "input_length": 2, "output_length": 3})")
                .status()
                .message()
                .find("hash_ids"),
            std::string::npos);
  EXPECT_FALSE(
      ParseTraceLine(R"({"timestamp": 1, "input_length": 2, "output_length": 3, "hash_ids": [-1]})")
          .ok());
  auto early =
      ParseTraceLine(R"({"timestamp": -1, "input_length": 2, "output_length": 3, "hash_ids": []})");
  ASSERT_FALSE(early.ok());
  EXPECT_NE(early.status().message().find("timestamp"), std::string::npos) << early.status();
  // The policies keep ids as id + 1, with 0 for "no parent": the largest id would be 0.
  auto reserved = ParseTraceLine(
      R"({"timestamp": 1, "input_length": 2, "output_length": 3, "hash_ids": [18446744073709551615]})");
  ASSERT_FALSE(reserved.ok());
  EXPECT_NE(reserved.status().message().find("reserved"), std::string::npos) << reserved.status();
}

// A trace file holding `lines`, removed when it goes out of scope.
class TraceFile {
 public:
  TraceFile(const std::string& name, const std::string& lines)
      : path_(std::filesystem::temp_directory_path() / name) {
    std::FILE* f = std::fopen(path_.c_str(), "w");
    std::fputs(lines.c_str(), f);
    std::fclose(f);
  }
  ~TraceFile() { std::filesystem::remove(path_); }
  std::string path() const { return path_.string(); }

 private:
  std::filesystem::path path_;
};

// Reads `trace` leniently (returning what it kept) and strictly, which must fail with `error`.
std::vector<Request> SkippedOrFatal(const TraceFile& trace, const std::string& error) {
  auto strict = ReadMooncakeTrace(trace.path(), {.strict = true});
  EXPECT_FALSE(strict.ok());
  if (!strict.ok()) {
    EXPECT_NE(strict.status().message().find(error), std::string::npos) << strict.status();
  }
  auto lenient = ReadMooncakeTrace(trace.path(), {});
  EXPECT_TRUE(lenient.ok()) << lenient.status();
  return lenient.ok() ? *std::move(lenient) : std::vector<Request>{};
}

TEST(TraceTest, MalformedLinesAreSkippedOrFatalWithTheirLineNumber) {
  TraceFile trace("ems_replay_test.jsonl",
                  R"({"timestamp": 0, "input_length": 10, "output_length": 1, "hash_ids": [0]})"
                  "\nthis is not json\n"
                  R"({"timestamp": 1, "input_length": 10, "output_length": 1, "hash_ids": [0, 1]})"
                  "\n");
  EXPECT_EQ(SkippedOrFatal(trace, ":2: not a JSON object").size(), 2u);
}

// A directory opens as a stream that reads nothing: it was a trace of no requests, and the run
// ended with "no requests to replay", naming neither the path nor the problem.
TEST(TraceTest, ADirectoryIsNotATraceOfNoRequests) {
  const std::filesystem::path dir = std::filesystem::temp_directory_path() / "ems_replay_dir_test";
  std::filesystem::create_directories(dir);
  for (const bool strict : {false, true}) {
    auto r = ReadMooncakeTrace(dir.string(), {.strict = strict});
    ASSERT_FALSE(r.ok()) << "read " << r->size() << " requests from a directory";
    EXPECT_NE(r.status().message().find("cannot read trace " + dir.string()), std::string::npos)
        << r.status();
  }
  std::filesystem::remove(dir);
}

TEST(TraceTest, ALineThatGoesBackInTimeIsMalformed) {
  TraceFile trace("ems_replay_order_test.jsonl",
                  R"({"timestamp": 5, "input_length": 10, "output_length": 1, "hash_ids": [0]})"
                  "\n"
                  R"({"timestamp": 3, "input_length": 10, "output_length": 1, "hash_ids": [1]})"
                  "\n"
                  R"({"timestamp": 5, "input_length": 10, "output_length": 1, "hash_ids": [2]})"
                  "\n");
  auto kept = SkippedOrFatal(trace, ":2: `timestamp` 3 is before the previous request's 5");
  ASSERT_EQ(kept.size(), 2u);  // equal timestamps are in order
  EXPECT_EQ(kept[1].hash_ids, std::vector<uint64_t>{2});
}

// The token ratios and the prefill model read input_length, the hits read hash_ids: with the
// block size given, a line where they disagree is malformed, naming both.
TEST(TraceTest, AHashIdCountThatDisagreesWithTheInputLengthIsMalformed) {
  TraceFile trace(
      "ems_replay_count_test.jsonl",
      R"({"timestamp": 0, "input_length": 1024, "output_length": 1, "hash_ids": [0, 1]})"
      "\n"
      R"({"timestamp": 1, "input_length": 1025, "output_length": 1, "hash_ids": [0, 1]})"
      "\n"
      R"({"timestamp": 2, "input_length": 0, "output_length": 1, "hash_ids": []})"
      "\n");
  auto strict = ReadMooncakeTrace(trace.path(), {.strict = true, .block_tokens = 512});
  ASSERT_FALSE(strict.ok());
  EXPECT_NE(strict.status().message().find(
                ":2: `hash_ids` has 2 ids but input_length 1025 is 3 blocks of 512 tokens"),
            std::string::npos)
      << strict.status();
  auto lenient = ReadMooncakeTrace(trace.path(), {.block_tokens = 512});
  ASSERT_TRUE(lenient.ok()) << lenient.status();
  ASSERT_EQ(lenient->size(), 2u);
  EXPECT_EQ((*lenient)[1].input_length, 0);
  // At 1,024 tokens per block the first line is the one that disagrees.
  auto other = ReadMooncakeTrace(trace.path(), {.strict = true, .block_tokens = 1024});
  ASSERT_FALSE(other.ok());
  EXPECT_NE(other.status().message().find(":1: "), std::string::npos) << other.status();
}

TEST(SimulateTest, PrefixSemanticsOnAHandMadeStream) {
  // Requests: [1,2,3], then [1,2,4]: the second hits 1 and 2 (leading run 2 of 3).
  std::vector<Request> reqs = {{0, 1536, 1, {1, 2, 3}},
                               {1, 1536, 1, {1, 2, 4}},
                               {2, 1536, 1, {9, 2, 3}}};  // 2, 3 present but not leading
  auto r = Simulate(reqs, "lru", 0, 512);
  ASSERT_TRUE(r.ok());
  EXPECT_DOUBLE_EQ(r->prefix_hit_ratio, 2.0 / 9);
  EXPECT_DOUBLE_EQ(r->per_block_hit_ratio, 4.0 / 9);
  EXPECT_DOUBLE_EQ(r->token_prefix_hit_ratio, 1024.0 / (3 * 1536));
  EXPECT_FALSE(Simulate(reqs, "nonsense", 0, 512).ok());
}

TEST(SimulateTest, BeladyEvictsTheBlockNeededFurthestAhead) {
  // Capacity 2. After [1,2] then [3]: 1 is needed next (request 3), 2 never again, so MIN
  // drops 2 and the last request hits 1; LRU drops 1 (least recent) and misses it.
  std::vector<Request> reqs = {{0, 1024, 1, {1, 2}}, {1, 512, 1, {3}}, {2, 512, 1, {1}}};
  auto belady = Simulate(reqs, kBeladyPolicy, 2, 512);
  auto lru = Simulate(reqs, "lru", 2, 512);
  ASSERT_TRUE(belady.ok() && lru.ok());
  EXPECT_DOUBLE_EQ(belady->prefix_hit_ratio, 1.0 / 4);
  EXPECT_DOUBLE_EQ(lru->prefix_hit_ratio, 0.0);
  // Unbounded, it is every other policy's ideal.
  EXPECT_DOUBLE_EQ(Simulate(reqs, kBeladyPolicy, 0, 512)->prefix_hit_ratio,
                   Simulate(reqs, "lru", 0, 512)->prefix_hit_ratio);
}

// Ids need not grow along a prompt: Belady must still evict the child before its parent when
// both are needed next by the same request, and so stay an upper bound.
TEST(SimulateTest, BeladyEvictsTheDeeperOfTwoBlocksNeededByTheSameRequest) {
  std::vector<Request> reqs = {{0, 1024, 1, {9, 1}}, {1, 1024, 1, {9, 1}}, {2, 1024, 1, {9, 1}}};
  auto belady = Simulate(reqs, kBeladyPolicy, 1, 512);
  auto prefix = Simulate(reqs, "prefix", 1, 512);
  ASSERT_TRUE(belady.ok() && prefix.ok());
  EXPECT_DOUBLE_EQ(belady->prefix_hit_ratio, 2.0 / 6);  // block 9 hits in requests 2 and 3
  EXPECT_GE(belady->prefix_hit_ratio, prefix->prefix_hit_ratio);
}

TEST(SimulateTest, APlacementSplitsTheCapacityOverCachesByOwner) {
  // Capacity 2. One cache: [5] evicts 2, the least recent, so [2,3] then has no leading hit
  // (3 is still there). Two caches of 1 by parity: 5 lands beside 3 and evicts it, 2 stays,
  // so [2,3] hits its first block.
  std::vector<Request> reqs = {{0, 1024, 1, {2, 3}}, {1, 512, 1, {5}}, {2, 1024, 1, {2, 3}}};
  auto one = Simulate(reqs, "lru", 2, 512);
  Placement by_parity{2, [](uint64_t id) { return static_cast<int>(id % 2); }};
  auto two = Simulate(reqs, "lru", 2, 512, by_parity);
  ASSERT_TRUE(one.ok() && two.ok());
  EXPECT_DOUBLE_EQ(one->prefix_hit_ratio, 0.0);
  EXPECT_DOUBLE_EQ(one->per_block_hit_ratio, 1.0 / 5);
  EXPECT_DOUBLE_EQ(two->prefix_hit_ratio, 1.0 / 5);
  EXPECT_DOUBLE_EQ(two->per_block_hit_ratio, 1.0 / 5);

  EXPECT_FALSE(Simulate(reqs, "lru", 2, 512, Placement{0, nullptr}).ok());
  EXPECT_FALSE(Simulate(reqs, "lru", 2, 512, Placement{2, nullptr}).ok());
  EXPECT_FALSE(Simulate(reqs, kBeladyPolicy, 2, 512, by_parity).ok());
}

TEST(SimulateTest, TheLocalClusterPlacementSpreadsKeysOverItsNodesLikeTheRing) {
  auto a = LocalClusterPlacement(ReplayNamespace("llama3-8b"), 3);
  auto again = LocalClusterPlacement(ReplayNamespace("llama3-8b"), 3);
  auto other_ns = LocalClusterPlacement(ReplayNamespace("qwen2-7b"), 3);
  ASSERT_TRUE(a.ok() && again.ok() && other_ns.ok());
  EXPECT_EQ(a->caches, 3);
  std::vector<int> count(3);
  int moved = 0;
  for (uint64_t id = 0; id < 30000; ++id) {
    const int o = a->owner(id);
    ASSERT_TRUE(o >= 0 && o < 3) << o;
    ++count[o];
    EXPECT_EQ(again->owner(id), o) << "placement is deterministic";
    moved += other_ns->owner(id) != o;
  }
  for (int c : count) EXPECT_NEAR(c, 10000, 1000) << "the ring spreads ids evenly";
  EXPECT_GT(moved, 15000) << "the namespace seeds the key's ring position";
  EXPECT_FALSE(LocalClusterPlacement("ns", 0).ok());
}

// Where the working set just fits, protecting hit blocks costs hits LRU gets: the prefix
// policy lost 13 points to LRU here (0.665 against 0.791) until it dueled its tunings.
TEST(SimulateTest, ThePrefixPolicyStaysNearLruWhereTheWorkingSetJustFits) {
  const std::vector<Request> reqs = GenerateMultiturn({});
  auto lru = Simulate(reqs, "lru", 1500, 512);
  auto prefix = Simulate(reqs, "prefix", 1500, 512);
  ASSERT_TRUE(lru.ok() && prefix.ok());
  EXPECT_GT(lru->prefix_hit_ratio, 0.75) << "the capacity where LRU stops missing";
  EXPECT_GE(prefix->prefix_hit_ratio, lru->prefix_hit_ratio - 0.02);
}

// The shortened real trace: invariants, not numbers.
TEST(SimulateTest, ShortenedConversationTraceBehavesSanely) {
  const std::string path =
      std::string(EMS_SOURCE_DIR) + "/../shared/traces/conversation_trace.jsonl";
  if (!std::filesystem::exists(path)) GTEST_SKIP() << "no shared traces beside the checkout";
  auto reqs = ReadMooncakeTrace(path, {.strict = true, .limit = 2000});
  ASSERT_TRUE(reqs.ok()) << reqs.status();
  ASSERT_EQ(reqs->size(), 2000u);
  double last = -1;
  for (size_t cap : {500, 2000, 8000, 0}) {
    for (const char* policy : {"lru", "s3fifo", "prefix"}) {
      auto r = Simulate(*reqs, policy, cap, 512);
      ASSERT_TRUE(r.ok());
      EXPECT_GE(r->prefix_hit_ratio, 0.0);
      EXPECT_LE(r->prefix_hit_ratio, r->per_block_hit_ratio + 1e-12) << policy;
      EXPECT_LE(r->per_block_hit_ratio, 1.0);
      EXPECT_LE(r->token_prefix_hit_ratio, 1.0);
      if (std::string(policy) == "lru") {
        EXPECT_GE(r->prefix_hit_ratio, last) << "LRU hit ratio grows with capacity";
        last = r->prefix_hit_ratio;
      }
    }
  }
  // No online policy beats the offline bound.
  for (size_t cap : {500, 2000, 8000}) {
    auto bound = Simulate(*reqs, kBeladyPolicy, cap, 512);
    ASSERT_TRUE(bound.ok());
    for (const char* policy : {"lru", "s3fifo", "prefix"}) {
      EXPECT_GE(bound->prefix_hit_ratio, Simulate(*reqs, policy, cap, 512)->prefix_hit_ratio)
          << policy << " at " << cap;
    }
  }
  // Unbounded capacity: every policy sees the same (ideal) hit ratio.
  auto lru = Simulate(*reqs, "lru", 0, 512);
  auto prefix = Simulate(*reqs, "prefix", 0, 512);
  EXPECT_DOUBLE_EQ(lru->prefix_hit_ratio, prefix->prefix_hit_ratio);
}

TEST(QueueTest, FirstComeFirstServedByTheInstanceFreeFirst) {
  // Two instances, 2 s per request. Requests 0 and 1 start at once; 2 waits for instance 0
  // (both free at 2 s: the lower index); 3 arrives at 5 s and takes instance 1, idle since 2 s.
  std::vector<std::pair<size_t, int>> calls;
  QueueResult q = Queue({0, 0, 0, 5}, 2, [&](size_t i, int k) {
    calls.push_back({i, k});
    return 2.0;
  });
  EXPECT_EQ(q.ttft_s, (std::vector<double>{2, 2, 4, 2}));
  EXPECT_EQ(q.instance, (std::vector<int>{0, 1, 0, 1}));
  EXPECT_EQ(calls, (std::vector<std::pair<size_t, int>>{{0, 0}, {1, 1}, {2, 0}, {3, 1}}))
      << "service is asked once per request, in order, with the instance that serves it";
}

TEST(QueueTest, ACacheAwareRouterWaitsForTheInstanceWhereTheRequestFinishesFirst) {
  // Two instances, both busy until 2 s. Request 2 arrives at 1 s: 1 s of work on instance 0,
  // which holds its prefix, against 5 s on instance 1. It waits for instance 0 (done at 3 s)
  // rather than take instance 1 (done at 7 s). Request 3, at 1 s too, costs 6 s on instance 0
  // (now busy until 3 s: done at 9 s) and 5 s on instance 1 (done at 7 s).
  const std::vector<std::vector<double>> cost = {{2, 2}, {2, 2}, {1, 5}, {6, 5}};
  std::vector<std::pair<size_t, int>> served;
  QueueResult q = QueueByFinish(
      {0, 0, 1, 1}, 2, [&](size_t i, int k) { return cost[i][k]; },
      [&](size_t i, int k) {
        served.push_back({i, k});
        return cost[i][k];
      });
  EXPECT_EQ(q.instance, (std::vector<int>{0, 1, 0, 1}));
  EXPECT_EQ(q.ttft_s, (std::vector<double>{2, 2, 2, 6}));
  EXPECT_EQ(served, (std::vector<std::pair<size_t, int>>{{0, 0}, {1, 1}, {2, 0}, {3, 1}}));
}

TEST(QueueTest, SummaryCountsTheWaitTheLoadAndTheSavings) {
  // Four requests over 5 s on two instances, 2 s each without a cache, 1 s with one.
  std::vector<Request> reqs = {
      {0, 512, 1, {1}}, {0, 512, 1, {2}}, {0, 512, 1, {3}}, {5000, 512, 1, {4}}};
  std::vector<double> arrival = {0, 0, 0, 5};
  Baseline none{"no-cache", "", {0, 0, 0, 0}, {2, 2, 2, 2}, {}};
  none.queued_s = Queue(arrival, 2, [&](size_t i, int) { return none.ttft_s[i]; }).ttft_s;
  Baseline cached{"ems", "", {1, 1, 1, 1}, {1, 1, 1, 1}, {}};
  cached.queued_s = Queue(arrival, 2, [&](size_t i, int) { return cached.ttft_s[i]; }).ttft_s;
  const BaselineStats n = Summarize(none, reqs, 512, nullptr, 2);
  const BaselineStats c = Summarize(cached, reqs, 512, &n, 2);
  EXPECT_DOUBLE_EQ(n.load, 8.0 / (5 * 2));
  EXPECT_DOUBLE_EQ(c.load, 4.0 / (5 * 2));
  EXPECT_DOUBLE_EQ(n.queued_mean_ms, 2500);  // (2 + 2 + 4 + 2) / 4 s
  EXPECT_DOUBLE_EQ(c.queued_mean_ms, 1250);  // (1 + 1 + 2 + 1) / 4 s
  EXPECT_DOUBLE_EQ(c.savings, 0.5);
  EXPECT_DOUBLE_EQ(c.queued_savings, 0.5);
  EXPECT_DOUBLE_EQ(c.prefix_hit_ratio, 1.0);
}

// Nearest rank: p50 of ten TTFTs is the 5th, p90 the 9th, p99 the 10th (it used to take one
// rank higher: p50 was the 6th and p90 the largest).
TEST(QueueTest, SummaryPercentilesAreNearestRank) {
  std::vector<Request> reqs;
  Baseline b{"ems", "", {}, {}, {}};
  for (int i = 1; i <= 10; ++i) {
    reqs.push_back({0, 512, 1, {static_cast<uint64_t>(i)}});
    b.hit_blocks.push_back(0);
    b.ttft_s.push_back(11 - i);  // out of order: 10 s .. 1 s
    b.queued_s.push_back(11 - i);
  }
  const BaselineStats s = Summarize(b, reqs, 512, nullptr, 1);
  EXPECT_DOUBLE_EQ(s.p50_ms, 5000);
  EXPECT_DOUBLE_EQ(s.p90_ms, 9000);
  EXPECT_DOUBLE_EQ(s.p99_ms, 10000);
  EXPECT_DOUBLE_EQ(s.queued_p50_ms, 5000);
  EXPECT_DOUBLE_EQ(NearestRank({1, 2, 3, 4}, 25), 1);
  EXPECT_DOUBLE_EQ(NearestRank({1, 2, 3, 4}, 26), 2);
  EXPECT_DOUBLE_EQ(NearestRank({7}, 0), 7);
  EXPECT_DOUBLE_EQ(NearestRank({}, 50), 0);
}

// A quote in the trace's name or the plot directory once broke the gnuplot script and the
// shell command that runs it (an empty PNG and an error after the report).
TEST(ReportTest, PlotsSurviveQuotesInTheTitleAndTheDirectory) {
#if defined(__SANITIZE_THREAD__)
  // scripts/tsan.sh puts its ThreadSanitizer-built Abseil on LD_LIBRARY_PATH, and gnuplot,
  // which inherits it and has no TSan runtime, crashes loading it. The other suites run this.
  GTEST_SKIP() << "gnuplot cannot load the TSan-built libraries on LD_LIBRARY_PATH";
#endif
  const std::filesystem::path dir = std::filesystem::temp_directory_path() / "ems replay's plots";
  std::filesystem::remove_all(dir);
  Baseline b{"ems", "3 x 1 blocks, 'lru'", {0, 1}, {0.5, 0.25}, {0.5, 0.25}};
  SimResult point;
  point.policy = "lru";
  point.capacity_blocks = 4;
  point.prefix_hit_ratio = 0.5;
  auto images = WritePlots(dir.string(), {b}, {point}, "lru", 4, 0.5, "bob's trace, llama3-8b");
  ASSERT_TRUE(images.ok()) << images.status();
  ASSERT_FALSE(images->empty());
  for (const std::string& img : *images) {
    EXPECT_GT(std::filesystem::file_size(img), 1000u) << img;
  }
  std::filesystem::remove_all(dir);
}

TEST(ModelTest, PresetsHaveThePublishedKvBytesPerToken) {
  EXPECT_EQ(FindModel("llama3-8b")->KvBytesPerToken(), 128u << 10);
  EXPECT_EQ(FindModel("llama3-70b")->KvBytesPerToken(), 320u << 10);
  EXPECT_EQ(FindModel("qwen2-7b")->KvBytesPerToken(), 56u << 10);
  auto bad = FindModel("gpt-5");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("llama3-8b"), std::string::npos) << "names the known";
  EXPECT_FALSE(FindGpuTflops("tpu").ok());
}

TEST(ModelTest, PrefillIsLinearPlusCausalAttention) {
  const ModelPreset m = *FindModel("llama3-8b");
  const PrefillModel p = PrefillModel::FromFlops(m, 989, 0.4);
  const double flops = 989e12 * 0.4;
  EXPECT_DOUBLE_EQ(p.seconds_per_token, 2 * 8.03e9 / flops);
  EXPECT_DOUBLE_EQ(p.seconds_per_pair, 4.0 * 32 * 4096 / flops);
  // 2 new tokens on 3 cached: 2 × 3 pairs with the cache, 1 + 2 among themselves (causal).
  EXPECT_DOUBLE_EQ(p.Seconds(2, 3), 2 * p.seconds_per_token + 9 * p.seconds_per_pair);
  EXPECT_DOUBLE_EQ(p.Seconds(0, 100), 0);
  // Tensor parallel over 4 GPUs divides both terms by 4.
  ModelPreset tp = m;
  tp.gpus = 4;
  EXPECT_DOUBLE_EQ(PrefillModel::FromFlops(tp, 989, 0.4).Seconds(1000, 0) * 4, p.Seconds(1000, 0));
}

TEST(ModelTest, TtftIsLookupPlusTransferOfHitsPlusPrefillOfTheRest) {
  TtftModel t;
  t.prefill.seconds_per_token = 1e-4;
  t.prefill.seconds_per_pair = 1e-9;
  t.kv_bytes_per_token = 128 << 10;
  t.block_tokens = 512;
  // No hit: everything is prefilled, no transfer.
  EXPECT_DOUBLE_EQ(t.Seconds(0, 0, 1000, 25), t.prefill.Seconds(1000, 0));
  // One block hit of a 1000-token prompt: 512 tokens move at 25 GB/s, 488 are computed on
  // top of them, plus the lookup.
  const double transfer = 512.0 * (128 << 10) / 25e9;
  EXPECT_DOUBLE_EQ(t.TransferSeconds(512, 25), transfer);
  EXPECT_DOUBLE_EQ(t.Seconds(0.002, 1, 1000, 25),
                   0.002 + transfer + 488 * 1e-4 + 1e-9 * (488.0 * 512 + 488.0 * 489 / 2));
  // A full hit (the last block is partial): 999 tokens load, the last one is computed.
  EXPECT_EQ(t.HitTokens(2, 1000), 1000);
  EXPECT_DOUBLE_EQ(t.Seconds(0, 2, 1000, 25), 999.0 * (128 << 10) / 25e9 + 1e-4 + 1e-9 * (999 + 1));
  // Hits always beat recomputing here: the savings are positive.
  EXPECT_LT(t.Seconds(0, 1, 1000, 25), t.Seconds(0, 0, 1000, 25));
}

TEST(LiveTest, KeysAndBlockBytesAreDeterministicAndDistinct) {
  EXPECT_EQ(ReplayKey("ns", 7), ReplayKey("ns", 7));
  EXPECT_NE(ReplayKey("ns", 7), ReplayKey("ns", 8));
  std::vector<uint8_t> a(4096), b(4096), c(4096);
  FillBlock(7, absl::MakeSpan(a));
  FillBlock(7, absl::MakeSpan(b));
  FillBlock(8, absl::MakeSpan(c));
  EXPECT_EQ(a, b);
  EXPECT_NE(a, c);
}

// A client that answers every read with success and copies nothing: the replay's check must
// call that corrupt even when its buffer still holds the right bytes from the request before.
class CopiesNothingClient final : public testing::UnusedClient {
 public:
  std::vector<absl::Status> BatchPut(absl::Span<const PutItem> items) override {
    for (const PutItem& i : items) stored_.insert(i.key.digest);
    return std::vector<absl::Status>(items.size());
  }
  std::vector<absl::StatusOr<size_t>> BatchGet(absl::Span<const GetItem> items) override {
    std::vector<absl::StatusOr<size_t>> out;
    for (const GetItem& i : items) out.push_back(i.buffer.size());
    return out;
  }
  absl::StatusOr<size_t> MatchPrefix(absl::Span<const BlockKey> keys) override {
    size_t n = 0;
    while (n < keys.size() && stored_.contains(keys[n].digest)) ++n;
    return n;
  }

 private:
  absl::flat_hash_set<Digest> stored_;
};

TEST(LiveTest, AReadThatCopiesNothingIsCorruptEvenIntoABufferHoldingTheBlocks) {
  CopiesNothingClient client;
  std::vector<Request> reqs = {{0, 1024, 1, {1, 2}}, {0, 1024, 1, {1, 2}}, {0, 1536, 1, {1, 2, 3}}};
  LiveResult r = RunLive(client, reqs, {.block_bytes = 4096, .instances = 1, .progress = false});
  ASSERT_EQ(r.records.size(), 3u);
  EXPECT_EQ(r.records[1].matched, 2u);
  EXPECT_EQ(r.records[1].loaded, 0u) << "nothing was read";
  EXPECT_EQ(r.corrupt_blocks, 4u);  // both matched blocks of requests 2 and 3
}

}  // namespace
}  // namespace ems::bench
