// ems-bench lookup: prefix lookup of a prompt's keys — EMS MatchPrefix over a 3-node cluster
// against Redis answering the same question with pipelined EXISTS, in the same run.
#include <hiredis/hiredis.h>

#include <atomic>
#include <cstdio>
#include <string>
#include <thread>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "client/client.h"
#include "common/prefix_hash.h"
#include "harness/commands.h"
#include "harness/services.h"
#include "harness/stats.h"

ABSL_FLAG(int, lookup_keys, 64, "keys per prompt (blocks in the prefix)");
ABSL_FLAG(int, lookup_prompts, 256, "distinct prompts stored before the run");
ABSL_FLAG(int, lookup_nodes, 3, "ems-node processes in the cluster");
ABSL_FLAG(int, lookup_threads, 4, "concurrent lookup loops per target");
ABSL_FLAG(double, lookup_seconds, 3, "measured seconds per target");
ABSL_FLAG(std::string, lookup_targets, "ems,ems-remote,ems-mirror,ems-grpc,redis",
          "comma-separated: ems (the default client: nodes on this host answered from their "
          "shared-memory block directories), ems-remote (as from another host: the bulk "
          "channel), ems-mirror (as from another host, answered from mirrors of the nodes' "
          "keys), ems-grpc (gRPC), redis");

