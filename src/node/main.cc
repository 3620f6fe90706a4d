// ems-node: the EMS daemon, one per machine.
#include <signal.h>

#include <cstdio>
#include <string>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/flags/usage_config.h"
#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/logging.h"
#include "common/mutex_checks.h"
#include "node/node.h"
#include "spdlog/spdlog.h"

ABSL_FLAG(std::string, listen, "0.0.0.0:50051",
          "host:port for the gRPC data plane; port 0 picks a free port. The bound address is "
          "printed on stdout as 'LISTENING host:port'");
ABSL_FLAG(uint64_t, huge_page_num, 256,
          "number of hugepages in the arena (arena = huge_page_num x huge_page_flavor MB); any "
          "count that fits the machine, e.g. 256 for 512 MB");
ABSL_FLAG(uint64_t, huge_page_flavor, 2, "hugepage size in MB: 2 or 1024");
ABSL_FLAG(int, numa_node, -1, "bind the arena to this NUMA node; -1 = no binding");
ABSL_FLAG(bool, require_hugepages, false,
          "fail at start-up unless enough hugetlb pages are reserved (default: fall back to "
          "transparent huge pages with a warning)");
ABSL_FLAG(bool, prefault, true,
          "allocate and map every arena page at start-up (no page faults on the data path); "
          "false lets memory grow as blocks are written");
ABSL_FLAG(std::string, eviction_policy, "lru", "eviction policy: lru, s3fifo or prefix");
ABSL_FLAG(double, high_watermark, 0.95, "start evicting above this fraction of the arena");
ABSL_FLAG(double, low_watermark, 0.85, "evict down to this fraction of the arena");
ABSL_FLAG(uint64_t, max_value_bytes, 64ull << 20, "largest value accepted, in bytes");
ABSL_FLAG(int, index_shards, 64, "index shards (a power of two)");
ABSL_FLAG(int, metrics_port, 0,
          "HTTP port for /metrics (Prometheus text) and /healthz; 0 picks a free port (printed "
          "as 'METRICS port'); -1 disables");
ABSL_FLAG(std::string, metrics_host, "0.0.0.0", "address the metrics endpoint binds to");
ABSL_FLAG(std::string, node_id, "",
          "this node's id in the cluster map; default hostname:port (hostname-pid with port 0)");
ABSL_FLAG(std::string, local_socket, "",
          "Unix socket path for same-machine clients (shared-memory path); empty disables");
ABSL_FLAG(int, bulk_port, 0,
          "port of the bulk data channel (values move between the socket and the arena with no "
          "copy in between) on the --listen host; 0 picks a free port, -1 disables it");
ABSL_FLAG(std::string, cd_key, "",
          "project credential clients must present (metadata ems-cd-key); empty = none. "
          "Visible in the host's process list: prefer --cd_key_file");
ABSL_FLAG(std::string, cd_key_file, "",
          "file holding the project credential (e.g. a mounted Kubernetes Secret); surrounding "
          "whitespace is ignored and an empty file means none. Exclusive with --cd_key");
ABSL_FLAG(std::string, controller, "",
          "host:port of ems-controller's membership service; empty = standalone node");
ABSL_FLAG(std::string, cluster, "default", "cluster name to register in");
ABSL_FLAG(std::string, zone, "", "failure domain for zone-aware replica placement");
ABSL_FLAG(std::string, advertise, "",
          "address other nodes and clients use to reach this node; default 127.0.0.1:<port>");
ABSL_FLAG(double, migration_mbps, 0,
          "rate limit, in MB/s, for pushing blocks to their new owners when the cluster map "
          "changes or the node drains; 0 = unlimited");
ABSL_FLAG(int, shutdown_grace_seconds, 10,
          "on SIGTERM, how long in-flight calls may take before the node exits");
ABSL_FLAG(std::string, log_level, "info", "trace, debug, info, warn, error or off");

// jemalloc reads this at start-up: return freed message buffers to the OS within a second so
// the process's memory beyond the arena stays small (docs/pool.md).
extern "C" {
const char* malloc_conf = "background_thread:true,dirty_decay_ms:1000,muzzy_decay_ms:0";
}

