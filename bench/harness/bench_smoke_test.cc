// ems-bench throughput and lookup, end to end on loopback with the real servers they start
// (ems-node, redis-server, memcached): the JSON contract of issue #4 and #3, and that every read
// they timed came back intact. Figures are not asserted: speed is for the benchmark to report.
#include <sys/wait.h>

#include <cstdio>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "testing/run_bench.h"

namespace {

using ems::bench::testing::RunBenchStatus;

// Runs `ems-bench <args> --json`; returns the JSON objects it printed, one per line.
std::vector<nlohmann::json> RunBench(const std::string& args) {
  const std::string cmd = absl::StrCat(EMS_BIN_DIR, "/ems-bench ", args, " --json 2>/dev/null");
  std::FILE* p = popen(cmd.c_str(), "r");
  EXPECT_NE(p, nullptr) << cmd;
  if (p == nullptr) return {};
  std::vector<nlohmann::json> out;
  char line[4096];
  while (std::fgets(line, sizeof(line), p) != nullptr) {
    auto j = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (!j.is_discarded() && j.is_object()) out.push_back(std::move(j));
  }
  EXPECT_EQ(pclose(p), 0) << cmd;
  return out;
}

// "64KB" once ran 64-byte blocks under that label, "0" divided by zero and a concurrency list
// with no valid entry crashed on an empty list.
TEST(BenchSmokeTest, ThroughputRejectsBadSizesAndConcurrencyByName) {
  const std::pair<const char*, const char*> cases[] = {
      {"--sizes=64KB", "bad --sizes entry '64KB'"},
      {"--sizes=0", "bad --sizes entry '0'"},
      {"--sizes=64KiB,", "bad --sizes entry ''"},
      {"--concurrency=0", "bad --concurrency entry '0'"},
      {"--concurrency=1,four", "bad --concurrency entry 'four'"},
  };
  for (const auto& [args, error] : cases) {
    SCOPED_TRACE(args);
    auto [status, out] = RunBenchStatus(absl::StrCat("throughput --targets=memcpy ", args));
    EXPECT_EQ(status, 2) << out;
    EXPECT_NE(out.find(error), std::string::npos) << out;
    EXPECT_EQ(out.find("GB/s"), std::string::npos) << "no case ran: " << out;
  }
}

TEST(BenchSmokeTest, ThroughputPrintsOneVerifiedLinePerTargetOpAndCase) {
  const auto lines = RunBench(
      "throughput --targets=ems,ems-grpc,ems-local,ems-local-2rt,redis,memcached,memcpy "
      "--sizes=64KiB,256KiB --concurrency=1,3 --bytes_per_case=2097152 --rounds=2");
  std::set<std::pair<std::string, std::string>> seen;
  for (const auto& j : lines) {
    ASSERT_TRUE(j.contains("target") && j.contains("op") && j.contains("gbps")) << j.dump();
    EXPECT_EQ(j["failures"].get<int>(), 0) << j.dump();
    EXPECT_GT(j["gbps"].get<double>(), 0) << j.dump();
    EXPECT_GT(j["p99_us"].get<double>(), 0) << j.dump();
    EXPECT_TRUE(j["op"] == "get" || j["op"] == "put") << j.dump();
    seen.insert({j["target"].get<std::string>(), j["op"].get<std::string>()});
  }
  EXPECT_EQ(lines.size(), 7u * 2 * 2 * 2) << "targets x ops x sizes x concurrencies";
  EXPECT_EQ(seen.size(), 14u);
}

TEST(BenchSmokeTest, LookupPrintsTheContractLinePerTarget) {
  const auto lines = RunBench(
      "lookup --lookup_targets=ems,redis --lookup_seconds=1 --lookup_prompts=16 "
      "--lookup_threads=2");
  ASSERT_EQ(lines.size(), 2u);
  for (const auto& j : lines) {
    EXPECT_EQ(j["keys"].get<int>(), 64) << j.dump();
    EXPECT_GT(j["ops_per_s"].get<double>(), 0) << j.dump();
    EXPECT_GE(j["p99_us"].get<double>(), j["p50_us"].get<double>()) << j.dump();
    EXPECT_EQ(j["wrong"].get<int>(), 0) << "every stored prompt matched whole: " << j.dump();
  }
  EXPECT_EQ(lines[0]["target"], "ems");
  EXPECT_EQ(lines[0]["nodes"].get<int>(), 3);
  EXPECT_EQ(lines[1]["target"], "redis");
  EXPECT_EQ(lines[1]["nodes"].get<int>(), 1) << "one redis-server";
}

// 0 prompts divided by zero after the cluster was up (SIGFPE, its directory left in /tmp), 0
// seconds printed "nan" as ops_per_s, 0 nodes failed without a word, and a misspelt target
// was found only after the targets before it had run.
TEST(BenchSmokeTest, LookupRejectsBadFlagsByNameBeforeAnythingRuns) {
  const std::pair<const char*, const char*> cases[] = {
      {"--lookup_targets=ems --lookup_prompts=0", "--lookup_prompts must be between 1 and"},
      {"--lookup_targets=redis --lookup_seconds=0", "--lookup_seconds must be above 0"},
      {"--lookup_targets=ems --lookup_nodes=0", "--lookup_nodes must be between 1 and 64"},
      {"--lookup_targets=redis --lookup_threads=0", "--lookup_threads must be between 1 and"},
      {"--lookup_targets=redis --lookup_keys=-1", "--lookup_keys must be between 1 and"},
      {"--lookup_targets=redis,emz --lookup_seconds=0.2", "unknown target 'emz'"},
  };
  for (const auto& [args, error] : cases) {
    SCOPED_TRACE(args);
    auto [status, out] = RunBenchStatus(absl::StrCat("lookup ", args));
    EXPECT_EQ(status, 2) << out;
    EXPECT_NE(out.find(error), std::string::npos) << out;
    EXPECT_EQ(out.find("ops_per_s"), std::string::npos) << "nothing ran: " << out;
  }
}

// A block of 0 tokens hashed the prompt into no keys, and the first put read past the end of
// them; a negative count asked for a vector of 2^64 tokens.
TEST(BenchSmokeTest, PutGetRejectsANonPositiveBlockTokensByName) {
  for (const char* args : {"--block_tokens=0", "--block_tokens=-4"}) {
    SCOPED_TRACE(args);
    auto [status, out] =
        RunBenchStatus(absl::StrCat("putget --blocks=2 --block_bytes=4096 ", args));
    EXPECT_EQ(status, 2) << out;
    EXPECT_NE(out.find("--block_tokens must be positive"), std::string::npos) << out;
    EXPECT_EQ(out.find("started ems-node"), std::string::npos) << "nothing was started: " << out;
  }
}

}  // namespace
