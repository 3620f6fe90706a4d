// Request streams for the replay harness: Mooncake JSONL traces and a synthetic multi-turn
// workload, in one shape.
#ifndef EMS_BENCH_REPLAY_TRACE_H_
#define EMS_BENCH_REPLAY_TRACE_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace ems::bench {

// One request: its prompt as prefix block ids (equal ids = reusable prefix KV).
struct Request {
  int64_t timestamp_ms = 0;
  int64_t input_length = 0;   // tokens
  int64_t output_length = 0;  // tokens
  std::vector<uint64_t> hash_ids;
};

struct TraceReadOptions {
  // A malformed line is an error (with its line number) instead of being skipped.
  bool strict = false;
  // Stop after this many requests (0 = all).
  size_t limit = 0;
  // If positive, a line whose `hash_ids` count is not ceil(input_length / block_tokens) is
  // malformed: the hit ratios in tokens and the prefill model both read input_length, so such
  // a trace, or a wrong --block-tokens, would give figures that mean nothing.
  int block_tokens = 0;
};

// Reads the Mooncake FAST'25 format: one JSON object per line with `timestamp`,
// `input_length`, `output_length`, `hash_ids`, in order of `timestamp` (a line that goes back
// in time is malformed). Skipped lines are reported on stderr with their line numbers (the
// first kMaxReportedLines of them, then how many in all).
// NOT_FOUND if the file cannot be opened; INVALID_ARGUMENT if `path` is a directory.
absl::StatusOr<std::vector<Request>> ReadMooncakeTrace(const std::string& path,
                                                       const TraceReadOptions& options);

inline constexpr size_t kMaxReportedLines = 20;

// Parses one line; INVALID_ARGUMENT naming the problem.
absl::StatusOr<Request> ParseTraceLine(const std::string& line);

// The synthetic multi-turn workload (docs/replay.md): `system_prompts` shared prompts of
// `system_blocks` blocks; `sessions` conversations of `turns` turns each, every turn appending
// `turn_blocks` blocks of user text and answer to the conversation's prompt; Poisson arrivals
// at `rate_per_s`, with the turns of a session separated by `think_ms`. Deterministic in `seed`.
struct MultiturnOptions {
  int system_prompts = 4;
  int system_blocks = 4;
  int sessions = 400;
  int turns = 6;
  int turn_blocks = 3;
  double rate_per_s = 4;
  int64_t think_ms = 5000;
  int block_tokens = 512;
  uint64_t seed = 1;
};
std::vector<Request> GenerateMultiturn(const MultiturnOptions& options);

}  // namespace ems::bench

#endif  // EMS_BENCH_REPLAY_TRACE_H_
