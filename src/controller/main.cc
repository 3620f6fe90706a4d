// ems-controller: the EMS control plane. Serves membership (gRPC) to nodes and clients, the
// EMS REST API to operators, and reconciles clusters through a backend (local or kubernetes).
#include <grpcpp/grpcpp.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/flags/usage_config.h"
#include "absl/strings/match.h"
#include "absl/strings/strip.h"
#include "absl/synchronization/notification.h"
#include "common/exclusive_port.h"
#include "common/logging.h"
#include "common/mutex_checks.h"
#include "controller/api/rest_server.h"
#include "controller/backend/kube_backend.h"
#include "controller/backend/local_backend.h"
#include "controller/ids.h"
#include "controller/jobs/reconciler.h"
#include "controller/membership_service.h"
#include "spdlog/spdlog.h"

ABSL_FLAG(std::string, listen, "0.0.0.0:8080",
          "host:port of the EMS REST API; port 0 picks a free port, printed as 'REST <host:port>' "
          "on stdout");
ABSL_FLAG(std::string, membership_listen, "0.0.0.0:50050",
          "host:port of the membership gRPC service that nodes and clients use; port 0 picks a "
          "free port, printed as 'MEMBERSHIP <host:port>' on stdout");
ABSL_FLAG(std::string, state_dir, "/var/lib/ems-controller",
          "directory of the controller's SQLite state, admin token and local node directories "
          "(created if missing)");
ABSL_FLAG(std::string, backend, "local",
          "where ems-node processes run: local (processes on this machine) or kubernetes");
ABSL_FLAG(int64_t, local_node_memory_cap_mb, 256,
          "local backend: cap of each node's arena in MB, so a 256 GB memory_specification runs "
          "on a small machine (ShowCluster's reason says when a cluster is capped)");
ABSL_FLAG(std::string, ems_node_binary, "",
          "local backend: path of ems-node; default: ems-node beside this binary");
ABSL_FLAG(bool, local_node_register, true,
          "local backend: start nodes with --controller/--cluster so they join the cluster map");
ABSL_FLAG(std::string, admin_token_file, "",
          "file holding the admin token that may mint project tokens (POST /v1/tokens); created "
          "with a random token if missing; default <state_dir>/admin.token");
ABSL_FLAG(bool, loopback_token_create, true,
          "let loopback clients mint project tokens without the admin token");
ABSL_FLAG(std::string, k8s_api_server, "",
          "kubernetes backend: API server URL; default https://$KUBERNETES_SERVICE_HOST:"
          "$KUBERNETES_SERVICE_PORT (in-cluster)");
ABSL_FLAG(std::string, k8s_token_file, "/var/run/secrets/kubernetes.io/serviceaccount/token",
          "kubernetes backend: service-account token");
ABSL_FLAG(std::string, k8s_ca_file, "/var/run/secrets/kubernetes.io/serviceaccount/ca.crt",
          "kubernetes backend: CA bundle of the API server");
ABSL_FLAG(std::string, k8s_manifests_dir, "/etc/ems/k8s",
          "kubernetes backend: directory with the ems-node DaemonSet and ConfigMap (deploy/k8s)");
ABSL_FLAG(std::string, k8s_controller_address, "",
          "kubernetes backend: membership address nodes register with (the controller Service)");
ABSL_FLAG(std::string, k8s_cluster_id, "",
          "kubernetes backend: UUID of the K8s cluster this controller manages; "
          "ListClustersLabels of any other id is empty (\"\" = answer for any id)");
ABSL_FLAG(std::string, k8s_node_image, "ems:0.1.0",
          "kubernetes backend: ems image (pinned tag or digest) of the DaemonSets it creates; "
          "deploy/k8s sets it to the ems-node DaemonSet's image");
ABSL_FLAG(int, ready_timeout_s, 300, "a job fails if its nodes are not ready within this");
ABSL_FLAG(int, drain_timeout_s, 60,
          "shrink: how long a DRAINING node may take to hand over its blocks before it is stopped");
ABSL_FLAG(int, heartbeat_ms, 1000, "heartbeat interval the controller asks nodes to use");
ABSL_FLAG(int, down_after_missed, 3, "a node silent for this many heartbeat intervals is DOWN");
ABSL_FLAG(int, vnodes_per_node, 2048, "virtual nodes per node of mean capacity on the ring");
ABSL_FLAG(int, replication_factor, 1, "copies of each block in new cluster maps");
ABSL_FLAG(std::string, log_level, "info", "trace, debug, info, warn, error or off");

