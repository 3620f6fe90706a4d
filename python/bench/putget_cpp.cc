// The C++ half of python/bench/putget_vs_cpp.py: the same put/get loop as the Python half
// (same keys, four pre-filled values, one reused output buffer, per-call timing, every byte
// verified outside the timed call), so the two differ only in the client's language.
//
//   ems-putget-cpp --node=HOST:PORT [--local_socket=PATH] --ns=NS --blocks=N
//                  --block_bytes=B --block_tokens=T
// prints one JSON line: put/get p50/p99 in microseconds, wrong, missing.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "client/client.h"
#include "common/prefix_hash.h"

ABSL_FLAG(std::string, node, "", "ems-node address");
ABSL_FLAG(std::string, local_socket, "", "the node's shared-memory socket; empty = gRPC");
ABSL_FLAG(std::string, ns, "bench/cpp", "key namespace");
ABSL_FLAG(int, blocks, 64, "blocks to put and get");
ABSL_FLAG(uint64_t, block_bytes, 2 << 20, "bytes per block");
ABSL_FLAG(int, block_tokens, 512, "tokens per block of the hashed prompt");

namespace {

double Percentile(std::vector<double> us, double p) {
  std::sort(us.begin(), us.end());
  return us[std::min(static_cast<size_t>(p / 100.0 * us.size()), us.size() - 1)];
}

double NowUs() {
  return std::chrono::duration<double, std::micro>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

}  // namespace

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  const int blocks = absl::GetFlag(FLAGS_blocks);
  const size_t bytes = absl::GetFlag(FLAGS_block_bytes);
  const int block_tokens = absl::GetFlag(FLAGS_block_tokens);
  if (blocks <= 0 || bytes == 0 || block_tokens <= 0) {
    std::fprintf(stderr, "ems-putget-cpp: --blocks, --block_bytes, --block_tokens must be > 0\n");
    return 2;
  }
  auto client = ems::Client::Connect(
      {.address = absl::GetFlag(FLAGS_node), .local_socket = absl::GetFlag(FLAGS_local_socket)});
  if (!client.ok()) {
    std::fprintf(stderr, "ems-putget-cpp: %s\n", client.status().ToString().c_str());
    return 1;
  }
  // The prompt of ems-bench putget (and of the Python half): token t = (t * 7919) % 128000.
  std::vector<uint32_t> tokens(static_cast<size_t>(blocks) * block_tokens);
  for (size_t t = 0; t < tokens.size(); ++t) tokens[t] = static_cast<uint32_t>((t * 7919) % 128000);
  std::vector<ems::BlockKey> keys;
  for (const ems::Digest& d : ems::PrefixHasher(block_tokens).Hash(tokens)) {
    keys.push_back({absl::GetFlag(FLAGS_ns), d});
  }
  std::vector<std::vector<uint8_t>> values(4, std::vector<uint8_t>(bytes));
  uint64_t x = 0x9e3779b97f4a7c15ull;
  for (auto& v : values) {
    for (auto& b : v) {
      x ^= x << 13;
      x ^= x >> 7;
      x ^= x << 17;
      b = static_cast<uint8_t>(x);
    }
  }
  std::vector<uint8_t> out(bytes);
  std::vector<double> put_us, get_us;
  int wrong = 0, missing = 0;
  for (int i = 0; i < blocks; ++i) {
    const double t0 = NowUs();
    absl::Status s = (*client)->Put(keys[i], values[i % 4], i > 0 ? &keys[i - 1] : nullptr);
    put_us.push_back(NowUs() - t0);
    if (!s.ok()) {
      std::fprintf(stderr, "ems-putget-cpp: put %d: %s\n", i, s.ToString().c_str());
      return 1;
    }
  }
  for (int i = 0; i < blocks; ++i) {
    const double t0 = NowUs();
    absl::StatusOr<size_t> n = (*client)->Get(keys[i], absl::MakeSpan(out));
    get_us.push_back(NowUs() - t0);
    if (!n.ok()) {
      ++missing;
    } else if (*n != bytes || std::memcmp(out.data(), values[i % 4].data(), bytes) != 0) {
      ++wrong;
    }
  }
  (void)(*client)->Remove(keys);  // frees the arena for the next round; not timed
  std::printf(
      "{\"put_p50_us\":%.1f,\"put_p99_us\":%.1f,\"get_p50_us\":%.1f,\"get_p99_us\":%.1f,"
      "\"wrong\":%d,\"missing\":%d}\n",
      Percentile(put_us, 50), Percentile(put_us, 99), Percentile(get_us, 50),
      Percentile(get_us, 99), wrong, missing);
  return wrong == 0 && missing == 0 ? 0 : 1;
}
