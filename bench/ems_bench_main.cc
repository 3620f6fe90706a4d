// ems-bench SUBCOMMAND [flags]: benchmarks and harnesses for EMS.
#include <algorithm>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/flags/usage_config.h"
#include "absl/strings/match.h"
#include "common/logging.h"
#include "common/mutex_checks.h"
#include "harness/commands.h"
#include "replay/replay_command.h"

namespace {

struct Command {
  const char* name;
  const char* help;
  int (*run)(int argc, char** argv);
};

constexpr Command kCommands[] = {
    {"putget", "store and read back verified blocks through an ems-node", ems::bench::RunPutGet},
    {"lookup", "MatchPrefix over a 3-node cluster vs Redis pipelined EXISTS (--json lines)",
     ems::bench::RunLookup},
    {"throughput", "put/get GB/s: ems, ems-local, redis, memcached, memcpy (--json lines)",
     ems::bench::RunThroughput},
    {"replay", "trace-driven hit ratio and TTFT harness (live or --simulate)",
     ems::bench::RunReplay},
};

void PrintCommands() {
  std::fprintf(stderr, "usage: ems-bench SUBCOMMAND [flags]   (ems-bench SUBCOMMAND --help)\n");
  for (const Command& c : kCommands) std::fprintf(stderr, "  %-10s %s\n", c.name, c.help);
}

}  // namespace

int main(int argc, char** argv) {
  ems::DisableMutexDeadlockDetection();  // measure what the binaries run (mutex_checks.h)
  ems::LogToStderrUnlessSetUp();         // stdout is for results and JSON lines
  if (argc < 2 || std::strcmp(argv[1], "--help") == 0 || std::strcmp(argv[1], "help") == 0) {
    PrintCommands();
    return argc < 2 ? 2 : 0;
  }
  for (const Command& c : kCommands) {
    if (std::strcmp(argv[1], c.name) == 0) {
      // --help lists this binary's own flags (absl matches by file name otherwise).
      absl::FlagsUsageConfig usage_config;
      usage_config.contains_help_flags = [](absl::string_view file) {
        return absl::StrContains(file, "bench/");
      };
      absl::SetFlagsUsageConfig(usage_config);
      absl::SetProgramUsageMessage(std::string("ems-bench ") + c.name + ": " + c.help);
      // Flags may be spelled --kv-scale or --kv_scale: Abseil names have underscores.
      std::vector<std::string> spelled(argv + 1, argv + argc);
      std::vector<char*> raw;
      for (std::string& a : spelled) {
        if (a.size() > 2 && a.compare(0, 2, "--") == 0) {
          const size_t end = std::min(a.find('='), a.size());
          std::replace(a.begin() + 2, a.begin() + end, '-', '_');
        }
        raw.push_back(a.data());
      }
      // Parse flags after the subcommand; argv[1] is kept as the program name.
      std::vector<char*> args = absl::ParseCommandLine(static_cast<int>(raw.size()), raw.data());
      return c.run(static_cast<int>(args.size()), args.data());
    }
  }
  std::fprintf(stderr, "ems-bench: unknown subcommand '%s'\n", argv[1]);
  PrintCommands();
  return 2;
}
