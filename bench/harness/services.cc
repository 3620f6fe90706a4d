#include "harness/services.h"

#include <arpa/inet.h>
#include <grpcpp/grpcpp.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <csignal>
#include <cstdlib>
#include <filesystem>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "client/client.h"
#include "ems/v1/membership.grpc.pb.h"

namespace ems::bench {
namespace {

bool PortAccepts(int port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bool ok = connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0;
  close(fd);
  return ok;
}

absl::StatusOr<Server> StartDaemon(const std::string& binary, std::vector<std::string> args,
                                   int port) {
  // Neither daemon prints a ready line we can rely on: wait for the port instead.
  auto p = Process::Start(binary, args, {}, absl::Seconds(5));
  if (!p.ok()) return p.status();
  for (int i = 0; i < 200; ++i) {
    if (PortAccepts(port)) return Server{*std::move(p), port};
    absl::SleepFor(absl::Milliseconds(25));
  }
  return absl::UnavailableError(absl::StrCat(binary, " did not open port ", port));
}

}  // namespace

int FreePort() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
  socklen_t len = sizeof(addr);
  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  close(fd);
  return ntohs(addr.sin_port);
}

std::string LocalClusterNodeId(int i) { return absl::StrCat("bench-", i); }

absl::StatusOr<std::unique_ptr<LocalCluster>> LocalCluster::Start(
    int nodes, int pages_per_node, const std::vector<std::string>& flags, bool local_sockets) {
  std::unique_ptr<LocalCluster> c(new LocalCluster());
  char tmpl[] = "/tmp/ems-bench-XXXXXX";
  c->dir_ = mkdtemp(tmpl);
  auto ctl = Process::Start(SiblingBinary("ems-controller"),
                            {"--listen=127.0.0.1:0", "--membership_listen=127.0.0.1:0",
                             "--state_dir=" + c->dir_, "--heartbeat_ms=500", "--log_level=warn"},
                            {"MEMBERSHIP", "REST"});
  if (!ctl.ok()) return ctl.status();
  c->controller_ = *std::move(ctl);
  c->membership_ = c->controller_->Value("MEMBERSHIP");
  for (int i = 0; i < nodes; ++i) {
    std::vector<std::string> args = {
        "--controller=" + c->membership_, "--cluster=bench", "--node_id=" + LocalClusterNodeId(i),
        absl::StrCat("--huge_page_num=", pages_per_node), "--log_level=warn"};
    args.insert(args.end(), flags.begin(), flags.end());
    if (local_sockets)
      args.push_back(absl::StrCat("--local_socket=", c->dir_, "/node-", i, ".sock"));
    auto node = StartNode(SiblingBinary("ems-node"), args);
    if (!node.ok()) return node.status();
    c->nodes_.push_back(*std::move(node));
  }
  // Wait until the map lists every node UP. (It used to wait for an epoch of at least
  // `nodes`, from when epochs counted from 1; they start at the time in milliseconds now, so
  // the first node's registration passed it, and a loaded machine could start a run with a
  // map of one or two nodes.)
  auto membership = v1::Membership::NewStub(
      grpc::CreateChannel(c->membership_, grpc::InsecureChannelCredentials()));
  int up = 0;
  for (int i = 0; i < 400; ++i) {
    grpc::ClientContext ctx;
    ctx.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(2)));
    v1::GetClusterMapRequest req;
    req.set_cluster("bench");
    v1::ClusterMap map;
    up = 0;
    if (membership->GetClusterMap(&ctx, req, &map).ok()) {
      for (const v1::NodeInfo& n : map.nodes()) up += n.state() == v1::UP;
    }
    if (up == nodes) return c;
    absl::SleepFor(absl::Milliseconds(50));
  }
  return absl::DeadlineExceededError(
      absl::StrCat("bench cluster did not form: ", up, " of ", nodes, " nodes UP after 20 s"));
}

absl::Status LocalCluster::Stop() {
  absl::Status status;
  auto stop = [&](std::unique_ptr<Process>& p, const std::string& what) {
    if (p == nullptr || !p->running()) return;
    p->Signal(SIGTERM);
    const int rc = p->Wait(absl::Seconds(30));
    if (rc != 0 && status.ok()) {
      status = absl::InternalError(absl::StrCat(what, " exited with status ", rc, " on SIGTERM"));
    }
  };
  for (size_t i = 0; i < nodes_.size(); ++i) stop(nodes_[i], absl::StrCat("ems-node bench-", i));
  stop(controller_, "ems-controller");
  return status;
}

LocalCluster::~LocalCluster() {
  nodes_.clear();
  controller_.reset();
  std::error_code ec;
  std::filesystem::remove_all(dir_, ec);
}

absl::StatusOr<Server> StartRedis() {
  const int port = FreePort();
  return StartDaemon("/usr/bin/redis-server",
                     {"--port", absl::StrCat(port), "--bind", "127.0.0.1", "--save", "",
                      "--appendonly", "no", "--protected-mode", "no", "--loglevel", "warning"},
                     port);
}

absl::StatusOr<Server> StartMemcached(int memory_mb) {
  const int port = FreePort();
  return StartDaemon("/usr/bin/memcached",
                     {"-l", "127.0.0.1", "-p", absl::StrCat(port), "-U", "0", "-m",
                      absl::StrCat(memory_mb), "-I", "64m", "-t", "2", "-u", "root"},
                     port);
}

}  // namespace ems::bench
