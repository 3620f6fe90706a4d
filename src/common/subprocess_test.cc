#include "common/subprocess.h"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>
#include <string>

#include "absl/time/clock.h"
#include "gtest/gtest.h"

namespace ems {
namespace {

// True while `pid` runs: present in /proc and not a zombie (an orphan's zombie may linger
// where PID 1 does not reap).
bool Running(pid_t pid) {
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  if (!std::getline(stat, line)) return false;
  const size_t paren = line.rfind(')');
  return paren != std::string::npos && paren + 2 < line.size() && line[paren + 2] != 'Z';
}

// A benchmark killed before it stops its nodes must not leave them running.
TEST(ProcessTest, AChildIsTerminatedWhenItsParentIsKilled) {
  int fds[2];
  ASSERT_EQ(pipe(fds), 0);
  const pid_t parent = fork();
  ASSERT_GE(parent, 0);
  if (parent == 0) {  // stands for the benchmark: starts a child, then waits to be killed
    close(fds[0]);
    auto child = Process::Start("/bin/sleep", {"120"}, {});
    const pid_t pid = child.ok() ? (*child)->pid() : -1;
    (void)!write(fds[1], &pid, sizeof(pid));
    pause();
    _exit(0);
  }
  close(fds[1]);
  pid_t child = -1;
  ASSERT_EQ(read(fds[0], &child, sizeof(child)), static_cast<ssize_t>(sizeof(child)));
  close(fds[0]);
  ASSERT_GT(child, 0);
  EXPECT_TRUE(Running(child));
  ASSERT_EQ(kill(parent, SIGKILL), 0);
  ASSERT_EQ(waitpid(parent, nullptr, 0), parent);
  bool gone = false;
  for (int i = 0; i < 500 && !gone; ++i) {
    gone = !Running(child);
    if (!gone) absl::SleepFor(absl::Milliseconds(10));
  }
  EXPECT_TRUE(gone) << "pid " << child << " outlived its parent";
  if (!gone) kill(child, SIGKILL);
}

// The pipe a child's stdout goes to holds 64 KiB. A child that keeps printing after its ready
// line (a daemon's log on stdout, a chatty tool) must not block on a full pipe that nobody
// reads: it would stop serving, and Wait would time out.
TEST(ProcessTest, AChildThatKeepsWritingToStdoutAfterItIsReadyIsNotBlocked) {
  auto child = Process::Start(
      "/bin/sh", {"-c", "echo READY now; yes line | head -c 1048576; exit 3"}, {"READY"});
  ASSERT_TRUE(child.ok()) << child.status();
  EXPECT_EQ((*child)->Value("READY"), "now");
  EXPECT_EQ((*child)->Wait(absl::Seconds(10)), 3) << "the child blocked writing to stdout";
}

}  // namespace
}  // namespace ems
