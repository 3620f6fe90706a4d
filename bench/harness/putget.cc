// Placeholder until the Foundation issue's putget lands (same session).
#include <cstdio>

#include "harness/commands.h"

namespace ems::bench {
int RunPutGet(int, char**) {
  std::fprintf(stderr, "ems-bench putget: not built yet\n");
  return 1;
}
}  // namespace ems::bench
