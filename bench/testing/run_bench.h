// Running the built ems-bench from a test (EMS_BIN_DIR is the build's bin directory).
#ifndef EMS_BENCH_TESTING_RUN_BENCH_H_
#define EMS_BENCH_TESTING_RUN_BENCH_H_

#include <sys/wait.h>

#include <cstdio>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"

namespace ems::bench::testing {

// Runs `ems-bench <args>`; returns its exit status (-1 if a signal ended it) and everything it
// printed, stdout and stderr.
inline std::pair<int, std::string> RunBenchStatus(const std::string& args) {
  const std::string cmd = absl::StrCat(EMS_BIN_DIR, "/ems-bench ", args, " 2>&1");
  std::FILE* p = popen(cmd.c_str(), "r");
  if (p == nullptr) return {-1, "popen failed"};
  std::string out;
  char buf[4096];
  while (std::fgets(buf, sizeof(buf), p) != nullptr) out += buf;
  const int status = pclose(p);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, out};
}

}  // namespace ems::bench::testing

#endif  // EMS_BENCH_TESTING_RUN_BENCH_H_