namespace {

namespace fs = std::filesystem;

// Reads the admin token, or creates the file (mode 0600) with a fresh one.
std::string LoadOrCreateAdminToken(const fs::path& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  std::string token(absl::StripAsciiWhitespace(ss.str()));
  if (!token.empty()) return token;
  token = "emsa-" + ems::controller::RandomHex(24);
  const mode_t old = umask(077);
  std::ofstream out(path, std::ios::trunc);
  out << token << "\n";
  umask(old);
  if (!out.good()) {
    spdlog::error("cannot write admin token file {}", path.string());
    return "";
  }
  spdlog::info("wrote a new admin token to {}", path.string());
  return token;
}

std::string Connectable(const std::string& listen, int port) {
  std::string host = listen.substr(0, listen.rfind(':'));
  if (host.empty() || host == "0.0.0.0" || host == "[::]") host = "127.0.0.1";
  return host + ":" + std::to_string(port);
}

}  // namespace

int main(int argc, char** argv) {
  // --help lists this binary's own flags (absl matches by file name otherwise).
  absl::FlagsUsageConfig usage_config;
  usage_config.contains_help_flags = [](absl::string_view file) {
    return absl::StrContains(file, "src/controller/");
  };
  absl::SetFlagsUsageConfig(usage_config);
  absl::SetProgramUsageMessage(
      "ems-controller: EMS control plane (REST API, membership, reconciler)\n"
      "usage: ems-controller --listen HOST:PORT --state_dir DIR --backend local|kubernetes "
      "[--local_node_memory_cap_mb N]");
  absl::ParseCommandLine(argc, argv);
  if (absl::Status s = ems::InitLogging(absl::GetFlag(FLAGS_log_level)); !s.ok()) {
    std::fprintf(stderr, "ems-controller: --log_level: %s\n", std::string(s.message()).c_str());
    return 1;
  }
  ems::DisableMutexDeadlockDetection();  // see mutex_checks.h
  using namespace ems::controller;

  // Block SIGTERM/SIGINT in every thread; one thread waits for them with sigwait.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  const fs::path dir = absl::GetFlag(FLAGS_state_dir);
  std::error_code ec;
  // A state dir we create is the controller's alone (it holds the admin token, the state
  // database with the projects' cdKeys, and the local nodes' key files); one given to us keeps
  // its mode.
  if (fs::create_directories(dir, ec)) fs::permissions(dir, fs::perms::owner_all, ec);
  if (ec) {
    spdlog::error("cannot create --state_dir {}: {}", dir.string(), ec.message());
    return 1;
  }
  auto store = StateStore::Open((dir / "controller.db").string());
  if (!store.ok()) {
    spdlog::error("{}", store.status().ToString());
    return 1;
  }
  MembershipOptions mopts;
  mopts.heartbeat_interval = absl::Milliseconds(absl::GetFlag(FLAGS_heartbeat_ms));
  mopts.down_after_missed = absl::GetFlag(FLAGS_down_after_missed);
  mopts.vnodes_per_node = absl::GetFlag(FLAGS_vnodes_per_node);
  mopts.replication_factor = absl::GetFlag(FLAGS_replication_factor);
  auto membership = Membership::Create(store->get(), mopts);
  if (!membership.ok()) {
    spdlog::error("{}", membership.status().ToString());
    return 1;
  }
  auto registry = Registry::Load(store->get(), ems::Clock::Real());
  if (!registry.ok()) {
    spdlog::error("{}", registry.status().ToString());
    return 1;
  }
  TokenStore tokens(store->get(), ems::Clock::Real());
  CredentialStore credentials(store->get(), ems::Clock::Real());
  MembershipService service(membership->get(),
                            ProjectCdKeyAuthorizer(registry->get(), &credentials));

  int port = 0;
  grpc::ServerBuilder builder;
  ems::ListenExclusively(builder);  // a second controller given this port fails, naming it
  const std::string mlisten = absl::GetFlag(FLAGS_membership_listen);
  builder.AddListeningPort(mlisten, grpc::InsecureServerCredentials(), &port);
  builder.RegisterService(&service);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (!server || port == 0) {
    spdlog::error("cannot listen on --membership_listen {}", mlisten);
    return 1;
  }
  std::printf("MEMBERSHIP %s:%d\n", mlisten.substr(0, mlisten.rfind(':')).c_str(), port);

  // Backend. A project's nodes require its first cdKey (nodes take one key; later keys are for
  // rotation once nodes take several): the local backend passes it as --cd_key, the
  // kubernetes backend in a Secret the pods read with --cd_key_file.
  auto cd_key_of = [&credentials](const std::string& project) -> std::string {
    auto all = credentials.List(project);
    return all.ok() && !all->empty() ? (*all)[0].cd_key : "";
  };
  std::unique_ptr<Backend> backend;
  const std::string backend_name = absl::GetFlag(FLAGS_backend);
  if (backend_name == "local") {
    LocalBackendOptions lo;
    lo.node_binary = absl::GetFlag(FLAGS_ems_node_binary);
    if (lo.node_binary.empty()) {
      lo.node_binary = (fs::read_symlink("/proc/self/exe", ec).parent_path() / "ems-node").string();
    }
    lo.work_dir = (dir / "local").string();
    lo.node_memory_cap_mb = absl::GetFlag(FLAGS_local_node_memory_cap_mb);
    if (absl::GetFlag(FLAGS_local_node_register))
      lo.membership_address = Connectable(mlisten, port);
    lo.cd_key_of = cd_key_of;
    spdlog::info("local backend: ems-node {}, each node's arena capped at {} MB", lo.node_binary,
                 lo.node_memory_cap_mb);
    backend = std::make_unique<LocalBackend>(lo);
  } else if (backend_name == "kubernetes") {
    auto kube = KubeBackend::FromInCluster(
        {.api_server = absl::GetFlag(FLAGS_k8s_api_server),
         .token_file = absl::GetFlag(FLAGS_k8s_token_file),
         .ca_file = absl::GetFlag(FLAGS_k8s_ca_file),
         .manifests_dir = absl::GetFlag(FLAGS_k8s_manifests_dir),
         .controller_address = absl::GetFlag(FLAGS_k8s_controller_address),
         .image = absl::GetFlag(FLAGS_k8s_node_image),
         .k8s_cluster_id = absl::GetFlag(FLAGS_k8s_cluster_id),
         .cd_key_of = cd_key_of});
    if (!kube.ok()) {
      spdlog::error("kubernetes backend: {}", kube.status().ToString());
      return 1;
    }
    backend = *std::move(kube);
  } else {
    spdlog::error("--backend must be local or kubernetes, got '{}'", backend_name);
    return 1;
  }

  api::Handlers handlers(registry->get(), &credentials, backend.get());
  std::string admin_file = absl::GetFlag(FLAGS_admin_token_file);
  if (admin_file.empty()) admin_file = (dir / "admin.token").string();
  api::RestServer rest(&handlers, &tokens,
                       {.listen = absl::GetFlag(FLAGS_listen),
                        .admin_token = LoadOrCreateAdminToken(admin_file),
                        .loopback_token_create = absl::GetFlag(FLAGS_loopback_token_create)});
  if (absl::Status s = rest.Start(); !s.ok()) {
    spdlog::error("REST API: {}", s.ToString());
    return 1;
  }
  std::printf("REST %s\n", Connectable(absl::GetFlag(FLAGS_listen), rest.port()).c_str());
  std::fflush(stdout);

  ReconcilerOptions ropts;
  ropts.ready_timeout = absl::Seconds(absl::GetFlag(FLAGS_ready_timeout_s));
  ropts.drain_timeout = absl::Seconds(absl::GetFlag(FLAGS_drain_timeout_s));
  Reconciler reconciler(registry->get(), backend.get(), membership->get(), ropts);
  reconciler.Start();

  absl::Notification stop;
  std::thread monitor([&] {
    absl::Time next_purge = absl::Now();
    while (!stop.WaitForNotificationWithTimeout(mopts.heartbeat_interval / 2)) {
      (*membership)->MarkSilentNodesDown();
      if (absl::Now() >= next_purge) {
        tokens.PurgeExpired();
        next_purge = absl::Now() + absl::Hours(1);
      }
    }
  });

  int sig = 0;
  sigwait(&signals, &sig);
  // Nodes keep running: the data plane serves with its last map while the controller is down,
  // and a restarted controller re-adopts them.
  spdlog::info("ems-controller: signal {}, shutting down", sig);
  stop.Notify();
  rest.Stop();
  reconciler.Stop();
  service.StopWatches();
  server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(5));
  monitor.join();
  return 0;
}
