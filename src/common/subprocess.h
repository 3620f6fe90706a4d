// Child processes for tests and benchmarks: starts a binary, reads the addresses it prints on
// stdout ("LISTENING host:port"), signals and reaps it. (The controller's local backend forks
// its nodes itself: they outlive the controller, these do not.)
#ifndef EMS_COMMON_SUBPROCESS_H_
#define EMS_COMMON_SUBPROCESS_H_

#include <sys/types.h>

#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace ems {

// A child process. Not thread-safe. The destructor SIGKILLs it if still running and reaps it;
// if the parent dies first, the child gets SIGTERM (PR_SET_PDEATHSIG).
class Process {
 public:
  // Runs `binary` with `args`, then reads stdout lines until every word in `wait_for`
  // (e.g. "LISTENING") has started a line; their rest is kept (see Value). What the child
  // prints on stdout after that is read and dropped. Stderr is inherited.
  static absl::StatusOr<std::unique_ptr<Process>> Start(const std::string& binary,
                                                        const std::vector<std::string>& args,
                                                        const std::vector<std::string>& wait_for,
                                                        absl::Duration timeout = absl::Seconds(20));
  ~Process();

  pid_t pid() const { return pid_; }
  // The text after `word` on the line it started ("LISTENING 127.0.0.1:4242" → "127.0.0.1:4242").
  std::string Value(const std::string& word) const;
  bool Signal(int sig);
  // Waits for exit; returns the exit code, 128+signal if killed, -1 on timeout.
  int Wait(absl::Duration timeout = absl::Seconds(30));
  bool running() const { return pid_ > 0; }
  // Resident memory (VmRSS, which includes RssShmem) in bytes, from /proc.
  uint64_t RssBytes() const;

 private:
  Process() = default;
  // Reads the child's stdout to its end, or until the destructor wakes it, and drops it: a
  // pipe nobody reads fills at 64 KiB and then blocks the child's next write for good.
  void DrainStdout();

  pid_t pid_ = -1;
  int stdout_fd_ = -1;
  int wake_fd_ = -1;  // the destructor writes here to end the drain (read end: drain_wake_fd_)
  int drain_wake_fd_ = -1;
  std::thread drain_;
  absl::flat_hash_map<std::string, std::string> values_;
};

// Path of `name` in the directory of the running executable (EMS binaries sit together in
// build/bin).
std::string SiblingBinary(const std::string& name);

// Starts `node_binary` on loopback with free ports plus `extra` flags; Value("LISTENING") is
// its address and Value("METRICS") its metrics port.
absl::StatusOr<std::unique_ptr<Process>> StartNode(const std::string& node_binary,
                                                   const std::vector<std::string>& extra);

}  // namespace ems

#endif  // EMS_COMMON_SUBPROCESS_H_
