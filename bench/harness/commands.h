// Subcommands of ems-bench implemented in bench/harness. Each takes the positional arguments
// left after flag parsing (args[0] is the subcommand) and returns the process exit code.
#ifndef EMS_BENCH_HARNESS_COMMANDS_H_
#define EMS_BENCH_HARNESS_COMMANDS_H_

#include "absl/flags/declare.h"

// --json (defined in putget.cc): machine-readable output for every harness.
ABSL_DECLARE_FLAG(bool, json);
// --block_tokens (defined in putget.cc): tokens per KV block.
ABSL_DECLARE_FLAG(int, block_tokens);

namespace ems::bench {

int RunPutGet(int argc, char** argv);
int RunLookup(int argc, char** argv);
int RunThroughput(int argc, char** argv);

}  // namespace ems::bench

#endif  // EMS_BENCH_HARNESS_COMMANDS_H_
