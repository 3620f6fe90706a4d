#include "node/node.h"

#include <grpcpp/grpcpp.h>
#include <httplib.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/exclusive_port.h"
#include "common/status_macros.h"
#include "node/bulk_server.h"
#include "node/data_service.h"
#include "node/local_server.h"
#include "node/membership_agent.h"
#include "node/migrator.h"
#include "node/removed_keys.h"
#include "spdlog/spdlog.h"

namespace ems::node {
namespace {

std::string HostName() {
  char buf[256] = {};
  gethostname(buf, sizeof(buf) - 1);
  return buf;
}

}  // namespace

Node::Node(NodeOptions options) : options_(std::move(options)) {}

absl::StatusOr<std::unique_ptr<Node>> Node::Start(NodeOptions options) {
  std::unique_ptr<Node> node(new Node(std::move(options)));
  NodeOptions& o = node->options_;
  if (!o.cd_key.empty() && !o.cd_key_file.empty()) {
    return absl::InvalidArgumentError("give --cd_key or --cd_key_file, not both");
  }
  node->credential_ = std::make_shared<Credential>(o.cd_key);
  if (!o.cd_key_file.empty()) {
    EMS_ASSIGN_OR_RETURN(std::string key, ReadCdKeyFile(o.cd_key_file));
    spdlog::info("ems-node: {}", key.empty() ? "--cd_key_file is empty: clients need no credential"
                                             : "clients must present the cdKey of --cd_key_file");
    node->credential_->Set(std::move(key));
    node->credential_watcher_ = std::make_unique<CredentialFileWatcher>(
        o.cd_key_file, node->credential_, o.cd_key_file_period);
  }
  // Co-located clients look blocks up in the directory instead of asking over the socket.
  o.pool.publish_directory = !o.local_socket.empty();
  // Clients on other hosts mirror the keys through the bulk channel (WATCH_KEYS). The feed
  // keeps the last 64k changes: a mirror further behind than that starts over.
  if (o.bulk_port >= 0) o.pool.key_feed_events = 64 << 10;
  EMS_ASSIGN_OR_RETURN(node->pool_, pool::Pool::Create(o.pool));

  DataServiceOptions sopts;
  sopts.credential = node->credential_;
  // Only a cluster's nodes receive migration pushes, which a client's recent remove refuses.
  if (!o.controller.empty()) node->removed_keys_ = std::make_unique<RemovedKeys>();
  sopts.removed_keys = node->removed_keys_.get();
  Node* raw = node.get();
  sopts.view = [raw]() -> std::shared_ptr<const ClusterView> {
    MembershipAgent* agent = raw->agent_raw_.load(std::memory_order_acquire);
    return agent ? agent->view() : nullptr;
  };
  const std::string host = o.listen.substr(0, o.listen.rfind(':'));
  const std::string requested_port = o.listen.substr(o.listen.rfind(':') + 1);
  if (o.node_id.empty()) {
    // The default id must be unique per machine before the port is bound.
    o.node_id = requested_port == "0" ? absl::StrCat(HostName(), "-", getpid())
                                      : absl::StrCat(HostName(), ":", requested_port);
  }
  sopts.node_id = o.node_id;
  if (o.bulk_port >= 0) {
    // The bulk channel listens on the gRPC address's host; names and IPv6 wildcards map to
    // their IPv4 equivalents.
    std::string bulk_host = host;
    if (bulk_host == "localhost") bulk_host = "127.0.0.1";
    if (bulk_host.empty() || bulk_host == "[::]" || bulk_host == "::") bulk_host = "0.0.0.0";
    EMS_ASSIGN_OR_RETURN(
        node->bulk_, BulkServer::Start(node->pool_.get(), {.host = bulk_host,
                                                           .port = o.bulk_port,
                                                           .node_id = o.node_id,
                                                           .credential = node->credential_,
                                                           .view = sopts.view,
                                                           .removed_keys = sopts.removed_keys}));
    sopts.bulk_port = node->bulk_->port();
  }
  node->service_ = std::make_unique<DataService>(node->pool_.get(), sopts);

  grpc::ServerBuilder builder;
  ListenExclusively(builder);  // a second node given this port fails, naming it
  builder.AddListeningPort(o.listen, grpc::InsecureServerCredentials(), &node->port_);
  builder.SetMaxReceiveMessageSize(static_cast<int>(o.max_message_bytes));
  builder.SetMaxSendMessageSize(static_cast<int>(o.max_message_bytes));
  builder.RegisterService(node->service_.get());
  node->server_ = builder.BuildAndStart();
  if (node->server_ == nullptr || node->port_ == 0) {
    return absl::UnavailableError(absl::StrCat("cannot listen on --listen ", o.listen));
  }
  spdlog::info("ems-node {}: gRPC on {}:{}", o.node_id, host, node->port_);

  if (!o.local_socket.empty()) {
    EMS_ASSIGN_OR_RETURN(
        node->local_, LocalServer::Start(node->pool_.get(), {.socket_path = o.local_socket,
                                                             .node_id = o.node_id,
                                                             .credential = node->credential_,
                                                             .view = sopts.view,
                                                             .removed_keys = sopts.removed_keys}));
  }
  if (!o.controller.empty()) {
    MembershipAgentOptions aopts;
    aopts.controller = o.controller;
    aopts.cluster = o.cluster;
    aopts.credential = node->credential_;
    v1::NodeInfo& self = aopts.self;
    self.set_id(o.node_id);
    self.set_address(o.advertise.empty() ? absl::StrCat("127.0.0.1:", node->port_) : o.advertise);
    self.set_zone(o.zone);
    self.set_capacity_bytes(node->pool_->arena_bytes());
    self.set_local_socket(o.local_socket);
    self.set_host(HostName());
    if (node->bulk_) self.set_bulk_port(static_cast<uint32_t>(node->bulk_->port()));
    auto view = [raw]() -> std::shared_ptr<const ClusterView> {
      MembershipAgent* agent = raw->agent_raw_.load(std::memory_order_acquire);
      return agent ? agent->view() : nullptr;
    };
    auto drained = [raw]() -> absl::Status {
      MembershipAgent* agent = raw->agent_raw_.load(std::memory_order_acquire);
      if (agent == nullptr) return absl::UnavailableError("no membership agent");
      // Drained: tell the controller this node holds nothing any more.
      return agent->SetState(v1::DOWN);
    };
    node->migrator_ = std::make_unique<Migrator>(
        node->pool_.get(),
        MigratorOptions{
            .node_id = o.node_id, .rate_mbps = o.migration_mbps, .credential = node->credential_},
        view, drained);
    node->agent_ = std::make_unique<MembershipAgent>(
        aopts, [raw](std::shared_ptr<const ClusterView>) { raw->migrator_->Kick(); });
    node->agent_raw_.store(node->agent_.get(), std::memory_order_release);
  }
  if (o.metrics_port >= 0) EMS_RETURN_IF_ERROR(node->StartMetrics());
  return node;
}

absl::Status Node::StartMetrics() {
  http_ = std::make_unique<httplib::Server>();
  ListenExclusively(*http_);  // POST /drain must reach this node, not a second one
  http_->Get("/metrics", [this](const httplib::Request&, httplib::Response& res) {
    res.set_content(MetricsText(), "text/plain; version=0.0.4");
  });
  http_->Get("/healthz", [this](const httplib::Request&, httplib::Response& res) {
    const bool ok = !stop_.HasBeenNotified();
    res.status = ok ? 200 : 503;
    res.set_content(ok ? "ok\n" : "shutting down\n", "text/plain");
  });
  // POST /drain: the DaemonSet's preStop hook asks the node to leave gracefully; its blocks
  // move to their next owners before the controller marks it DOWN.
  http_->Post("/drain", [this](const httplib::Request&, httplib::Response& res) {
    MembershipAgent* agent = agent_raw_.load(std::memory_order_acquire);
    if (agent == nullptr) {
      res.status = 409;
      res.set_content("standalone node: nothing to drain to\n", "text/plain");
      return;
    }
    absl::Status s = agent->SetState(v1::DRAINING);
    res.status = s.ok() ? 202 : 503;
    res.set_content(s.ok() ? "draining\n" : std::string(s.message()) + "\n", "text/plain");
  });
  http_->Get("/drain", [this](const httplib::Request&, httplib::Response& res) {
    MembershipAgent* agent = agent_raw_.load(std::memory_order_acquire);
    auto view = agent ? agent->view() : nullptr;
    const v1::NodeInfo* self = view ? view->Find(options_.node_id) : nullptr;
    res.set_content(absl::StrCat(self ? v1::NodeState_Name(self->state()) : "STANDALONE", " ",
                                 pool_->Stats().keys, " keys\n"),
                    "text/plain");
  });
  if (options_.metrics_port == 0) {
    metrics_port_ = http_->bind_to_any_port(options_.metrics_host);
  } else {
    metrics_port_ = http_->bind_to_port(options_.metrics_host, options_.metrics_port)
                        ? options_.metrics_port
                        : -1;
  }
  if (metrics_port_ <= 0) {
    return absl::UnavailableError(
        absl::StrCat("cannot listen on --metrics_port ", options_.metrics_port));
  }
  auto returned = std::make_shared<std::atomic<bool>>(false);
  http_thread_ = std::thread([this, returned] {
    http_->listen_after_bind();
    returned->store(true, std::memory_order_release);
  });
  // httplib's stop() does nothing until the listen loop runs: a SIGTERM right after start-up
  // (a pod deleted while starting) would leave Shutdown joining a loop that never ends.
  while (!http_->is_running() && !returned->load(std::memory_order_acquire)) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return absl::OkStatus();
}

std::string Node::MetricsText() {
  const pool::PoolStats s = pool_->Stats();
  std::string out;
  auto metric = [&out](const char* name, const char* type, const char* help, double value) {
    absl::StrAppendFormat(&out, "# HELP ems_%s %s\n# TYPE ems_%s %s\nems_%s %.17g\n", name, help,
                          name, type, name, value);
  };
  metric("keys", "gauge", "Sealed blocks held.", s.keys);
  metric("used_bytes", "gauge", "Arena bytes allocated to blocks.", s.used_bytes);
  metric("capacity_bytes", "gauge", "Arena size in bytes.", s.capacity_bytes);
  metric("gets_total", "counter", "Get lookups.", s.gets);
  metric("puts_total", "counter", "Blocks sealed.", s.puts);
  metric("hits_total", "counter", "Gets that found their block.", s.hits);
  metric("misses_total", "counter", "Gets that missed.", s.misses);
  metric("hit_ratio", "gauge", "hits / gets since start.",
         s.gets == 0 ? 0.0 : static_cast<double>(s.hits) / s.gets);
  metric("bytes_in_total", "counter", "Value bytes stored.", s.bytes_in);
  metric("bytes_out_total", "counter", "Value bytes read.", s.bytes_out);
  metric("evictions_total", "counter", "Blocks evicted for space.", s.evictions);
  metric("pinned_blocks", "gauge", "Read pins held.", s.pinned_blocks);
  metric("unsealed_blocks", "gauge", "Writes in progress.", s.unsealed_blocks);
  metric("blank_blocks", "gauge", "Space granted ahead to local writers, no key yet.",
         s.blank_blocks);
  metric("reclaimed_writes_total", "counter", "Unsealed writes freed.", s.reclaimed_writes);
  metric("metadata_bytes", "gauge", "Off-arena metadata bytes (estimate).", s.metadata_bytes);
  metric("hugepages", "gauge", "1 if the arena is on hugetlb pages.", s.hugepages ? 1 : 0);
  if (removed_keys_) {
    metric("removed_keys", "gauge",
           "Keys clients removed lately, whose migration pushes this node refuses.",
           removed_keys_->size());
    metric("removed_keys_dropped_total", "counter",
           "Removes forgotten early for room: a push of their key is no longer refused.",
           removed_keys_->dropped());
  }
  if (bulk_) {
    metric("bulk_connections", "gauge", "Open bulk data channel connections.",
           bulk_->connections());
  }
  return out;
}

void Node::Shutdown(absl::Duration grace) {
  if (shut_down_) return;
  shut_down_ = true;
  if (service_) service_->SetServing(false);
  stop_.Notify();
  if (server_) {
    server_->Shutdown(std::chrono::system_clock::now() +
                      std::chrono::milliseconds(absl::ToInt64Milliseconds(grace)));
  }
  if (http_) {
    http_->stop();
    if (http_thread_.joinable()) http_thread_.join();
  }
  // The agent's thread kicks the migrator on each new map, and the migrator's thread reports
  // a drain through the agent: stop the migrator's thread first (a Kick then only sets a
  // flag), then the agent's, and only then free the migrator. Freeing it first raced with a
  // map arriving during shutdown (found by ThreadSanitizer).
  if (migrator_) migrator_->Stop();
  // The bulk and local servers' threads read the agent's map for every request: stop them
  // before the agent goes (one could load the agent's pointer just before it was cleared).
  local_.reset();
  bulk_.reset();
  // No call is in flight any more, so nothing reads the agent.
  agent_raw_.store(nullptr, std::memory_order_release);
  agent_.reset();
  migrator_.reset();
}

Node::~Node() {
  Shutdown(absl::ZeroDuration());
  server_.reset();
  service_.reset();
  pool_.reset();
}

}  // namespace ems::node
