// Test helper: runs the real ems-controller binary as a child process and reads the addresses
// it prints ("MEMBERSHIP host:port", "REST host:port").
#ifndef EMS_CONTROLLER_E2E_CONTROLLER_PROCESS_H_
#define EMS_CONTROLLER_E2E_CONTROLLER_PROCESS_H_

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <string>
#include <vector>

namespace ems::controller::testing {

class ControllerProcess {
 public:
  // Starts `binary` with `args`; stderr goes to `log_path`. Waits for both address lines.
  bool Start(const std::string& binary, const std::vector<std::string>& args,
             const std::string& log_path) {
    int fds[2];
    if (pipe(fds) != 0) return false;
    std::vector<std::string> all = {binary};
    all.insert(all.end(), args.begin(), args.end());
    std::vector<char*> argv;
    for (std::string& a : all) argv.push_back(a.data());
    argv.push_back(nullptr);
    pid_ = fork();
    if (pid_ == 0) {
      dup2(fds[1], 1);
      const int log = open(log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
      if (log >= 0) dup2(log, 2);
      close(fds[0]);
      execv(argv[0], argv.data());
      _exit(127);
    }
    close(fds[1]);
    out_ = fdopen(fds[0], "r");
    char line[512];
    while ((membership_.empty() || rest_.empty()) && out_ && fgets(line, sizeof(line), out_)) {
      std::string l(line);
      while (!l.empty() && (l.back() == '\n' || l.back() == '\r')) l.pop_back();
      if (l.rfind("MEMBERSHIP ", 0) == 0) membership_ = l.substr(11);
      if (l.rfind("REST ", 0) == 0) rest_ = l.substr(5);
    }
    return !membership_.empty() && !rest_.empty();
  }

  // SIGKILL (crash) or SIGTERM (clean stop); waits for the exit.
  int Stop(int sig) {
    if (pid_ <= 0) return -1;
    kill(pid_, sig);
    int status = 0;
    waitpid(pid_, &status, 0);
    pid_ = 0;
    if (out_) fclose(out_);
    out_ = nullptr;
    membership_.clear();
    rest_.clear();
    return status;
  }

  ~ControllerProcess() { Stop(SIGKILL); }

  const std::string& membership() const { return membership_; }
  const std::string& rest() const { return rest_; }
  int rest_port() const { return std::stoi(rest_.substr(rest_.rfind(':') + 1)); }

 private:
  pid_t pid_ = 0;
  FILE* out_ = nullptr;
  std::string membership_;
  std::string rest_;
};

}  // namespace ems::controller::testing

#endif  // EMS_CONTROLLER_E2E_CONTROLLER_PROCESS_H_
