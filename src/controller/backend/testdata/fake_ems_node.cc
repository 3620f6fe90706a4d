// A stand-in for ems-node in local-backend tests: accepts ems-node's flags, records them in
// args.txt (in its working directory), listens on --listen's host with a free port, prints
// "LISTENING host:port" like ems-node, and exits on SIGTERM. --fail_start makes it exit 3
// with a message on stderr instead.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <fstream>
#include <string>

int main(int argc, char** argv) {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  sigprocmask(SIG_BLOCK, &set, nullptr);
  std::ofstream args("args.txt");
  for (int i = 1; i < argc; ++i) {
    args << argv[i] << "\n";
    if (std::strcmp(argv[i], "--fail_start") == 0) {
      std::fprintf(stderr, "fake ems-node: refusing to start as asked\n");
      return 3;
    }
  }
  args.close();
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(addr);
  if (fd < 0 || bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
      listen(fd, 4) != 0 || getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    std::perror("fake ems-node: listen");
    return 2;
  }
  std::printf("LISTENING 127.0.0.1:%d\n", ntohs(addr.sin_port));
  std::fflush(stdout);
  int sig = 0;
  sigwait(&set, &sig);
  close(fd);
  return 0;
}
