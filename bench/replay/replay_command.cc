// Placeholder until the replay issue's harness lands (same session).
#include <cstdio>

#include "replay/replay_command.h"

namespace ems::bench {
int RunReplay(int, char**) {
  std::fprintf(stderr, "ems-bench replay: not built yet\n");
  return 1;
}
}  // namespace ems::bench
