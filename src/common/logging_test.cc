#include "common/logging.h"

#include <memory>
#include <sstream>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_split.h"
#include "ems/v1/data.pb.h"
#include "gtest/gtest.h"
#include "spdlog/sinks/ostream_sink.h"
#include "spdlog/spdlog.h"

namespace ems {
namespace {

TEST(LogThrottleTest, LetsOneLineThroughPerIntervalAndCountsTheRest) {
  LogThrottle throttle(absl::Seconds(10));
  const absl::Time t0 = absl::FromUnixSeconds(1000);
  uint64_t held_back = 99;
  ASSERT_TRUE(throttle.Allow(t0, &held_back));
  EXPECT_EQ(held_back, 0u);
  EXPECT_FALSE(throttle.Allow(t0 + absl::Seconds(1), &held_back));
  EXPECT_FALSE(throttle.Allow(t0 + absl::Seconds(9), &held_back));
  ASSERT_TRUE(throttle.Allow(t0 + absl::Seconds(10), &held_back));
  EXPECT_EQ(held_back, 2u);
  EXPECT_FALSE(throttle.Allow(t0 + absl::Seconds(11), &held_back));
  ASSERT_TRUE(throttle.Allow(t0 + absl::Seconds(60), &held_back));
  EXPECT_EQ(held_back, 1u);
}

// A peer's message with invalid UTF-8 in a string field makes libprotobuf log an error for
// each one it parses; routed, a flood of them is one warning in the process's log.
TEST(RouteProtobufLogsTest, AFloodOfBadMessagesIsOneWarning) {
  std::ostringstream out;
  auto logger = std::make_shared<spdlog::logger>(
      "protobuf-test", std::make_shared<spdlog::sinks::ostream_sink_mt>(out));
  logger->set_level(spdlog::level::debug);
  auto previous = spdlog::default_logger();
  spdlog::set_default_logger(logger);
  RouteProtobufLogs();

  const std::string bad_ns = std::string("\x0a\x02\xff\xfe", 4);  // Key.ns = 0xff 0xfe
  for (int i = 0; i < 200; ++i) {
    v1::Key key;
    EXPECT_FALSE(key.ParseFromString(bad_ns)) << "proto3 refuses invalid UTF-8";
  }
  spdlog::set_default_logger(previous);

  const std::string log = out.str();
  const std::vector<std::string> lines = absl::StrSplit(log, '\n', absl::SkipEmpty());
  ASSERT_EQ(lines.size(), 1u) << log;
  EXPECT_TRUE(absl::StrContains(lines[0], "[warning]")) << log;
  EXPECT_TRUE(absl::StrContains(lines[0], "invalid UTF-8")) << log;
}

}  // namespace
}  // namespace ems
