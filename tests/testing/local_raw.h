// A raw client of the node's local socket protocol, for tests that need to hold leases or
// misbehave on purpose (the real LocalChannel never does).
#ifndef EMS_TESTS_TESTING_LOCAL_RAW_H_
#define EMS_TESTS_TESTING_LOCAL_RAW_H_

#include <poll.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstdint>
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
    if (arena_ != nullptr) munmap(arena_, arena_bytes_);
    if (fd_ >= 0) close(fd_);
  }
  bool ok() const { return fd_ >= 0; }
  // Sends one request without reading anything.
  bool Send(const v1::LocalRequest& req) { return SendBytes(req.SerializeAsString()); }
  // Sends `bytes` as one packet, whatever they hold.
  bool SendBytes(const std::string& bytes) {
    return send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL) ==
           static_cast<ssize_t>(bytes.size());
  }
  // Reads one response, waiting at most `wait`. Passed fds (the hello's arena and directory)
  // go to `fds` if given, else are closed. False if none came or it does not parse.
  bool Receive(v1::LocalResponse* resp, std::vector<int>* fds = nullptr,
               int wait_ms = -1 /* forever */) {
    pollfd p{fd_, POLLIN, 0};
    if (poll(&p, 1, wait_ms) <= 0) return false;
    alignas(cmsghdr) char control[CMSG_SPACE(2 * sizeof(int))];  // hello: arena and directory
    iovec iov{buf_.data(), buf_.size()};
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control;
    msg.msg_controllen = sizeof(control);
    ssize_t n = recvmsg(fd_, &msg, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
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
    return resp->ParseFromArray(buf_.data(), static_cast<int>(n));
  }
  // Sends one request and reads its response.
  bool Call(const v1::LocalRequest& req, v1::LocalResponse* resp, std::vector<int>* fds = nullptr) {
    return Send(req) && Receive(resp, fds);
  }
  // Says hello and maps the arena it hands out, read-write, as a writer does; unmapped with
  // this object. nullptr if the hello failed or passed no arena.
  uint8_t* MapArena() {
    v1::LocalRequest hello;
    hello.mutable_hello();
    v1::LocalResponse welcome;
    std::vector<int> fds;
    if (!Call(hello, &welcome, &fds) || fds.empty()) return nullptr;
    void* p = mmap(nullptr, welcome.arena_bytes(), PROT_READ | PROT_WRITE, MAP_SHARED, fds[0], 0);
    for (int fd : fds) close(fd);
    if (p == MAP_FAILED) return nullptr;
    arena_ = static_cast<uint8_t*>(p);
    arena_bytes_ = welcome.arena_bytes();
    return arena_;
  }
  int fd() const { return fd_; }
  // Closes this process's descriptor (a forked child may still hold the socket).
  void CloseLocalCopy() {
    close(fd_);
    fd_ = -1;
  }

 private:
  int fd_ = -1;
  uint8_t* arena_ = nullptr;  // MapArena's
  size_t arena_bytes_ = 0;
  std::string buf_ = std::string(1 << 20, '\0');  // the largest message the node takes
};

}  // namespace ems::testing

#endif  // EMS_TESTS_TESTING_LOCAL_RAW_H_
