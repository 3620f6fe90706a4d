// The remote bulk path's candidates, measured side by side (issue #4): how a 2 MiB block gets
// from pinned memory into a loopback TCP socket and all the way to the reader.
//   Send            one send() from the block, as the bulk channel's sendmsg does;
//   UringWriteFixed io_uring WRITE_FIXED from a registered buffer (no page pinning per call);
//   UringSendZc     io_uring SEND_ZC from a registered buffer (the kernel sends from the pages
//                   themselves and reports when it is done with them).
// Each iteration sends one block and waits for the reader's 1-byte acknowledgement, so the time
// covers the whole transfer. The reader is a plain recv loop in another thread.
#include <liburing.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>
#include <thread>
#include <vector>

#include "benchmark/benchmark.h"

namespace ems {
namespace {

constexpr int kSocketBufferBytes = 4 << 20;  // as the bulk channel (src/bulk/wire.cc)

void Tune(int fd) {
  const int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &kSocketBufferBytes, sizeof(kSocketBufferBytes));
  setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &kSocketBufferBytes, sizeof(kSocketBufferBytes));
}

// A connected loopback TCP pair and a reader thread that acknowledges every `block` bytes.
class Loopback {
 public:
  explicit Loopback(size_t block) : block_(block) {
    const int listener = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(addr);
    if (bind(listener, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
        listen(listener, 1) != 0 ||
        getsockname(listener, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
      close(listener);
      return;
    }
    sender_ = socket(AF_INET, SOCK_STREAM, 0);
    Tune(sender_);
    if (connect(sender_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
      close(listener);
      return;
    }
    reader_ = accept(listener, nullptr, nullptr);
    close(listener);
    Tune(reader_);
    thread_ = std::thread([this] { Read(); });
  }
  ~Loopback() {
    if (sender_ >= 0) shutdown(sender_, SHUT_WR);  // the reader sees EOF and stops
    if (thread_.joinable()) thread_.join();
    if (sender_ >= 0) close(sender_);
    if (reader_ >= 0) close(reader_);
  }
  bool ok() const { return reader_ >= 0; }
  int fd() const { return sender_; }
  // Waits for the reader to have taken one whole block.
  bool WaitAck() {
    char ack;
    return recv(sender_, &ack, 1, MSG_WAITALL) == 1;
  }

 private:
  void Read() {
    std::vector<char> buf(block_);
    while (recv(reader_, buf.data(), buf.size(), MSG_WAITALL) == static_cast<ssize_t>(block_)) {
      const char ack = 1;
      if (send(reader_, &ack, 1, MSG_NOSIGNAL) != 1) break;
    }
  }

  const size_t block_;
  int sender_ = -1, reader_ = -1;
  std::thread thread_;
};

// Pinned-pool stand-in: populated anonymous memory, on hugepages when the machine has them.
struct Block {
  explicit Block(size_t n) : size(n) {
    void* p = mmap(nullptr, n, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE | MAP_HUGETLB, -1, 0);
    if (p == MAP_FAILED) {
      p = mmap(nullptr, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1,
               0);
    }
    data = static_cast<uint8_t*>(p);
    for (size_t i = 0; i < n; ++i) data[i] = static_cast<uint8_t>(i * 131);
  }
  ~Block() { munmap(data, size); }
  uint8_t* data;
  size_t size;
};

void BM_Send(benchmark::State& state) {
  const size_t n = static_cast<size_t>(state.range(0));
  Block block(n);
  Loopback link(n);
  if (!link.ok()) return state.SkipWithError("no loopback connection");
  for (auto _ : state) {
    size_t sent = 0;
    while (sent < n) {
      const ssize_t k = send(link.fd(), block.data + sent, n - sent, MSG_NOSIGNAL);
      if (k <= 0) return state.SkipWithError("send failed");
      sent += static_cast<size_t>(k);
    }
    if (!link.WaitAck()) return state.SkipWithError("no acknowledgement");
  }
  state.SetBytesProcessed(state.iterations() * n);
}

// One io_uring with `block` registered; `zero_copy` picks SEND_ZC over WRITE_FIXED.
void BM_Uring(benchmark::State& state, bool zero_copy) {
  const size_t n = static_cast<size_t>(state.range(0));
  Block block(n);
  Loopback link(n);
  if (!link.ok()) return state.SkipWithError("no loopback connection");
  io_uring ring;
  if (io_uring_queue_init(8, &ring, 0) != 0) return state.SkipWithError("io_uring unavailable");
  iovec iov{block.data, n};
  if (io_uring_register_buffers(&ring, &iov, 1) != 0) {
    io_uring_queue_exit(&ring);
    return state.SkipWithError("cannot register the buffer");
  }
  bool failed = false;
  for (auto _ : state) {
    size_t sent = 0;
    while (sent < n && !failed) {
      io_uring_sqe* sqe = io_uring_get_sqe(&ring);
      if (zero_copy) {
        io_uring_prep_send_zc_fixed(sqe, link.fd(), block.data + sent, n - sent, MSG_NOSIGNAL, 0,
                                    0);
      } else {
        io_uring_prep_write_fixed(sqe, link.fd(), block.data + sent,
                                  static_cast<unsigned>(n - sent), 0, 0);
      }
      io_uring_submit(&ring);
      // SEND_ZC posts the result, then a notification once the kernel let go of the pages.
      bool more = true;
      while (more) {
        io_uring_cqe* cqe = nullptr;
        if (io_uring_wait_cqe(&ring, &cqe) != 0) {
          failed = true;
          break;
        }
        if (!(cqe->flags & IORING_CQE_F_NOTIF)) {
          if (cqe->res <= 0) failed = true;
          if (cqe->res > 0) sent += static_cast<size_t>(cqe->res);
        }
        more = (cqe->flags & IORING_CQE_F_MORE) != 0;
        io_uring_cqe_seen(&ring, cqe);
      }
    }
    if (failed) {
      state.SkipWithError(zero_copy ? "SEND_ZC failed" : "WRITE_FIXED failed");
      break;
    }
    if (!link.WaitAck()) {
      state.SkipWithError("no acknowledgement");
      break;
    }
  }
  io_uring_queue_exit(&ring);
  state.SetBytesProcessed(state.iterations() * n);
}

BENCHMARK(BM_Send)->Arg(256 << 10)->Arg(2 << 20)->UseRealTime();
BENCHMARK_CAPTURE(BM_Uring, WriteFixed, false)->Arg(256 << 10)->Arg(2 << 20)->UseRealTime();
BENCHMARK_CAPTURE(BM_Uring, SendZc, true)->Arg(256 << 10)->Arg(2 << 20)->UseRealTime();

}  // namespace
}  // namespace ems
