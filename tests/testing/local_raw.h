// A raw client of the node's local socket protocol, for tests that need to hold leases or
// misbehave on purpose (the real LocalChannel never does).
#ifndef EMS_TESTS_TESTING_LOCAL_RAW_H_
#define EMS_TESTS_TESTING_LOCAL_RAW_H_

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>
#include <string>
#include <vector>

#include "ems/v1/local.pb.h"

namespace ems::testing {

class RawLocal {
 public:
  explicit RawLocal(const std::string& path) {
    fd_ = socket(AF_UNIX, SOCK_SEQPACKET, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::strncpy(addr.sun_path, path.c_str(), sizeof(addr.sun_path) - 1);
    if (connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
      close(fd_);
      fd_ = -1;
    }
  }
  ~RawLocal() {
    if (fd_ >= 0) close(fd_);
  }
  bool ok() const { return fd_ >= 0; }
  // Sends one request without reading anything.
  bool Send(const v1::LocalRequest& req) {
    std::string out = req.SerializeAsString();
    return send(fd_, out.data(), out.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(out.size());
  }
  // Sends one request and reads its response. Passed fds (the hello's arena and directory)
  // go to `fds` if given, else are closed.
  bool Call(const v1::LocalRequest& req, v1::LocalResponse* resp, std::vector<int>* fds = nullptr) {
    if (!Send(req)) return false;
    std::string buf(1 << 20, '\0');
    alignas(cmsghdr) char control[CMSG_SPACE(2 * sizeof(int))];  // hello: arena and directory
    iovec iov{buf.data(), buf.size()};
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control;
    msg.msg_controllen = sizeof(control);
    ssize_t n = recvmsg(fd_, &msg, 0);
    if (n <= 0) return false;
    for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
      for (size_t i = 0; i < (c->cmsg_len - CMSG_LEN(0)) / sizeof(int); ++i) {
        int fd;
        std::memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof(fd));
        if (fds != nullptr) {
          fds->push_back(fd);
        } else {
          close(fd);
        }
      }
    }
    return resp->ParseFromArray(buf.data(), static_cast<int>(n));
  }
  int fd() const { return fd_; }
  // Closes this process's descriptor (a forked child may still hold the socket).
  void CloseLocalCopy() {
    close(fd_);
    fd_ = -1;
  }

 private:
  int fd_ = -1;
};

}  // namespace ems::testing

#endif  // EMS_TESTS_TESTING_LOCAL_RAW_H_
