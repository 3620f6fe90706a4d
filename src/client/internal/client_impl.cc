#include "client/internal/client_impl.h"

#include <unistd.h>

#include <algorithm>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "client/internal/fanout.h"
#include "common/grpc_status.h"
#include "common/logging.h"
#include "spdlog/spdlog.h"

namespace ems::client::internal {
namespace {

std::string HostName() {
  char buf[256] = {};
  gethostname(buf, sizeof(buf) - 1);
  return buf;
}

}  // namespace

ClientImpl::ClientImpl(const ClientOptions& options)
    : options_(options), cluster_(!options.controller.empty()), hostname_(HostName()) {}

ClientImpl::~ClientImpl() {
  stop_.Notify();
  if (refresher_.joinable()) refresher_.join();
}

absl::Status ClientImpl::Init() {
  if (options_.timeout <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError(
        absl::StrCat("ClientOptions.timeout must be positive (InfiniteDuration for none), got ",
                     absl::FormatDuration(options_.timeout)));
  }
  if (!cluster_) {
    if (options_.address.empty()) {
      return absl::InvalidArgumentError("client options name neither an address nor a controller");
    }
    // Health says whether the node answers and where its bulk channel is; the connection
    // (which maps the arena when the node is local) is built once, knowing both.
    absl::StatusOr<int> bulk_port = ProbeBulkPort();
    if (!bulk_port.ok()) return bulk_port.status();
    ConnPtr single = SingleConn(*bulk_port, /*replaces_lost_local=*/false);
    absl::MutexLock lock(&mu_);
    routing_.single = std::move(single);
    return absl::OkStatus();
  }
  membership_ = v1::Membership::NewStub(
      grpc::CreateChannel(options_.controller, grpc::InsecureChannelCredentials()));
  if (absl::Status s = RefreshMap(); !s.ok()) return s;
  refresher_ = std::thread([this] { RefreshLoop(); });
  return absl::OkStatus();
}

ClientImpl::ConnPtr ClientImpl::SingleConn(int bulk_port, bool replaces_lost_local) const {
  return std::make_shared<NodeConnection>(options_.address, options_.address, options_.local_socket,
                                          bulk_port, options_, replaces_lost_local);
}

absl::StatusOr<int> ClientImpl::ProbeBulkPort() const {
  auto probe = v1::DataPlane::NewStub(
      grpc::CreateChannel(options_.address, grpc::InsecureChannelCredentials()));
  grpc::ClientContext ctx;
  NodeConnection::Prepare(&ctx, options_, 0);
  v1::HealthResponse resp;
  grpc::Status s = probe->Health(&ctx, v1::HealthRequest(), &resp);
  if (!s.ok()) {
    return absl::UnavailableError(
        absl::StrCat("ems-node at ", options_.address, " does not answer: ", s.error_message()));
  }
  return static_cast<int>(resp.bulk_port());
}

void ClientImpl::RecheckSingle() {
  ConnPtr old;
  {
    absl::MutexLock lock(&mu_);
    const absl::Time now = absl::Now();
    if (cluster_ || now < single_recheck_) return;
    single_recheck_ = now + absl::Seconds(1);
    old = routing_.single;
  }
  absl::StatusOr<int> bulk_port = ProbeBulkPort();
  if (!bulk_port.ok()) return;  // not back yet
  const bool moved = *bulk_port != old->bulk_port();
  if (!moved && !old->local_lost()) return;
  if (moved) {
    spdlog::info("client: ems-node at {} moved its bulk channel to port {}; reconnecting",
                 options_.address, *bulk_port);
  }
  ConnPtr fresh = SingleConn(*bulk_port, old->local_lost());
  absl::MutexLock lock(&mu_);
  if (routing_.single == old) routing_.single = std::move(fresh);
}

absl::Status ClientImpl::RefreshMap() {
  grpc::ClientContext ctx;
  ctx.set_deadline(absl::ToChronoTime(absl::Now() + options_.timeout));
  v1::GetClusterMapRequest req;
  req.set_cluster(options_.cluster);
  v1::ClusterMap map;
  grpc::Status s = membership_->GetClusterMap(&ctx, req, &map);
  if (!s.ok()) {
    return absl::UnavailableError(absl::StrCat("controller ", options_.controller,
                                               ": cluster map of ", options_.cluster, ": ",
                                               s.error_message()));
  }
  {
    absl::MutexLock lock(&mu_);
    if (routing_.view != nullptr && map.epoch() <= routing_.epoch) return absl::OkStatus();
  }
  auto view = ClusterView::Build(map);
  if (!view.ok()) return view.status();
  std::vector<ConnPtr> dropped;  // destroyed after the lock: they join threads and unmap arenas
  absl::MutexLock lock(&mu_);
  if (routing_.view == nullptr || map.epoch() > routing_.epoch) {
    routing_ = Routing{*view, map.epoch()};
    counters_.map_refreshes.fetch_add(1, std::memory_order_relaxed);
    // Connections to nodes that left the map or are DOWN: calls in flight hold their own
    // references; the client's goes, with the arena mapping, mirror thread and sockets.
    absl::flat_hash_set<std::string> live;
    for (const v1::NodeInfo& n : map.nodes()) {
      if (n.state() != v1::DOWN) live.insert(n.id());
    }
    for (auto it = conns_.begin(); it != conns_.end();) {
      if (live.contains(it->first)) {
        ++it;
        continue;
      }
      dropped.push_back(std::move(it->second));
      conns_.erase(it++);
    }
  }
  return absl::OkStatus();
}

void ClientImpl::RefreshLoop() {
  while (!stop_.WaitForNotificationWithTimeout(options_.map_refresh)) {
    // A failure keeps the last map: the data plane works without the controller.
    if (absl::Status s = RefreshMap(); !s.ok()) spdlog::debug("client: {}", s.ToString());
  }
}

ClientImpl::Routing ClientImpl::Current() const {
  absl::MutexLock lock(&mu_);
  return routing_;
}

ClientImpl::Routing ClientImpl::Route() {
  Routing r = Current();
  if (r.single != nullptr && r.single->local_lost()) {
    RecheckSingle();
    r = Current();
  }
  return r;
}

uint64_t ClientImpl::epoch() const { return Current().epoch; }

ClientCounters ClientImpl::counters() const {
  return ClientCounters{counters_.get_timeouts.load(std::memory_order_relaxed),
                        counters_.put_drops.load(std::memory_order_relaxed),
                        counters_.map_refreshes.load(std::memory_order_relaxed),
                        counters_.retries.load(std::memory_order_relaxed),
                        counters_.lookups_without_round_trip.load(std::memory_order_relaxed)};
}

ClientImpl::ConnPtr ClientImpl::ReusableConn(const v1::NodeInfo& node, bool* lost_local) {
  auto it = conns_.find(node.id());
  if (it == conns_.end() || it->second->address() != node.address() ||
      it->second->bulk_port() != static_cast<int>(node.bulk_port())) {
    return nullptr;
  }
  // A connection whose local path is lost is rebuilt, at most once a second; until then its
  // calls go over the network.
  *lost_local = it->second->local_lost();
  if (!*lost_local || absl::Now() < it->second->created() + absl::Seconds(1)) return it->second;
  return nullptr;
}

ClientImpl::ConnPtr ClientImpl::Conn(const v1::NodeInfo& node) {
  bool lost_local = false;
  {
    absl::MutexLock lock(&mu_);
    while (true) {
      if (ConnPtr c = ReusableConn(node, &lost_local)) return c;
      if (!connecting_.contains(node.id())) break;
      // Another call is connecting to this node: wait for its connection, not build a second
      // (each maps the node's arena and starts its threads).
      auto done = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
        return !connecting_.contains(node.id());
      };
      mu_.Await(absl::Condition(&done));
    }
    connecting_.insert(node.id());
  }
  // Built without the lock: connecting to a node on this host waits for its hello and maps
  // its arena, and a stalled node makes that wait the whole timeout. Under mu_, every other
  // call of this client, to any node, waited with it.
  const bool same_host = !node.host().empty() && node.host() == hostname_;
  auto conn = std::make_shared<NodeConnection>(
      node.id(), node.address(), same_host ? node.local_socket() : "",
      static_cast<int>(node.bulk_port()), options_, lost_local);
  absl::MutexLock lock(&mu_);
  connecting_.erase(node.id());
  conns_[node.id()] = conn;
  return conn;
}