int main(int argc, char** argv) {
  // --help lists this binary's own flags (absl matches by file name otherwise).
  absl::FlagsUsageConfig usage_config;
  usage_config.contains_help_flags = [](absl::string_view file) {
    return absl::StrContains(file, "src/node/");
  };
  absl::SetFlagsUsageConfig(usage_config);
  absl::SetProgramUsageMessage(
      "serves a DRAM pool of KV-cache blocks over gRPC.\n"
      "usage: ems-node [--flag=value ...]   (--helpfull lists library flags too)");
  absl::ParseCommandLine(argc, argv);
  if (absl::Status s = ems::InitLogging(absl::GetFlag(FLAGS_log_level)); !s.ok()) {
    std::fprintf(stderr, "ems-node: --log_level: %s\n", std::string(s.message()).c_str());
    return 1;
  }
  ems::DisableMutexDeadlockDetection();  // see mutex_checks.h

  // SIGTERM and SIGINT are taken synchronously by the main thread (sigwait): every other
  // thread inherits the blocked mask.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  ems::node::NodeOptions o;
  o.listen = absl::GetFlag(FLAGS_listen);
  o.pool.huge_page_num = absl::GetFlag(FLAGS_huge_page_num);
  o.pool.huge_page_flavor_mb = absl::GetFlag(FLAGS_huge_page_flavor);
  o.pool.numa_node = absl::GetFlag(FLAGS_numa_node);
  o.pool.require_hugepages = absl::GetFlag(FLAGS_require_hugepages);
  o.pool.eviction_policy = absl::GetFlag(FLAGS_eviction_policy);
  o.pool.prefault = absl::GetFlag(FLAGS_prefault);
  // SIGTERM and SIGINT are blocked (above), so one sent while the node starts waits for
  // sigwait below. Faulting in a large arena is the long part of a start (minutes for
  // hundreds of GiB): it stops at its next step when one is pending.
  o.pool.keep_going_prefault = [] {
    sigset_t pending;
    if (sigpending(&pending) != 0) return true;
    return sigismember(&pending, SIGTERM) != 1 && sigismember(&pending, SIGINT) != 1;
  };
  o.pool.high_watermark = absl::GetFlag(FLAGS_high_watermark);
  o.pool.low_watermark = absl::GetFlag(FLAGS_low_watermark);
  o.pool.max_value_bytes = absl::GetFlag(FLAGS_max_value_bytes);
  o.pool.index_shards = absl::GetFlag(FLAGS_index_shards);
  o.metrics_port = absl::GetFlag(FLAGS_metrics_port);
  o.metrics_host = absl::GetFlag(FLAGS_metrics_host);
  o.node_id = absl::GetFlag(FLAGS_node_id);
  o.bulk_port = absl::GetFlag(FLAGS_bulk_port);
  o.local_socket = absl::GetFlag(FLAGS_local_socket);
  o.cd_key = absl::GetFlag(FLAGS_cd_key);
  o.cd_key_file = absl::GetFlag(FLAGS_cd_key_file);
  o.controller = absl::GetFlag(FLAGS_controller);
  o.cluster = absl::GetFlag(FLAGS_cluster);
  o.zone = absl::GetFlag(FLAGS_zone);
  o.advertise = absl::GetFlag(FLAGS_advertise);
  o.migration_mbps = absl::GetFlag(FLAGS_migration_mbps);
  if (o.pool.max_value_bytes + (16 << 20) > o.max_message_bytes) {
    o.max_message_bytes = o.pool.max_value_bytes + (16 << 20);
  }

  auto node = ems::node::Node::Start(o);
  if (absl::IsCancelled(node.status())) {  // the prefault saw SIGTERM or SIGINT
    spdlog::info("ems-node: signal while starting; stopped ({})",
                 std::string(node.status().message()));
    return 0;
  }
  if (!node.ok()) {
    spdlog::error("ems-node: {}", node.status().ToString());
    return 1;
  }
  const std::string host = o.listen.substr(0, o.listen.rfind(':'));
  std::printf("LISTENING %s:%d\n", host.c_str(), (*node)->port());
  if ((*node)->metrics_port() > 0) std::printf("METRICS %d\n", (*node)->metrics_port());
  std::fflush(stdout);

  int sig = 0;
  sigwait(&signals, &sig);
  spdlog::info("ems-node: signal {}; finishing in-flight calls", sig);
  (*node)->Shutdown(absl::Seconds(absl::GetFlag(FLAGS_shutdown_grace_seconds)));
  node->reset();
  spdlog::info("ems-node: stopped");
  return 0;
}
