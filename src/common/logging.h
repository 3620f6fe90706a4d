// Process-wide logging setup (spdlog). Libraries log through spdlog's default logger.
#ifndef EMS_COMMON_LOGGING_H_
#define EMS_COMMON_LOGGING_H_

#include <cstdint>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace ems {

// Sets the default logger's level ("trace".."off") and a pattern with time and thread, and
// routes libprotobuf's log lines through it (RouteProtobufLogs). Logs go to stderr so stdout
// stays free for a binary's own output (JSON lines, tables). INVALID_ARGUMENT, changing
// nothing, for a level spdlog does not name: it reads any such name ("INFO", "warning ") as
// "off", which would silence even the error a failing start-up exits with.
absl::Status InitLogging(absl::string_view level);

// Library code (the client, the pool) logs through spdlog's default logger, which spdlog
// writes to stdout until a program sets up its own. Points it at stderr, at the same level, in
// a program that did not (one whose default logger still has spdlog's own empty name):
// ems-bench prints results and JSON lines on stdout, and a Python or C program's stdout is
// its own. Called by Client::Connect; a default logger the program set up is left alone.
void LogToStderrUnlessSetUp();

// Sends libprotobuf's own log lines to spdlog's default logger, at most one per
// kProtobufLogInterval, as warnings (errors) or debug lines (the rest). Left alone, its parser
// writes an ERROR line to stderr for every message that carries invalid UTF-8 in a string
// field (a key's namespace, a cdKey): input a peer controls and the servers already refuse
// with INVALID_ARGUMENT, so a peer could fill the node's log at any rate it liked, past
// --log_level.
void RouteProtobufLogs();
inline constexpr absl::Duration kProtobufLogInterval = absl::Seconds(10);

// Lets one line through per interval and counts the ones it holds back. Thread-safe.
class LogThrottle {
 public:
  explicit LogThrottle(absl::Duration interval) : interval_(interval) {}
  // True if a line at `now` may go out; then *held_back is how many were not let out since
  // the last one that was.
  bool Allow(absl::Time now, uint64_t* held_back);

 private:
  const absl::Duration interval_;
  absl::Mutex mu_;
  absl::Time next_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
  uint64_t held_back_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace ems

#endif  // EMS_COMMON_LOGGING_H_
