#include "common/logging.h"

#include <string>

#include "absl/time/clock.h"
#include "google/protobuf/stubs/logging.h"
#include "spdlog/sinks/stdout_color_sinks.h"
#include "spdlog/spdlog.h"

namespace ems {
namespace {

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

void InitLogging(absl::string_view level) {
  auto logger = spdlog::stderr_color_mt("ems");
  spdlog::set_default_logger(logger);
  spdlog::set_pattern("%Y-%m-%dT%H:%M:%S.%e %^%l%$ [%t] %v");
  spdlog::set_level(spdlog::level::from_str(std::string(level)));
  RouteProtobufLogs();
}

}  // namespace ems