std::vector<ClientImpl::ConnPtr> ClientImpl::Candidates(const Routing& r, const BlockKey& key,
                                                        bool write) {
  if (r.view == nullptr) return {r.single};
  std::vector<ConnPtr> out;
  for (const v1::NodeInfo* n : write ? r.view->WriteOwners(key) : r.view->ReadOwners(key)) {
    out.push_back(Conn(*n));
  }
  return out;
}

absl::StatusOr<v1::StatsResponse> ClientImpl::Stats() {
  using Call = RemoteCall<v1::StatsRequest, v1::StatsResponse>;
  std::vector<std::unique_ptr<Call>> calls;
  Routing r = Current();
  auto add = [&](ConnPtr conn) {
    auto call = std::make_unique<Call>();
    call->conn = std::move(conn);
    call->conn->Prepare(&call->ctx, 0);
    calls.push_back(std::move(call));
  };
  if (r.view == nullptr) {
    add(r.single);
  } else {
    for (const v1::NodeInfo& n : r.view->map().nodes()) {
      if (n.state() != v1::DOWN) add(Conn(n));
    }
  }
  if (calls.empty()) return absl::UnavailableError("stats: no node of the cluster is up");
  // All at once: asked one after the other, stalled nodes cost a timeout each.
  RunParallel(calls, [](Call& c, std::function<void(grpc::Status)> done) {
    c.conn->stub()->async()->Stats(&c.ctx, &c.req, &c.resp, std::move(done));
  });
  v1::StatsResponse total;
  uint64_t gets = 0, hits = 0;
  size_t reached = 0;
  absl::Status unreachable;  // the first node that could not be asked
  for (auto& c : calls) {
    if (!c->status.ok()) {
      absl::Status st(
          FromGrpcStatus(c->status).code(),
          absl::StrCat("stats of ", c->conn->address(), ": ", c->status.error_message()));
      // In a cluster a node that cannot be reached is left out of the sums, unless none can
      // be: then there is nothing to report, not a pool of zeros.
      if (!cluster_ || !IsTransport(c->status.error_code())) return st;
      if (unreachable.ok()) unreachable = std::move(st);
      continue;
    }
    const v1::StatsResponse& s = c->resp;
    if (calls.size() == 1) return s;
    ++reached;
    total.set_keys(total.keys() + s.keys());
    total.set_used_bytes(total.used_bytes() + s.used_bytes());
    total.set_capacity_bytes(total.capacity_bytes() + s.capacity_bytes());
    total.set_get_count(total.get_count() + s.get_count());
    total.set_put_count(total.put_count() + s.put_count());
    total.set_hit_count(total.hit_count() + s.hit_count());
    total.set_miss_count(total.miss_count() + s.miss_count());
    total.set_bytes_in(total.bytes_in() + s.bytes_in());
    total.set_bytes_out(total.bytes_out() + s.bytes_out());
    total.set_evictions(total.evictions() + s.evictions());
    total.set_pinned_blocks(total.pinned_blocks() + s.pinned_blocks());
    total.set_unsealed_blocks(total.unsealed_blocks() + s.unsealed_blocks());
    total.set_reclaimed_writes(total.reclaimed_writes() + s.reclaimed_writes());
    total.set_metadata_bytes(total.metadata_bytes() + s.metadata_bytes());
    total.set_eviction_policy(s.eviction_policy());
    gets += s.get_count();
    hits += s.hit_count();
  }
  if (reached == 0 && !unreachable.ok()) return unreachable;
  total.set_hit_ratio(gets == 0 ? 0.0 : static_cast<double>(hits) / gets);
  return total;
}

}  // namespace ems::client::internal

namespace ems {

absl::StatusOr<std::unique_ptr<Client>> Client::Connect(const ClientOptions& options) {
  LogToStderrUnlessSetUp();  // our lines are not the host program's output
  auto client = std::make_unique<client::internal::ClientImpl>(options);
  if (absl::Status s = client->Init(); !s.ok()) return s;
  return std::unique_ptr<Client>(std::move(client));
}

}  // namespace ems
