#include "replay/report.h"

#include <stdlib.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <numeric>
#include <set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_replace.h"
#include "harness/stats.h"

namespace ems::bench {
namespace {

// `s` as one word for /bin/sh: in single quotes, each ' closed, escaped and reopened.
std::string ShellQuoted(const std::string& s) {
  return absl::StrCat("'", absl::StrReplaceAll(s, {{"'", "'\\''"}}), "'");
}

// `s` inside a single-quoted gnuplot string, where '' stands for '.
std::string GnuplotQuoted(const std::string& s) { return absl::StrReplaceAll(s, {{"'", "''"}}); }

absl::Status RunGnuplot(const std::string& dir, const std::string& script) {
  const std::string cmd =
      absl::StrCat("cd ", ShellQuoted(dir), " && gnuplot ", ShellQuoted(script), " 2>&1");
  std::FILE* p = popen(cmd.c_str(), "r");
  if (p == nullptr) return absl::InternalError("cannot run gnuplot");
  std::string out;
  char buf[512];
  while (std::fgets(buf, sizeof(buf), p) != nullptr) out += buf;
  const int rc = pclose(p);
  if (rc != 0) {
    return absl::FailedPreconditionError(absl::StrCat(
        "gnuplot ", script, " failed (is gnuplot-nox installed? scripts/install-deps.sh): ", out));
  }
  return absl::OkStatus();
}

// The same plot as PNG and SVG.
std::string Terminals(const std::string& stem, const std::string& plot) {
  return absl::StrCat(
      "set terminal pngcairo size 900,560 noenhanced font ',11'\nset output '", stem, ".png'\n",
      plot, "set terminal svg size 900,560 noenhanced\nset output '", stem, ".svg'\n", "replot\n");
}

struct Spread {
  double mean = 0, p50 = 0, p90 = 0, p99 = 0;
};

// OK if a file can be made in `dir`, which is created if needed: one is made and removed.
// (Permissions alone would not tell: root writes anywhere, but not under a regular file.)
absl::Status ProbeDirectory(const std::filesystem::path& dir, const std::string& what) {
  std::error_code ec;
  if (!dir.empty()) std::filesystem::create_directories(dir, ec);
  std::string probe = ((dir.empty() ? "." : dir) / ".ems-bench-probe-XXXXXX").string();
  const int fd = mkstemp(probe.data());
  if (fd < 0) {
    return absl::FailedPreconditionError(
        absl::StrCat("cannot write ", what, ": ", std::strerror(errno)));
  }
  close(fd);
  unlink(probe.c_str());
  return absl::OkStatus();
}

Spread SpreadMs(const std::vector<double>& seconds) {
  std::vector<double> ms;
  ms.reserve(seconds.size());
  for (double t : seconds) ms.push_back(t * 1e3);
  std::sort(ms.begin(), ms.end());
  Spread s;
  s.mean = ms.empty() ? 0 : std::accumulate(ms.begin(), ms.end(), 0.0) / ms.size();
  s.p50 = NearestRank(ms, 50);
  s.p90 = NearestRank(ms, 90);
  s.p99 = NearestRank(ms, 99);
  return s;
}

}  // namespace

BaselineStats Summarize(const Baseline& b, const std::vector<Request>& requests, int block_tokens,
                        const BaselineStats* reference, int instances) {
  BaselineStats s;
  s.name = b.name;
  s.detail = b.detail;
  uint64_t blocks = 0, hits = 0;
  int64_t tokens = 0, hit_tokens = 0;
  for (size_t i = 0; i < requests.size(); ++i) {
    blocks += requests[i].hash_ids.size();
    hits += b.hit_blocks[i];
    tokens += requests[i].input_length;
    hit_tokens += std::min<int64_t>(static_cast<int64_t>(b.hit_blocks[i]) * block_tokens,
                                    requests[i].input_length);
  }
  s.prefix_hit_ratio = static_cast<double>(hits) / std::max<uint64_t>(blocks, 1);
  s.token_hit_ratio = static_cast<double>(hit_tokens) / std::max<int64_t>(tokens, 1);
  const Spread t = SpreadMs(b.ttft_s);
  s.mean_ms = t.mean;
  s.p50_ms = t.p50;
  s.p90_ms = t.p90;
  s.p99_ms = t.p99;
  const Spread q = SpreadMs(b.queued_s);
  s.queued_mean_ms = q.mean;
  s.queued_p50_ms = q.p50;
  s.queued_p90_ms = q.p90;
  s.queued_p99_ms = q.p99;
  if (reference != nullptr && reference->mean_ms > 0) {
    s.savings = 1 - s.mean_ms / reference->mean_ms;
  }
  const double span_s =
      requests.empty() ? 0 : (requests.back().timestamp_ms - requests.front().timestamp_ms) / 1e3;
  if (span_s > 0 && instances > 0) {
    s.load = std::accumulate(b.ttft_s.begin(), b.ttft_s.end(), 0.0) / (span_s * instances);
  }
  if (reference != nullptr && reference->queued_mean_ms > 0) {
    s.queued_savings = 1 - s.queued_mean_ms / reference->queued_mean_ms;
  }
  return s;
}

void PrintTable(const std::vector<BaselineStats>& stats, const std::string& queue) {
  // The detail column fits the longest detail ("8 x 187-188 blocks = 1500, lru, by prefix").
  int w = 34;
  for (const BaselineStats& s : stats) w = std::max(w, static_cast<int>(s.detail.size()));
  std::printf("\n%-9s %-*s %8s %8s | %9s %9s %9s %9s | %7s\n", "baseline", w, "", "prefix", "token",
              "TTFT mean", "p50", "p90", "p99", "TTFT");
  std::printf("%-9s %-*s %8s %8s | %9s %9s %9s %9s | %7s\n", "", w, "", "hit", "hit", "(ms)",
              "(ms)", "(ms)", "(ms)", "saved");
  std::printf("%s\n", std::string(83 + w, '-').c_str());
  for (const BaselineStats& s : stats) {
    std::printf("%-9s %-*s %8.3f %8.3f | %9.1f %9.1f %9.1f %9.1f | %6.1f%%\n", s.name.c_str(), w,
                s.detail.c_str(), s.prefix_hit_ratio, s.token_hit_ratio, s.mean_ms, s.p50_ms,
                s.p90_ms, s.p99_ms, 100 * s.savings);
  }
  std::printf("\nqueued: %s\n", queue.c_str());
  std::printf("%-9s %-*s %6s | %9s %9s %9s %9s | %7s\n", "baseline", w, "", "load", "TTFT mean",
              "p50", "p90", "p99", "TTFT");
  std::printf("%-9s %-*s %6s | %9s %9s %9s %9s | %7s\n", "", w, "", "", "(ms)", "(ms)", "(ms)",
              "(ms)", "saved");
  std::printf("%s\n", std::string(72 + w, '-').c_str());
  bool overloaded = false;
  for (const BaselineStats& s : stats) {
    std::printf("%-9s %-*s %6.2f | %9.1f %9.1f %9.1f %9.1f | %6.1f%%\n", s.name.c_str(), w,
                s.detail.c_str(), s.load, s.queued_mean_ms, s.queued_p50_ms, s.queued_p90_ms,
                s.queued_p99_ms, 100 * s.queued_savings);
    overloaded = overloaded || s.load >= 1;
  }
  if (overloaded) {
    std::printf(
        "load >= 1: requests arrive faster than the instances finish them, so that baseline's "
        "queue grows with the run and its queued TTFTs measure the backlog; more --instances "
        "(or a trace with more time between requests) gives a steady state\n");
  }
}

void PrintJson(const std::vector<BaselineStats>& stats) {
  for (const BaselineStats& s : stats) {
    std::printf(
        "{\"baseline\":\"%s\",\"detail\":\"%s\",\"prefix_hit_ratio\":%.4f,"
        "\"token_prefix_hit_ratio\":%.4f,\"ttft_mean_ms\":%.3f,\"ttft_p50_ms\":%.3f,"
        "\"ttft_p90_ms\":%.3f,\"ttft_p99_ms\":%.3f,\"ttft_savings\":%.4f,"
        "\"queued_ttft_mean_ms\":%.3f,\"queued_ttft_p50_ms\":%.3f,\"queued_ttft_p90_ms\":%.3f,"
        "\"queued_ttft_p99_ms\":%.3f,\"queued_ttft_savings\":%.4f,\"load\":%.4f}\n",
        s.name.c_str(), s.detail.c_str(), s.prefix_hit_ratio, s.token_hit_ratio, s.mean_ms,
        s.p50_ms, s.p90_ms, s.p99_ms, s.savings, s.queued_mean_ms, s.queued_p50_ms, s.queued_p90_ms,
        s.queued_p99_ms, s.queued_savings, s.load);
  }
}

absl::Status CheckCsvPath(const std::string& path) {
  const std::string what = absl::StrCat("--csv ", path);
  if (std::error_code ec; std::filesystem::is_directory(path, ec)) {
    return absl::FailedPreconditionError(absl::StrCat("cannot write ", what, ": a directory"));
  }
  return ProbeDirectory(std::filesystem::path(path).parent_path(), what);
}

absl::Status CheckPlotDir(const std::string& dir) {
  return ProbeDirectory(dir, absl::StrCat("--plot-dir ", dir));
}

absl::Status WriteCsv(const std::string& path, const std::vector<Request>& requests,
                      const std::vector<Baseline>& baselines, const CsvExtra& extra) {
  std::error_code ec;
  const std::filesystem::path parent = std::filesystem::path(path).parent_path();
  if (!parent.empty()) std::filesystem::create_directories(parent, ec);
  std::ofstream out(path);
  if (!out) return absl::NotFoundError(absl::StrCat("cannot write --csv ", path));
  out << "request,timestamp_ms,instance,local_instance,routed_instance,input_tokens,blocks";
  for (const Baseline& b : baselines) out << "," << b.name << "_hit_blocks";
  for (const Baseline& b : baselines) out << "," << b.name << "_ttft_ms";
  for (const Baseline& b : baselines) out << "," << b.name << "_queued_ttft_ms";
  out << ",lookup_ms,get_ms,put_ms,late_ms\n";
  for (size_t i = 0; i < requests.size(); ++i) {
    out << i << "," << requests[i].timestamp_ms << "," << extra.instance[i] << ","
        << extra.local_instance[i] << "," << extra.routed_instance[i] << ","
        << requests[i].input_length << "," << requests[i].hash_ids.size();
    for (const Baseline& b : baselines) out << "," << b.hit_blocks[i];
    for (const Baseline& b : baselines) out << "," << absl::StrFormat("%.3f", b.ttft_s[i] * 1e3);
    for (const Baseline& b : baselines) {
      out << "," << absl::StrFormat("%.3f", b.queued_s[i] * 1e3);
    }
    out << absl::StrFormat(",%.3f,%.3f,%.3f,%.3f\n", extra.lookup_ms[i], extra.get_ms[i],
                           extra.put_ms[i], extra.late_ms[i]);
  }
  out.close();
  if (!out) return absl::DataLossError(absl::StrCat("writing --csv ", path, " failed"));
  return absl::OkStatus();
}

absl::StatusOr<std::vector<std::string>> WritePlots(const std::string& dir,
                                                    const std::vector<Baseline>& baselines,
                                                    const std::vector<SimResult>& sweep,
                                                    const std::string& live_policy,
                                                    size_t live_capacity, double live_ratio,
                                                    const std::string& title) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) return absl::NotFoundError(absl::StrCat("cannot create --plot-dir ", dir));
  std::vector<std::string> images;
  {
    // TTFT CDF: column 1 the fraction, then each baseline's sorted TTFTs, then each
    // baseline's sorted queued TTFTs.
    std::vector<std::vector<double>> sorted;
    for (const Baseline& b : baselines) {
      sorted.push_back(b.ttft_s);
      std::sort(sorted.back().begin(), sorted.back().end());
    }
    for (const Baseline& b : baselines) {
      sorted.push_back(b.queued_s);
      sorted.back().resize(sorted.front().size());  // a baseline without a queue model: zeros
      std::sort(sorted.back().begin(), sorted.back().end());
    }
    std::ofstream dat(dir + "/ttft_cdf.dat");
    const size_t n = sorted.empty() ? 0 : sorted[0].size();
    for (size_t i = 0; i < n; ++i) {
      dat << absl::StrFormat("%.5f", (i + 1.0) / n);
      for (const auto& s : sorted) dat << absl::StrFormat(" %.3f", s[i] * 1e3);
      dat << "\n";
    }
    std::string plot = absl::StrCat(
        "set title '", GnuplotQuoted(title), "'\nset xlabel 'TTFT (ms, log scale)'\n",
        "set ylabel 'fraction of requests'\nset logscale x\nset yrange [0:1]\nset grid\n",
        "set key bottom right\nplot ");
    for (size_t i = 0; i < baselines.size(); ++i) {
      absl::StrAppend(&plot, i ? ", " : "", "'ttft_cdf.dat' using ", i + 2,
                      ":1 with lines linewidth 2 linecolor ", i + 1, " title '",
                      GnuplotQuoted(baselines[i].name), " (", GnuplotQuoted(baselines[i].detail),
                      ")'");
    }
    for (size_t i = 0; i < baselines.size(); ++i) {
      absl::StrAppend(&plot, ", 'ttft_cdf.dat' using ", baselines.size() + i + 2,
                      ":1 with lines linewidth 2 dashtype 2 linecolor ", i + 1, " title '",
                      GnuplotQuoted(baselines[i].name), ", queued'");
    }
    plot += "\n";
    std::ofstream(dir + "/ttft_cdf.gp") << Terminals("ttft_cdf", plot);
  }
  {
    // Hit ratio vs capacity: one row per capacity, one column per policy (unbounded left out
    // of the log axis).
    std::vector<std::string> policies;
    std::map<size_t, std::map<std::string, double>> rows;
    for (const SimResult& r : sweep) {
      if (std::find(policies.begin(), policies.end(), r.policy) == policies.end()) {
        policies.push_back(r.policy);
      }
      if (r.capacity_blocks > 0) rows[r.capacity_blocks][r.policy] = r.prefix_hit_ratio;
    }
    std::ofstream dat(dir + "/hit_ratio.dat");
    for (const auto& [cap, by_policy] : rows) {
      dat << cap;
      for (const std::string& p : policies) {
        auto it = by_policy.find(p);
        dat << " "
            << (it == by_policy.end() ? std::string("NaN") : absl::StrFormat("%.4f", it->second));
      }
      dat << "\n";
    }
    std::ofstream(dir + "/live_point.dat") << live_capacity << " " << live_ratio << "\n";
    std::string plot = absl::StrCat(
        "set title '", GnuplotQuoted(title), "'\nset xlabel 'capacity (blocks, log scale)'\n",
        "set ylabel 'prefix hit ratio'\nset logscale x\nset yrange [0:*]\nset grid\n",
        "set key bottom right\nplot ");
    for (size_t i = 0; i < policies.size(); ++i) {
      absl::StrAppend(&plot, i ? ", " : "", "'hit_ratio.dat' using 1:", i + 2,
                      " with linespoints linewidth 2 title '", GnuplotQuoted(policies[i]),
                      " (simulated)'");
    }
    absl::StrAppend(&plot, ", 'live_point.dat' using 1:2 with points pointtype 7 pointsize 2 ",
                    "title 'live EMS pool (", GnuplotQuoted(live_policy), ")'\n");
    std::ofstream(dir + "/hit_ratio.gp") << Terminals("hit_ratio", plot);
  }
  for (const char* stem : {"ttft_cdf", "hit_ratio"}) {
    if (absl::Status s = RunGnuplot(dir, absl::StrCat(stem, ".gp")); !s.ok()) return s;
    images.push_back(absl::StrCat(dir, "/", stem, ".png"));
    images.push_back(absl::StrCat(dir, "/", stem, ".svg"));
  }
  return images;
}

}  // namespace ems::bench