namespace ems::bench {
namespace {

std::vector<std::vector<BlockKey>> MakePrompts(int prompts, int keys) {
  std::vector<std::vector<BlockKey>> out(prompts);
  PrefixHasher hasher(16);
  for (int p = 0; p < prompts; ++p) {
    std::vector<uint32_t> tokens(static_cast<size_t>(keys) * 16);
    for (size_t t = 0; t < tokens.size(); ++t) tokens[t] = static_cast<uint32_t>(p * 1000003 + t);
    for (const Digest& d : hasher.Hash(tokens)) out[p].push_back({"bench/lookup", d});
  }
  return out;
}

struct Result {
  double ops_per_s = 0;
  LatencyRecorder latency;
  int wrong = 0;
};

// Runs `lookup(thread, prompt) -> matched` in `threads` loops for `seconds`.
template <typename Lookup>
Result Measure(int threads, double seconds, int prompts, int keys, Lookup lookup) {
  std::vector<LatencyRecorder> lat(threads);
  std::atomic<int> wrong{0};
  std::atomic<uint64_t> ops{0};
  const absl::Time start = absl::Now();
  const absl::Time end = start + absl::Seconds(seconds);
  std::vector<std::thread> loops;
  for (int t = 0; t < threads; ++t) {
    loops.emplace_back([&, t] {
      for (int i = t; absl::Now() < end; i += threads) {
        const absl::Time t0 = absl::Now();
        const int matched = lookup(t, i % prompts);
        lat[t].Add(absl::Now() - t0);
        if (matched != keys) ++wrong;  // every prompt was stored whole
        ops.fetch_add(1, std::memory_order_relaxed);
      }
    });
  }
  for (auto& l : loops) l.join();
  // Over the time the loops ran, not the nominal seconds: each finishes the lookup it was in
  // when time ran out, milliseconds past the end when a lookup is slow.
  const double ran_s = absl::ToDoubleSeconds(absl::Now() - start);
  Result r;
  for (auto& l : lat) r.latency.Merge(l);
  r.ops_per_s = ops.load() / ran_s;
  r.wrong = wrong.load();
  return r;
}

void Print(const char* target, int keys, int nodes, const Result& r) {
  std::printf(
      "{\"target\":\"%s\",\"keys\":%d,\"nodes\":%d,\"ops_per_s\":%.0f,\"p50_us\":%.1f,"
      "\"p99_us\":%.1f,\"wrong\":%d}\n",
      target, keys, nodes, r.ops_per_s, r.latency.PercentileUs(50), r.latency.PercentileUs(99),
      r.wrong);
  std::fflush(stdout);
}

// Waits until `prompt` is answered without a round trip: the mirrors have their snapshots.
bool MirrorsInStep(Client& client, const std::vector<BlockKey>& prompt) {
  const absl::Time deadline = absl::Now() + absl::Seconds(10);
  while (absl::Now() < deadline) {
    const uint64_t before = client.counters().lookups_without_round_trip;
    if (client.MatchPrefix(prompt).ok() && client.counters().lookups_without_round_trip > before) {
      return true;
    }
    absl::SleepFor(absl::Milliseconds(20));
  }
  return false;
}

bool IsLookupTarget(absl::string_view t) {
  return t == "ems" || t == "ems-remote" || t == "ems-mirror" || t == "ems-grpc" || t == "redis";
}

// INVALID_ARGUMENT naming the first flag out of range. Checked before any server starts: 0
// prompts divided by zero once a cluster was up (its directory left in /tmp), 0 seconds
// printed "nan" into the JSON, and a misspelt target surfaced after the others had run.
absl::Status CheckLookupFlags(const std::vector<std::string>& targets) {
  struct Count {
    const char* flag;
    int value, max;
  };
  // Each node is a process and each thread a loop on this machine, as in `replay`.
  const Count counts[] = {
      {"--lookup_keys", absl::GetFlag(FLAGS_lookup_keys), 4096},
      {"--lookup_prompts", absl::GetFlag(FLAGS_lookup_prompts), 1 << 20},
      {"--lookup_nodes", absl::GetFlag(FLAGS_lookup_nodes), 64},
      {"--lookup_threads", absl::GetFlag(FLAGS_lookup_threads), 1024},
  };
  for (const Count& c : counts) {
    if (c.value < 1 || c.value > c.max) {
      return absl::InvalidArgumentError(
          absl::StrCat(c.flag, " must be between 1 and ", c.max, ", got ", c.value));
    }
  }
  if (const double s = absl::GetFlag(FLAGS_lookup_seconds); !(s > 0 && s <= 3600)) {
    return absl::InvalidArgumentError(
        absl::StrCat("--lookup_seconds must be above 0 and at most 3600, got ", s));
  }
  for (const std::string& t : targets) {
    if (!IsLookupTarget(t))
      return absl::InvalidArgumentError(absl::StrCat("unknown target '", t, "'"));
  }
  return absl::OkStatus();
}

}  // namespace

int RunLookup(int, char**) {
  const std::vector<std::string> targets = absl::StrSplit(absl::GetFlag(FLAGS_lookup_targets), ',');
  if (absl::Status s = CheckLookupFlags(targets); !s.ok()) {
    std::fprintf(stderr, "lookup: %s\n", std::string(s.message()).c_str());
    return 2;
  }
  const int keys = absl::GetFlag(FLAGS_lookup_keys);
  const int prompts = absl::GetFlag(FLAGS_lookup_prompts);
  const int nodes = absl::GetFlag(FLAGS_lookup_nodes);
  const int threads = absl::GetFlag(FLAGS_lookup_threads);
  const double seconds = absl::GetFlag(FLAGS_lookup_seconds);
  const auto data = MakePrompts(prompts, keys);
  const std::vector<uint8_t> value(64, 'v');
  int rc = 0;
  for (absl::string_view target : targets) {
    if (target == "ems" || target == "ems-remote" || target == "ems-mirror" ||
        target == "ems-grpc") {
      auto cluster = LocalCluster::Start(nodes, 32, {}, /*local_sockets=*/true);
      if (!cluster.ok()) {
        std::fprintf(stderr, "lookup: %s\n", cluster.status().ToString().c_str());
        return 1;
      }
      // Every node runs on this host, so the default client answers the whole prompt from the
      // nodes' directories. ems-remote turns the shared-memory path off, as a client on another
      // host would have it (one bulk round trip per owner); ems-mirror is that client keeping
      // mirrors of the nodes' keys (ClientOptions::mirror_remote_keys); ems-grpc keeps lookups
      // on gRPC.
      auto client = Client::Connect({.controller = (*cluster)->membership(),
                                     .cluster = "bench",
                                     .use_local = target == "ems",
                                     .use_bulk = target != "ems-grpc",
                                     .mirror_remote_keys = target == "ems-mirror"});
      if (!client.ok()) return 1;
      for (const auto& prompt : data) {
        std::vector<PutItem> items;
        for (const BlockKey& k : prompt) items.push_back({k, value, nullptr});
        for (const absl::Status& s : (*client)->BatchPut(items)) {
          if (!s.ok()) {
            std::fprintf(stderr, "lookup: put failed: %s\n", s.ToString().c_str());
            return 1;
          }
        }
      }
      if (target == "ems-mirror" && !MirrorsInStep(**client, data[0])) {
        std::fprintf(stderr, "lookup: the key mirrors did not catch up within 10 s\n");
        return 1;
      }
      Result r = Measure(threads, seconds, prompts, keys, [&](int, int p) {
        auto m = (*client)->MatchPrefix(data[p]);
        return m.ok() ? static_cast<int>(*m) : -1;
      });
      Print(std::string(target).c_str(), keys, nodes, r);
      rc |= r.wrong != 0;
    } else if (target == "redis") {
      auto redis = StartRedis();
      if (!redis.ok()) {
        std::fprintf(stderr, "lookup: %s\n", redis.status().ToString().c_str());
        return 1;
      }
      std::vector<redisContext*> conns;
      for (int t = 0; t < threads; ++t) conns.push_back(redisConnect("127.0.0.1", redis->port));
      for (const auto& prompt : data) {
        for (const BlockKey& k : prompt) {
          const std::string name = k.ns + "/" + std::string(k.digest.AsBytes());
          redisAppendCommand(conns[0], "SET %b %b", name.data(), name.size(), value.data(),
                             value.size());
        }
        for (size_t i = 0; i < prompt.size(); ++i) {
          void* reply = nullptr;
          redisGetReply(conns[0], &reply);
          freeReplyObject(reply);
        }
      }
      Result r = Measure(threads, seconds, prompts, keys, [&](int t, int p) {
        // Pipelined EXISTS of the prompt's keys; the answer is the leading run of 1s.
        for (const BlockKey& k : data[p]) {
          const std::string name = k.ns + "/" + std::string(k.digest.AsBytes());
          redisAppendCommand(conns[t], "EXISTS %b", name.data(), name.size());
        }
        int matched = 0;
        bool miss = false;
        for (size_t i = 0; i < data[p].size(); ++i) {
          redisReply* reply = nullptr;
          if (redisGetReply(conns[t], reinterpret_cast<void**>(&reply)) != REDIS_OK) return -1;
          if (!miss && reply->type == REDIS_REPLY_INTEGER && reply->integer == 1) {
            ++matched;
          } else {
            miss = true;
          }
          freeReplyObject(reply);
        }
        return matched;
      });
      for (redisContext* c : conns) redisFree(c);
      Print("redis", keys, 1, r);
      rc |= r.wrong != 0;
    }
  }
  return rc;
}

}  // namespace ems::bench
