// ems-controller: the EMS control plane. Serves membership (gRPC) to nodes and clients.
#include <signal.h>

#include <cstdio>
#include <filesystem>
#include <thread>

#include <grpcpp/grpcpp.h>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/synchronization/notification.h"
#include "common/logging.h"
#include "controller/membership_service.h"
#include "spdlog/spdlog.h"

ABSL_FLAG(std::string, membership_listen, "0.0.0.0:50050",
          "host:port of the membership gRPC service that nodes and clients use; port 0 picks a "
          "free port, printed as 'MEMBERSHIP <host:port>' on stdout");
ABSL_FLAG(std::string, state_dir, "/var/lib/ems-controller",
          "directory of the controller's SQLite state (created if missing)");
ABSL_FLAG(int, heartbeat_ms, 1000, "heartbeat interval the controller asks nodes to use");
ABSL_FLAG(int, down_after_missed, 3, "a node silent for this many heartbeat intervals is DOWN");
ABSL_FLAG(int, vnodes_per_node, 2048, "virtual nodes per node of mean capacity on the ring");
ABSL_FLAG(int, replication_factor, 1, "copies of each block in new cluster maps");
ABSL_FLAG(std::string, log_level, "info", "trace, debug, info, warn, error or off");

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage("ems-controller: EMS control plane (membership, REST API)");
  absl::ParseCommandLine(argc, argv);
  ems::InitLogging(absl::GetFlag(FLAGS_log_level));

  // Block SIGTERM/SIGINT in every thread; one thread waits for them with sigwait.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  const std::filesystem::path dir = absl::GetFlag(FLAGS_state_dir);
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) {
    spdlog::error("cannot create --state_dir {}: {}", dir.string(), ec.message());
    return 1;
  }
  auto store = ems::controller::StateStore::Open((dir / "controller.db").string());
  if (!store.ok()) {
    spdlog::error("{}", store.status().ToString());
    return 1;
  }
  ems::controller::MembershipOptions mopts;
  mopts.heartbeat_interval = absl::Milliseconds(absl::GetFlag(FLAGS_heartbeat_ms));
  mopts.down_after_missed = absl::GetFlag(FLAGS_down_after_missed);
  mopts.vnodes_per_node = absl::GetFlag(FLAGS_vnodes_per_node);
  mopts.replication_factor = absl::GetFlag(FLAGS_replication_factor);
  auto membership = ems::controller::Membership::Create(store->get(), mopts);
  if (!membership.ok()) {
    spdlog::error("{}", membership.status().ToString());
    return 1;
  }
  ems::controller::MembershipService service(membership->get());

  int port = 0;
  grpc::ServerBuilder builder;
  builder.AddListeningPort(absl::GetFlag(FLAGS_membership_listen),
                           grpc::InsecureServerCredentials(), &port);
  builder.RegisterService(&service);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (!server || port == 0) {
    spdlog::error("cannot listen on --membership_listen {}", absl::GetFlag(FLAGS_membership_listen));
    return 1;
  }
  const std::string listen = absl::GetFlag(FLAGS_membership_listen);
  std::printf("MEMBERSHIP %s:%d\n", listen.substr(0, listen.rfind(':')).c_str(), port);
  std::fflush(stdout);

  absl::Notification stop;
  std::thread monitor([&] {
    while (!stop.WaitForNotificationWithTimeout(mopts.heartbeat_interval / 2)) {
      (*membership)->MarkSilentNodesDown();
    }
  });

  int sig = 0;
  sigwait(&signals, &sig);
  spdlog::info("ems-controller: signal {}, shutting down", sig);
  stop.Notify();
  service.StopWatches();
  server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(5));
  monitor.join();
  return 0;
}
