#include "common/logging.h"

#include <memory>
#include <sstream>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_split.h"
#include "ems/v1/data.pb.h"
#include "gtest/gtest.h"
#include "spdlog/sinks/ostream_sink.h"
#include "spdlog/sinks/stdout_color_sinks.h"
#include "spdlog/spdlog.h"

namespace ems {
namespace {

// spdlog reads a level name it does not know as "off": a node started with --log_level=INFO
// ran with no log at all, and exited 1 without a word when its start failed.
TEST(InitLoggingTest, RefusesALevelItDoesNotKnowAndChangesNothing) {
  const spdlog::level::level_enum before = spdlog::get_level();
  for (const char* bad : {"INFO", "verbose", "warning ", ""}) {
    const absl::Status s = InitLogging(bad);
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << "'" << bad << "': " << s;
    EXPECT_EQ(spdlog::get_level(), before) << "'" << bad << "' changed the level";
  }
}

// The client library logs through spdlog's default logger, which writes to stdout until a
// program sets one up: a warning landed in the middle of ems-bench's results (and of any
// Python or C program's own output).
TEST(LogToStderrTest, LibraryLinesGoToStderrInAProgramThatSetNothingUp) {
  auto previous = spdlog::default_logger();
  // What a program that never set up logging has: spdlog's own, unnamed, on stdout.
  spdlog::set_default_logger(std::make_shared<spdlog::logger>(
      "", std::make_shared<spdlog::sinks::stdout_color_sink_mt>()));
  LogToStderrUnlessSetUp();
  testing::internal::CaptureStdout();
  testing::internal::CaptureStderr();
  spdlog::warn("a library line");
  spdlog::default_logger()->flush();
  const std::string out = testing::internal::GetCapturedStdout();
  const std::string err = testing::internal::GetCapturedStderr();
  EXPECT_FALSE(absl::StrContains(out, "a library line")) << out;
  EXPECT_TRUE(absl::StrContains(err, "a library line")) << err;

  // A program's own default logger is left alone.
  std::ostringstream mine;
  auto own = std::make_shared<spdlog::logger>(
      "host", std::make_shared<spdlog::sinks::ostream_sink_mt>(mine));
  spdlog::set_default_logger(own);
  LogToStderrUnlessSetUp();
  spdlog::warn("the host's line");
  EXPECT_EQ(spdlog::default_logger(), own);
  EXPECT_TRUE(absl::StrContains(mine.str(), "the host's line")) << mine.str();
  spdlog::set_default_logger(previous);
}

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
