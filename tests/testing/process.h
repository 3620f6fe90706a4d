// Starts real EMS binaries (ems-node, ems-controller) as child processes for tests and
// benchmarks, and reads the addresses they print on stdout.
#ifndef EMS_TESTS_TESTING_PROCESS_H_
#define EMS_TESTS_TESTING_PROCESS_H_

#include <sys/types.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace ems::testing {

// A child process. Not thread-safe. The destructor SIGKILLs it if still running and reaps it.
class Process {
 public:
  // Runs `binary` with `args`, then reads stdout lines until every word in `wait_for`
  // (e.g. "LISTENING") has started a line; their rest is kept (see Value). Stderr is inherited.
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
  // Resident memory (VmRSS + RssShmem are both in VmRSS) in bytes, from /proc.
  uint64_t RssBytes() const;

 private:
  Process() = default;
  pid_t pid_ = -1;
  int stdout_fd_ = -1;
  absl::flat_hash_map<std::string, std::string> values_;
};

// Path of a binary in the build's bin directory.
std::string BinPath(const std::string& name);

// Starts ems-node on loopback with free ports plus `extra` flags; Value("LISTENING") is its
// address and Value("METRICS") its metrics port.
absl::StatusOr<std::unique_ptr<Process>> StartNode(const std::vector<std::string>& extra);

}  // namespace ems::testing

#endif  // EMS_TESTS_TESTING_PROCESS_H_
