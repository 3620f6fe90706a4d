// ems-bench putget: stores chained-prefix blocks through an ems-node, reads every one back,
// verifies every byte, and reports what happened.
#include "harness/putget.h"

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <memory>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "client/client.h"
#include "common/prefix_hash.h"
#include "common/subprocess.h"
#include "ems/v1/data.pb.h"
#include "harness/commands.h"
#include "harness/stats.h"

ABSL_FLAG(std::string, node, "", "address of a running ems-node; empty starts one on loopback");
ABSL_FLAG(std::string, local_socket, "",
          "use the node's shared-memory socket (with --node); empty = gRPC only");
ABSL_FLAG(int, blocks, 64, "blocks to store and read back");
ABSL_FLAG(uint64_t, block_bytes, 2 << 20, "bytes per block");
ABSL_FLAG(int, block_tokens, 512, "tokens per block when hashing the synthetic prompt");
ABSL_FLAG(std::string, ns, "demo/llama3-8b/bf16", "key namespace");
ABSL_FLAG(bool, json, false, "machine-readable output: JSON lines instead of a report");

namespace ems::bench {
namespace {

// The bytes of block i: deterministic, so every read can be checked.
void FillBlock(uint64_t i, absl::Span<uint8_t> out) {
  uint64_t x = (i + 1) * 0x9e3779b97f4a7c15ull;
  size_t j = 0;
  for (; j + 8 <= out.size(); j += 8) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    std::memcpy(out.data() + j, &x, 8);
  }
  for (; j < out.size(); ++j) out[j] = static_cast<uint8_t>(j);
}

}  // namespace

StoreAndVerifyResult StoreAndVerify(Client& client, const std::vector<BlockKey>& keys,
                                    uint64_t block_bytes, absl::FunctionRef<absl::Time()> now) {
  StoreAndVerifyResult r;
  std::vector<uint8_t> value(block_bytes), out(block_bytes), want(block_bytes);
  for (size_t i = 0; i < keys.size(); ++i) {
    FillBlock(i, absl::MakeSpan(value));
    const absl::Time t0 = now();
    absl::Status s = client.Put(keys[i], value, i > 0 ? &keys[i - 1] : nullptr);
    const absl::Duration took = now() - t0;
    r.put_latency.Add(took);
    r.put_time += took;
    if (!s.ok()) {
      r.put_error = absl::Status(s.code(), absl::StrCat("put of block ", i, ": ", s.message()));
      return r;
    }
  }
  r.matched = client.MatchPrefix(keys);
  for (size_t i = 0; i < keys.size(); ++i) {
    const absl::Time t0 = now();
    auto n = client.Get(keys[i], absl::MakeSpan(out));
    const absl::Duration took = now() - t0;
    r.get_latency.Add(took);
    r.get_time += took;
    if (!n.ok()) {
      ++r.missing;
      continue;
    }
    FillBlock(i, absl::MakeSpan(want));
    if (*n != block_bytes || out != want) ++r.wrong;
  }
  return r;
}

