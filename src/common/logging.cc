#include "common/logging.h"

#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "google/protobuf/stubs/logging.h"
#include "spdlog/sinks/stdout_color_sinks.h"
#include "spdlog/spdlog.h"

namespace ems {
namespace {

// The logger both set-ups install, named so that LogToStderrUnlessSetUp can tell it from
// spdlog's own (unnamed, on stdout). Not registered by name first (stderr_color_mt): a second
// install would throw; set_default_logger registers it.
std::shared_ptr<spdlog::logger> StderrLogger() {
  return std::make_shared<spdlog::logger>("ems",
                                          std::make_shared<spdlog::sinks::stderr_color_sink_mt>());
}

void ProtobufLog(google::protobuf::LogLevel level, const char* file, int line,
                 const std::string& message) {
  if (level == google::protobuf::LOGLEVEL_FATAL) {  // protobuf aborts after this: never held
    spdlog::critical("protobuf {}:{}: {}", file, line, message);
    return;
  }
  static LogThrottle* const throttle = new LogThrottle(kProtobufLogInterval);
  uint64_t held_back = 0;
  if (!throttle->Allow(absl::Now(), &held_back)) return;
  const auto as =
      level == google::protobuf::LOGLEVEL_ERROR ? spdlog::level::warn : spdlog::level::debug;
  if (held_back == 0) {
    spdlog::log(as, "protobuf {}:{}: {}", file, line, message);
  } else {
    spdlog::log(as, "protobuf {}:{}: {} ({} more protobuf log lines held back)", file, line,
                message, held_back);
  }
}

}  // namespace

bool LogThrottle::Allow(absl::Time now, uint64_t* held_back) {
  absl::MutexLock lock(&mu_);
  if (now < next_) {
    ++held_back_;
    return false;
  }
  next_ = now + interval_;
  *held_back = held_back_;
  held_back_ = 0;
  return true;
}

void RouteProtobufLogs() { google::protobuf::SetLogHandler(&ProtobufLog); }

absl::Status InitLogging(absl::string_view level) {
  const spdlog::level::level_enum parsed = spdlog::level::from_str(std::string(level));
  if (parsed == spdlog::level::off && level != "off") {
    return absl::InvalidArgumentError(absl::StrCat(
        "unknown log level '", level, "'; expected trace, debug, info, warn, error or off"));
  }
  spdlog::set_default_logger(StderrLogger());
  spdlog::set_pattern("%Y-%m-%dT%H:%M:%S.%e %^%l%$ [%t] %v");
  spdlog::set_level(parsed);
  RouteProtobufLogs();
  return absl::OkStatus();
}

void LogToStderrUnlessSetUp() {
  static absl::Mutex mu(absl::kConstInit);
  absl::MutexLock lock(&mu);
  const std::shared_ptr<spdlog::logger> current = spdlog::default_logger();
  if (!current->name().empty()) return;
  std::shared_ptr<spdlog::logger> logger = StderrLogger();
  logger->set_level(current->level());
  spdlog::set_default_logger(std::move(logger));
}

}  // namespace ems
