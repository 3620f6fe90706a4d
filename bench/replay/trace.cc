#include "replay/trace.h"

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>

#include "absl/strings/str_cat.h"

namespace ems::bench {

absl::StatusOr<Request> ParseTraceLine(const std::string& line) {
  // nlohmann throws on malformed input; exceptions stop here.
  nlohmann::json j = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) return absl::InvalidArgumentError("not a JSON object");
  Request r;
  for (const char* field : {"timestamp", "input_length", "output_length"}) {
    if (!j.contains(field) || !j[field].is_number_integer()) {
      return absl::InvalidArgumentError(absl::StrCat("`", field, "` missing or not an integer"));
    }
  }
  r.timestamp_ms = j["timestamp"].get<int64_t>();
  r.input_length = j["input_length"].get<int64_t>();
  r.output_length = j["output_length"].get<int64_t>();
  if (r.timestamp_ms < 0) return absl::InvalidArgumentError("negative `timestamp`");
  if (r.input_length < 0 || r.output_length < 0) {
    return absl::InvalidArgumentError("negative length");
  }
  if (!j.contains("hash_ids") || !j["hash_ids"].is_array()) {
    return absl::InvalidArgumentError("`hash_ids` missing or not an array");
  }
  for (const auto& id : j["hash_ids"]) {
    // The parser keeps every integer without a minus sign unsigned, up to 2^64-1.
    if (!id.is_number_integer() || !id.is_number_unsigned()) {
      return absl::InvalidArgumentError("`hash_ids` holds a non-integer or negative id");
    }
    // Ids are kept as id + 1 in the pool's policies, where 0 means "no parent".
    if (id.get<uint64_t>() == UINT64_MAX) {
      return absl::InvalidArgumentError("`hash_ids` holds 2^64-1, which is reserved");
    }
    r.hash_ids.push_back(id.get<uint64_t>());
  }
  return r;
}

absl::StatusOr<std::vector<Request>> ReadMooncakeTrace(const std::string& path,
                                                       const TraceReadOptions& options) {
  std::ifstream in(path);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot open trace ", path));
  // A directory opens, then fails its first read: without this it was a trace of no requests.
  if (std::error_code ec; std::filesystem::is_directory(path, ec)) {
    return absl::InvalidArgumentError(absl::StrCat("cannot read trace ", path, ": a directory"));
  }
  std::vector<Request> out;
  std::string line;
  size_t line_no = 0, skipped = 0;
  while (std::getline(in, line)) {
    ++line_no;
    if (line.empty()) continue;
    auto r = ParseTraceLine(line);
    // Requests are replayed, queued and plotted in file order at their timestamps: a line that
    // goes back in time would arrive before the ones above it.
    if (r.ok() && !out.empty() && r->timestamp_ms < out.back().timestamp_ms) {
      r = absl::InvalidArgumentError(absl::StrCat("`timestamp` ", r->timestamp_ms,
                                                  " is before the previous request's ",
                                                  out.back().timestamp_ms));
    }
    if (const int bt = options.block_tokens; r.ok() && bt > 0) {
      const int64_t blocks = (r->input_length + bt - 1) / bt;
      if (static_cast<int64_t>(r->hash_ids.size()) != blocks) {
        r = absl::InvalidArgumentError(absl::StrCat(
            "`hash_ids` has ", r->hash_ids.size(), " ids but input_length ", r->input_length,
            " is ", blocks, " blocks of ", bt, " tokens (is --block-tokens right?)"));
      }
    }
    if (!r.ok()) {
      const std::string msg = absl::StrCat(path, ":", line_no, ": ", r.status().message());
      if (options.strict) return absl::InvalidArgumentError(msg);
      if (++skipped <= kMaxReportedLines) {
        std::fprintf(stderr, "replay: skipping %s\n", msg.c_str());
      }
      continue;
    }
    out.push_back(*std::move(r));
    if (options.limit > 0 && out.size() >= options.limit) break;
  }
  if (skipped > 0) {
    std::fprintf(stderr, "replay: skipped %zu malformed lines%s\n", skipped,
                 skipped > kMaxReportedLines ? " (the first ones are listed above)" : "");
  }
  return out;
}

std::vector<Request> GenerateMultiturn(const MultiturnOptions& o) {
  std::mt19937_64 rng(o.seed);
  std::exponential_distribution<double> gap(o.rate_per_s / 1000.0);  // per ms
  std::vector<Request> out;
  uint64_t next_id = static_cast<uint64_t>(o.system_prompts) * o.system_blocks;
  double t = 0;
  for (int s = 0; s < o.sessions; ++s) {
    t += gap(rng);
    const int sys = static_cast<int>(rng() % o.system_prompts);
    std::vector<uint64_t> prompt;
    for (int b = 0; b < o.system_blocks; ++b) prompt.push_back(sys * o.system_blocks + b);
    for (int turn = 0; turn < o.turns; ++turn) {
      for (int b = 0; b < o.turn_blocks; ++b) prompt.push_back(next_id++);
      Request r;
      r.timestamp_ms = static_cast<int64_t>(t) + turn * o.think_ms;
      r.hash_ids = prompt;
      // The last block is partly filled, as in real prompts.
      r.input_length = static_cast<int64_t>(prompt.size()) * o.block_tokens - o.block_tokens / 3;
      r.output_length = 200;
      out.push_back(std::move(r));
    }
  }
  std::stable_sort(out.begin(), out.end(), [](const Request& a, const Request& b) {
    return a.timestamp_ms < b.timestamp_ms;
  });
  return out;
}

}  // namespace ems::bench