int RunPutGet(int, char**) {
  const int blocks = absl::GetFlag(FLAGS_blocks);
  const uint64_t bytes = absl::GetFlag(FLAGS_block_bytes);
  if (blocks <= 0 || bytes == 0) {
    std::fprintf(stderr, "putget: --blocks and --block_bytes must be positive\n");
    return 2;
  }
  // The prompt is hashed in blocks of this many tokens: 0 divided by zero, and a negative
  // count became a prompt of 2^64 tokens.
  const int block_tokens = absl::GetFlag(FLAGS_block_tokens);
  if (block_tokens <= 0) {
    std::fprintf(stderr, "putget: --block_tokens must be positive, got %d\n", block_tokens);
    return 2;
  }
  std::unique_ptr<Process> node;
  std::string address = absl::GetFlag(FLAGS_node);
  const uint64_t pages = std::max<uint64_t>(64, (blocks * bytes * 5 / 4 >> 21) + 1);
  if (address.empty()) {
    auto started = StartNode(SiblingBinary("ems-node"),
                             {absl::StrCat("--huge_page_num=", pages), "--log_level=warn"});
    if (!started.ok()) {
      std::fprintf(stderr, "putget: cannot start ems-node: %s\n",
                   started.status().ToString().c_str());
      return 1;
    }
    node = *std::move(started);
    address = node->Value("LISTENING");
    if (!absl::GetFlag(FLAGS_json)) {
      std::printf("started ems-node at %s with a %llu MiB arena\n", address.c_str(),
                  static_cast<unsigned long long>(pages * 2));
    }
  }
  auto client =
      Client::Connect({.address = address, .local_socket = absl::GetFlag(FLAGS_local_socket)});
  if (!client.ok()) {
    std::fprintf(stderr, "putget: %s\n", client.status().ToString().c_str());
    return 1;
  }

  // A synthetic prompt of blocks × block_tokens tokens, hashed into chained keys.
  std::vector<uint32_t> tokens(static_cast<size_t>(blocks) * block_tokens);
  for (size_t t = 0; t < tokens.size(); ++t) tokens[t] = static_cast<uint32_t>((t * 7919) % 128000);
  const std::vector<Digest> digests = PrefixHasher(block_tokens).Hash(tokens);
  std::vector<BlockKey> keys;
  for (const Digest& d : digests) keys.push_back(BlockKey{absl::GetFlag(FLAGS_ns), d});

  const StoreAndVerifyResult run = StoreAndVerify(**client, keys, bytes);
  if (!run.put_error.ok()) {
    std::fprintf(stderr, "putget: %s\n", run.put_error.ToString().c_str());
    return 1;
  }
  const absl::StatusOr<size_t>& matched = run.matched;
  const int wrong = run.wrong, missing = run.missing;
  const absl::Duration put_time = run.put_time, get_time = run.get_time;
  const LatencyRecorder &put_lat = run.put_latency, &get_lat = run.get_latency;
  auto stats = (*client)->Stats();

  const double total = static_cast<double>(blocks) * bytes;
  if (absl::GetFlag(FLAGS_json)) {
    std::printf(
        "{\"blocks\":%d,\"block_bytes\":%llu,\"put_gbps\":%.3f,\"get_gbps\":%.3f,"
        "\"put_p50_us\":%.1f,\"put_p99_us\":%.1f,\"get_p50_us\":%.1f,\"get_p99_us\":%.1f,"
        "\"matched\":%zu,\"missing\":%d,\"wrong\":%d}\n",
        blocks, static_cast<unsigned long long>(bytes),
        total / absl::ToDoubleSeconds(put_time) / 1e9,
        total / absl::ToDoubleSeconds(get_time) / 1e9, put_lat.PercentileUs(50),
        put_lat.PercentileUs(99), get_lat.PercentileUs(50), get_lat.PercentileUs(99),
        matched.ok() ? *matched : 0, missing, wrong);
  } else {
    std::printf("stored %d blocks of %llu bytes (chained prefix keys, namespace %s)\n", blocks,
                static_cast<unsigned long long>(bytes), absl::GetFlag(FLAGS_ns).c_str());
    std::printf("  put: %.2f GB/s, latency p50 %.0f us, p99 %.0f us\n",
                total / absl::ToDoubleSeconds(put_time) / 1e9, put_lat.PercentileUs(50),
                put_lat.PercentileUs(99));
    std::printf("  match_prefix over the whole prompt: %zu of %d blocks present\n",
                matched.ok() ? *matched : 0, blocks);
    std::printf("  get: %.2f GB/s, latency p50 %.0f us, p99 %.0f us\n",
                total / absl::ToDoubleSeconds(get_time) / 1e9, get_lat.PercentileUs(50),
                get_lat.PercentileUs(99));
    std::printf("  verified %d blocks byte for byte: %d wrong, %d missing\n", blocks - missing,
                wrong, missing);
    if (stats.ok()) {
      std::printf(
          "  node: %llu keys, %.1f of %.1f MiB used, hit ratio %.3f, %llu evictions, "
          "hugepages=%s\n",
          static_cast<unsigned long long>(stats->keys()), stats->used_bytes() / 1048576.0,
          stats->capacity_bytes() / 1048576.0, stats->hit_ratio(),
          static_cast<unsigned long long>(stats->evictions()),
          stats->hugepages() ? "true" : "false (THP fallback)");
      std::fflush(stdout);
    }
  }
  return wrong == 0 && missing == 0 ? 0 : 1;
}

}  // namespace ems::bench
