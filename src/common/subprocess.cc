#include "common/subprocess.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"

namespace ems {

std::string SiblingBinary(const std::string& name) {
  char buf[4096];
  ssize_t n = readlink("/proc/self/exe", buf, sizeof(buf) - 1);
  std::string self = n > 0 ? std::string(buf, n) : "";
  return absl::StrCat(self.substr(0, self.rfind('/') + 1), name);
}

absl::StatusOr<std::unique_ptr<Process>> Process::Start(const std::string& binary,
                                                        const std::vector<std::string>& args,
                                                        const std::vector<std::string>& wait_for,
                                                        absl::Duration timeout) {
  int out[2];
  if (pipe2(out, O_CLOEXEC) != 0) return absl::InternalError("pipe failed");
  const pid_t parent = getpid();
  pid_t pid = fork();
  if (pid < 0) {
    const int err = errno;
    close(out[0]);
    close(out[1]);
    return absl::InternalError(absl::StrCat("fork: ", std::strerror(err)));
  }
  if (pid == 0) {
    // A test or benchmark killed before it stops its children (SIGTERM, SIGKILL, a crash)
    // must not leave nodes and controllers running: they get SIGTERM when it dies. (Linux
    // sends it when the forking thread ends; every caller starts children from a thread that
    // outlives them.) The check covers a parent that died before the prctl.
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (getppid() != parent) _exit(127);
    dup2(out[1], STDOUT_FILENO);
    std::vector<char*> argv;
    argv.push_back(const_cast<char*>(binary.c_str()));
    for (const std::string& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    execv(binary.c_str(), argv.data());
    _exit(127);
  }
  close(out[1]);
  std::unique_ptr<Process> p(new Process());
  p->pid_ = pid;
  p->stdout_fd_ = out[0];
  std::string buf;
  const absl::Time deadline = absl::Now() + timeout;
  auto missing = [&] {
    for (const std::string& w : wait_for) {
      if (!p->values_.contains(w)) return true;
    }
    return false;
  };
  while (missing()) {
    const int ms = static_cast<int>(absl::ToInt64Milliseconds(deadline - absl::Now()));
    pollfd pfd{p->stdout_fd_, POLLIN, 0};
    if (ms <= 0 || poll(&pfd, 1, ms) <= 0) {
      return absl::DeadlineExceededError(absl::StrCat(binary, " did not print its addresses"));
    }
    char chunk[4096];
    ssize_t n = read(p->stdout_fd_, chunk, sizeof(chunk));
    if (n <= 0) {
      return absl::UnavailableError(absl::StrCat(
          binary, " exited before it was ready (args: ", absl::StrJoin(args, " "), ")"));
    }
    buf.append(chunk, n);
    size_t nl;
    while ((nl = buf.find('\n')) != std::string::npos) {
      std::string line = buf.substr(0, nl);
      buf.erase(0, nl + 1);
      std::pair<std::string, std::string> kv = absl::StrSplit(line, absl::MaxSplits(' ', 1));
      p->values_[kv.first] = kv.second;
    }
  }
  int wake[2];
  if (pipe2(wake, O_CLOEXEC) != 0) return absl::InternalError("pipe failed");
  p->drain_wake_fd_ = wake[0];
  p->wake_fd_ = wake[1];
  p->drain_ = std::thread([raw = p.get()] { raw->DrainStdout(); });
  return p;
}

void Process::DrainStdout() {
  pollfd fds[2] = {{stdout_fd_, POLLIN, 0}, {drain_wake_fd_, POLLIN, 0}};
  char chunk[4096];
  while (true) {
    if (poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      return;
    }
    if (fds[1].revents != 0) return;  // the destructor is done with the child
    if (read(stdout_fd_, chunk, sizeof(chunk)) <= 0) return;  // EOF: every writer is gone
  }
}

Process::~Process() {
  if (pid_ > 0) {
    kill(pid_, SIGKILL);
    waitpid(pid_, nullptr, 0);
  }
  if (drain_.joinable()) {
    // Not EOF: a grandchild may still hold the pipe's write end.
    const char wake = 0;
    (void)!write(wake_fd_, &wake, 1);
    drain_.join();
  }
  for (int fd : {stdout_fd_, wake_fd_, drain_wake_fd_}) {
    if (fd >= 0) close(fd);
  }
}

std::string Process::Value(const std::string& word) const {
  auto it = values_.find(word);
  return it == values_.end() ? "" : it->second;
}

bool Process::Signal(int sig) { return pid_ > 0 && kill(pid_, sig) == 0; }

int Process::Wait(absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  while (pid_ > 0) {
    int status = 0;
    pid_t r = waitpid(pid_, &status, WNOHANG);
    if (r == pid_) {
      pid_ = -1;
      if (WIFEXITED(status)) return WEXITSTATUS(status);
      if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
      return -1;
    }
    if (absl::Now() > deadline) return -1;
    absl::SleepFor(absl::Milliseconds(10));
  }
  return -1;
}

uint64_t Process::RssBytes() const {
  std::ifstream in(absl::StrCat("/proc/", pid_, "/status"));
  std::string line;
  while (std::getline(in, line)) {
    if (absl::StartsWith(line, "VmRSS:")) {
      uint64_t kb = 0;
      std::vector<std::string> parts = absl::StrSplit(line, ' ', absl::SkipEmpty());
      if (parts.size() >= 2 && absl::SimpleAtoi(parts[1], &kb)) return kb * 1024;
    }
  }
  return 0;
}

absl::StatusOr<std::unique_ptr<Process>> StartNode(const std::string& node_binary,
                                                   const std::vector<std::string>& extra) {
  std::vector<std::string> args = {"--listen=127.0.0.1:0", "--metrics_port=0",
                                   "--metrics_host=127.0.0.1", "--log_level=warn"};
  args.insert(args.end(), extra.begin(), extra.end());
  return Process::Start(node_binary, args, {"LISTENING", "METRICS"});
}

}  // namespace ems
