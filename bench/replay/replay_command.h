// `ems-bench replay`: see bench/replay/README section in docs/replay.md.
#ifndef EMS_BENCH_REPLAY_REPLAY_COMMAND_H_
#define EMS_BENCH_REPLAY_REPLAY_COMMAND_H_

namespace ems::bench {

int RunReplay(int argc, char** argv);

}  // namespace ems::bench

#endif  // EMS_BENCH_REPLAY_REPLAY_COMMAND_H_
