#include "client/internal/client_impl.h"

#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <optional>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/blocking_counter.h"
#include "common/grpc_status.h"
#include "common/prefix_hash.h"
#include "spdlog/spdlog.h"

namespace ems::client::internal {
namespace {

// A remote call in flight: one per node per round.
template <typename Req, typename Resp>
struct RemoteCall {
  std::shared_ptr<NodeConnection> conn;
  std::vector<size_t> items;
  grpc::ClientContext ctx;
  Req req;
  Resp resp;
  grpc::Status status;
};

// Starts every call with `start(call, done)`; the counter reaches zero when all are done.
template <typename Call, typename Start>
std::unique_ptr<absl::BlockingCounter> StartParallel(std::vector<std::unique_ptr<Call>>& calls,
                                                     Start start) {
  if (calls.empty()) return nullptr;
  auto pending = std::make_unique<absl::BlockingCounter>(static_cast<int>(calls.size()));
  for (auto& c : calls) {
    Call* raw = c.get();
    start(*raw, [p = pending.get(), raw](grpc::Status s) {
      raw->status = std::move(s);
      p->DecrementCount();
    });
  }
  return pending;
}

template <typename Call, typename Start>
void RunParallel(std::vector<std::unique_ptr<Call>>& calls, Start start) {
  if (auto in_flight = StartParallel(calls, start)) in_flight->Wait();
}

// A request over a node's bulk channel: one per node per round.
struct BulkGroup {
  std::shared_ptr<NodeConnection> conn;
  std::vector<size_t> items;
  std::unique_ptr<client::BulkCall> call;
};

// Sends every request, then reads every answer: the nodes work in parallel without threads.
void RunBulk(std::vector<BulkGroup>& groups) {
  for (BulkGroup& g : groups) g.call->Send();
  for (BulkGroup& g : groups) g.call->Finish();
}

void ToProto(const BlockKey& key, v1::Key* out) {
  out->set_ns(key.ns);
  out->set_digest(key.digest.bytes.data(), key.digest.bytes.size());
}

bool IsTransport(grpc::StatusCode c) {
  return c == grpc::StatusCode::UNAVAILABLE || c == grpc::StatusCode::DEADLINE_EXCEEDED ||
         c == grpc::StatusCode::CANCELLED;
}

bool IsTransport(const absl::Status& s) {
  return absl::IsUnavailable(s) || absl::IsDeadlineExceeded(s) || absl::IsCancelled(s);
}

std::string HostName() {
  char buf[256] = {};
  gethostname(buf, sizeof(buf) - 1);
  return buf;
}

// Groups item indices by node, keeping each group in item order.
template <typename Pick>
std::vector<std::pair<std::shared_ptr<NodeConnection>, std::vector<size_t>>> GroupBy(
    const std::vector<size_t>& idx, Pick pick) {
  std::vector<std::pair<std::shared_ptr<NodeConnection>, std::vector<size_t>>> groups;
  absl::flat_hash_map<NodeConnection*, size_t> where;
  for (size_t i : idx) {
    std::shared_ptr<NodeConnection> c = pick(i);
    if (c == nullptr) continue;
    auto [it, fresh] = where.try_emplace(c.get(), groups.size());
    if (fresh) groups.emplace_back(std::move(c), std::vector<size_t>{});
    groups[it->second].second.push_back(i);
  }
  return groups;
}

}  // namespace

ClientImpl::ClientImpl(const ClientOptions& options)
    : options_(options), cluster_(!options.controller.empty()), hostname_(HostName()) {}

ClientImpl::~ClientImpl() {
  stop_.Notify();
  if (refresher_.joinable()) refresher_.join();
}

absl::Status ClientImpl::Init() {
  if (!cluster_) {
    if (options_.address.empty()) {
      return absl::InvalidArgumentError("client options name neither an address nor a controller");
    }
    // Health says whether the node answers and where its bulk channel is; the connection
    // (which maps the arena when the node is local) is built once, knowing both.
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
    single_ =
        std::make_shared<NodeConnection>(options_.address, options_.address, options_.local_socket,
                                         static_cast<int>(resp.bulk_port()), options_);
    return absl::OkStatus();
  }
  membership_ = v1::Membership::NewStub(
      grpc::CreateChannel(options_.controller, grpc::InsecureChannelCredentials()));
  if (absl::Status s = RefreshMap(); !s.ok()) return s;
  refresher_ = std::thread([this] { RefreshLoop(); });
  return absl::OkStatus();
}

absl::Status ClientImpl::RefreshMap() {
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() +
                   std::chrono::microseconds(absl::ToInt64Microseconds(options_.timeout)));
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
  absl::MutexLock lock(&mu_);
  if (routing_.view == nullptr || map.epoch() > routing_.epoch) {
    routing_ = Routing{*view, map.epoch()};
    counters_.map_refreshes.fetch_add(1, std::memory_order_relaxed);
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

uint64_t ClientImpl::epoch() const { return Current().epoch; }

ClientCounters ClientImpl::counters() const {
  return ClientCounters{counters_.get_timeouts.load(std::memory_order_relaxed),
                        counters_.put_drops.load(std::memory_order_relaxed),
                        counters_.map_refreshes.load(std::memory_order_relaxed),
                        counters_.retries.load(std::memory_order_relaxed),
                        counters_.lookups_without_round_trip.load(std::memory_order_relaxed)};
}

ClientImpl::ConnPtr ClientImpl::Conn(const v1::NodeInfo& node) {
  absl::MutexLock lock(&mu_);
  auto it = conns_.find(node.id());
  if (it != conns_.end() && it->second->address() == node.address() &&
      it->second->bulk_port() == static_cast<int>(node.bulk_port())) {
    return it->second;
  }
  const bool same_host = !node.host().empty() && node.host() == hostname_;
  auto conn = std::make_shared<NodeConnection>(node.id(), node.address(),
                                               same_host ? node.local_socket() : "",
                                               static_cast<int>(node.bulk_port()), options_);
  conns_[node.id()] = conn;
  return conn;
}

std::vector<ClientImpl::ConnPtr> ClientImpl::Candidates(const Routing& r, const BlockKey& key,
                                                        bool write) {
  if (r.view == nullptr) return {single_};
  std::vector<ConnPtr> out;
  for (const v1::NodeInfo* n : write ? r.view->WriteOwners(key) : r.view->ReadOwners(key)) {
    out.push_back(Conn(*n));
  }
  return out;
}

// --- Get -------------------------------------------------------------------------------------

void ClientImpl::GetLocal(LocalChannel* local, absl::Span<const GetItem> items,
                          const std::vector<size_t>& idx,
                          std::vector<absl::StatusOr<size_t>>& results,
                          std::vector<Outcome>& outcomes) {
  {
    std::vector<BlockKey> keys;
    std::vector<absl::Span<uint8_t>> bufs;
    for (size_t i : idx) {
      keys.push_back(items[i].key);
      bufs.push_back(items[i].buffer);
    }
    auto got = local->BatchGet(keys, bufs);
    for (size_t j = 0; j < idx.size(); ++j) {
      results[idx[j]] = got[j];
      outcomes[idx[j]] = got[j].ok()                         ? Outcome::kDone
                         : absl::IsNotFound(got[j].status()) ? Outcome::kMiss
                         : IsTransport(got[j].status())      ? Outcome::kTransport
                                                             : Outcome::kDone;
    }
    return;
  }
}

std::vector<absl::StatusOr<size_t>> ClientImpl::BatchGet(absl::Span<const GetItem> items) {
  const size_t n = items.size();
  std::vector<absl::StatusOr<size_t>> results(n, absl::NotFoundError("not found"));
  std::vector<Outcome> outcomes(n, Outcome::kMiss);
  std::vector<std::vector<ConnPtr>> candidates(n);
  std::vector<size_t> attempt(n, 0);
  Routing r = Current();
  for (size_t i = 0; i < n; ++i) candidates[i] = Candidates(r, items[i].key, false);
  std::vector<size_t> pending(n);
  for (size_t i = 0; i < n; ++i) pending[i] = i;
  bool refreshed = false;

  while (!pending.empty()) {
    auto groups = GroupBy(pending, [&](size_t i) -> ConnPtr {
      return attempt[i] < candidates[i].size() ? candidates[i][attempt[i]] : nullptr;
    });
    if (groups.empty()) break;
    using Call = RemoteCall<v1::BatchGetRequest, v1::BatchGetResponse>;
    std::vector<std::unique_ptr<Call>> calls;
    std::vector<BulkGroup> bulk;
    for (auto& [conn, idx] : groups) {
      if (conn->local() != nullptr) {
        GetLocal(conn->local(), items, idx, results, outcomes);
        continue;
      }
      if (BulkChannel* channel = conn->bulk()) {
        auto call = std::make_unique<BulkCall>(channel, bulk::Op::kGet, r.epoch);
        for (size_t i : idx) call->AddGet(&items[i].key, items[i].buffer);
        bulk.push_back({conn, idx, std::move(call)});
        continue;
      }
      auto call = std::make_unique<Call>();
      call->conn = conn;
      call->items = idx;
      conn->Prepare(&call->ctx, r.epoch);
      for (size_t i : idx) ToProto(items[i].key, call->req.add_keys());
      calls.push_back(std::move(call));
    }
    auto in_flight = StartParallel(calls, [](Call& c, std::function<void(grpc::Status)> done) {
      c.conn->stub()->async()->BatchGet(&c.ctx, &c.req, &c.resp, std::move(done));
    });
    RunBulk(bulk);
    if (in_flight) in_flight->Wait();
    for (BulkGroup& g : bulk) {
      const absl::Status& status = g.call->status();
      const bool stale = absl::IsFailedPrecondition(status) && g.call->node_epoch() > r.epoch;
      for (size_t j = 0; j < g.items.size(); ++j) {
        const size_t i = g.items[j];
        if (stale) {
          outcomes[i] = Outcome::kStale;
        } else if (!status.ok()) {
          outcomes[i] = IsTransport(status) ? Outcome::kTransport : Outcome::kDone;
          results[i] = status;
        } else if (absl::IsNotFound(g.call->results()[j].status())) {
          outcomes[i] = Outcome::kMiss;
        } else {
          outcomes[i] = Outcome::kDone;
          results[i] = g.call->results()[j];
        }
      }
    }
    for (auto& c : calls) {
      const bool stale = c->status.error_code() == grpc::StatusCode::FAILED_PRECONDITION &&
                         EpochFromTrailer(c->ctx) > r.epoch;
      for (size_t j = 0; j < c->items.size(); ++j) {
        const size_t i = c->items[j];
        if (stale) {
          outcomes[i] = Outcome::kStale;
        } else if (!c->status.ok()) {
          outcomes[i] = IsTransport(c->status.error_code()) ? Outcome::kTransport : Outcome::kDone;
          results[i] = absl::Status(
              FromGrpcStatus(c->status).code(),
              absl::StrCat("get from ", c->conn->address(), ": ", c->status.error_message()));
        } else if (j >= static_cast<size_t>(c->resp.items_size()) ||
                   !c->resp.items(static_cast<int>(j)).found()) {
          outcomes[i] = Outcome::kMiss;
        } else {
          const v1::GetResponse& g = c->resp.items(static_cast<int>(j));
          outcomes[i] = Outcome::kDone;
          const std::string& v = g.value();
          if (v.size() > items[i].buffer.size()) {
            results[i] = absl::OutOfRangeError(
                absl::StrCat("block ", items[i].key.ToString(), " is ", v.size(),
                             " bytes; the buffer holds ", items[i].buffer.size()));
          } else if (options_.verify_checksums && Checksum(v.data(), v.size()) != g.checksum()) {
            results[i] =
                absl::DataLossError(absl::StrCat("block ", items[i].key.ToString(), " from ",
                                                 c->conn->address(), " failed its checksum"));
          } else {
            std::memcpy(items[i].buffer.data(), v.data(), v.size());
            results[i] = v.size();
          }
        }
      }
    }
    // Decide what goes to another round: misses and transport failures try the next
    // candidate; a stale map is refreshed once and the items re-routed.
    std::vector<size_t> next;
    bool any_stale = false;
    for (size_t i : pending) {
      switch (outcomes[i]) {
        case Outcome::kDone:
          break;
        case Outcome::kStale:
          any_stale = true;
          next.push_back(i);
          break;
        case Outcome::kTransport:
          if (cluster_) counters_.get_timeouts.fetch_add(1, std::memory_order_relaxed);
          [[fallthrough]];
        case Outcome::kMiss:
          if (++attempt[i] < candidates[i].size()) next.push_back(i);
          break;
      }
    }
    if (any_stale) {
      if (refreshed || !RefreshMap().ok()) break;
      refreshed = true;
      counters_.retries.fetch_add(1, std::memory_order_relaxed);
      r = Current();
      for (size_t i : next) {
        if (outcomes[i] != Outcome::kStale) continue;
        candidates[i] = Candidates(r, items[i].key, false);
        attempt[i] = 0;
      }
    }
    pending = std::move(next);
  }
  for (size_t i = 0; i < n; ++i) {
    const bool transport_in_cluster = cluster_ && outcomes[i] == Outcome::kTransport;
    if (outcomes[i] == Outcome::kMiss || outcomes[i] == Outcome::kStale || transport_in_cluster) {
      // A cache answers a miss when no node could give the block (issue: never an error).
      results[i] = absl::NotFoundError(absl::StrCat("key ", items[i].key.ToString(), " not found"));
    }
  }
  return results;
}

absl::StatusOr<size_t> ClientImpl::Get(const BlockKey& key, absl::Span<uint8_t> out) {
  GetItem item{key, out};
  return BatchGet(absl::MakeConstSpan(&item, 1))[0];
}

// --- Put -------------------------------------------------------------------------------------

std::vector<absl::Status> ClientImpl::BatchPut(absl::Span<const PutItem> items) {
  const size_t n = items.size();
  // Per item: the first non-transport error, whether any owner stored it, whether any owner
  // failed in transport.
  std::vector<absl::Status> error(n);
  std::vector<bool> stored(n, false), transport(n, false), stale(n, false);
  std::vector<uint64_t> sums(n, 0);
  if (options_.verify_checksums) {
    for (size_t i = 0; i < n; ++i) sums[i] = Checksum(items[i].value.data(), items[i].value.size());
  }
  Routing r = Current();
  std::vector<size_t> pending(n);
  for (size_t i = 0; i < n; ++i) pending[i] = i;

  for (int round = 0; round < 2 && !pending.empty(); ++round) {
    // An item goes to each of its owners: one (conn, items) group per node.
    absl::flat_hash_map<NodeConnection*, size_t> where;
    std::vector<std::pair<ConnPtr, std::vector<size_t>>> groups;
    for (size_t i : pending) {
      for (ConnPtr& c : Candidates(r, items[i].key, true)) {
        auto [it, fresh] = where.try_emplace(c.get(), groups.size());
        if (fresh) groups.emplace_back(c, std::vector<size_t>{});
        groups[it->second].second.push_back(i);
      }
    }
    using Call = RemoteCall<v1::BatchPutRequest, v1::BatchPutResponse>;
    std::vector<std::unique_ptr<Call>> calls;
    std::vector<BulkGroup> bulk;
    for (auto& [conn, idx] : groups) {
      if (conn->local() == nullptr && conn->bulk() != nullptr) {
        auto call = std::make_unique<BulkCall>(conn->bulk(), bulk::Op::kPut, r.epoch);
        for (size_t i : idx) call->AddPut(&items[i].key, items[i].value, sums[i], items[i].parent);
        bulk.push_back({conn, idx, std::move(call)});
        continue;
      }
      if (LocalChannel* local = conn->local()) {
        std::vector<client::LocalPutItem> local_items;
        for (size_t i : idx) local_items.push_back({items[i].key, items[i].value, items[i].parent});
        auto st = local->BatchPut(local_items);
        for (size_t j = 0; j < idx.size(); ++j) {
          const size_t i = idx[j];
          if (st[j].ok()) {
            stored[i] = true;
          } else if (IsTransport(st[j])) {
            transport[i] = true;
          } else if (error[i].ok()) {
            error[i] = st[j];
          }
        }
        continue;
      }
      auto call = std::make_unique<Call>();
      call->conn = conn;
      call->items = idx;
      conn->Prepare(&call->ctx, r.epoch);
      for (size_t i : idx) {
        v1::PutRequest* p = call->req.add_items();
        ToProto(items[i].key, p->mutable_key());
        p->set_value(items[i].value.data(), items[i].value.size());
        p->set_checksum(sums[i]);
        if (items[i].parent != nullptr) ToProto(*items[i].parent, p->mutable_parent());
      }
      calls.push_back(std::move(call));
    }
    auto in_flight = StartParallel(calls, [](Call& c, std::function<void(grpc::Status)> done) {
      c.conn->stub()->async()->BatchPut(&c.ctx, &c.req, &c.resp, std::move(done));
    });
    RunBulk(bulk);
    if (in_flight) in_flight->Wait();
    bool any_stale = false;
    for (BulkGroup& g : bulk) {
      const absl::Status& status = g.call->status();
      const bool is_stale = absl::IsFailedPrecondition(status) && g.call->node_epoch() > r.epoch;
      for (size_t j = 0; j < g.items.size(); ++j) {
        const size_t i = g.items[j];
        const absl::Status item = status.ok() ? g.call->results()[j].status() : status;
        if (is_stale) {
          stale[i] = any_stale = true;
        } else if (item.ok()) {
          stored[i] = true;
          if (KeyMirror* mirror = g.conn->mirror()) mirror->NoteStored(items[i].key);
        } else if (IsTransport(item)) {
          transport[i] = true;
        } else if (error[i].ok()) {
          error[i] = item;
        }
      }
    }
    for (auto& c : calls) {
      const bool is_stale = c->status.error_code() == grpc::StatusCode::FAILED_PRECONDITION &&
                            EpochFromTrailer(c->ctx) > r.epoch;
      for (size_t j = 0; j < c->items.size(); ++j) {
        const size_t i = c->items[j];
        if (is_stale) {
          stale[i] = any_stale = true;
        } else if (!c->status.ok()) {
          if (IsTransport(c->status.error_code())) {
            transport[i] = true;
          } else if (error[i].ok()) {
            error[i] = absl::Status(
                FromGrpcStatus(c->status).code(),
                absl::StrCat("put to ", c->conn->address(), ": ", c->status.error_message()));
          }
        } else if (j < static_cast<size_t>(c->resp.statuses_size())) {
          const v1::ItemStatus& st = c->resp.statuses(static_cast<int>(j));
          if (st.code() == 0) {
            stored[i] = true;
          } else if (error[i].ok()) {
            error[i] = absl::Status(static_cast<absl::StatusCode>(st.code()), st.message());
          }
        }
      }
    }
    pending.clear();
    if (any_stale && round == 0 && RefreshMap().ok()) {
      counters_.retries.fetch_add(1, std::memory_order_relaxed);
      r = Current();
      for (size_t i = 0; i < n; ++i) {
        if (stale[i]) {
          stale[i] = false;
          pending.push_back(i);
        }
      }
    }
  }
  std::vector<absl::Status> out(n);
  for (size_t i = 0; i < n; ++i) {
    if (!error[i].ok()) {
      out[i] = error[i];
    } else if (!stored[i] && (transport[i] || stale[i])) {
      if (cluster_) {
        counters_.put_drops.fetch_add(1, std::memory_order_relaxed);  // a cache may drop
      } else {
        out[i] = absl::UnavailableError(absl::StrCat("put of ", items[i].key.ToString(), " to ",
                                                     options_.address, " failed in transport"));
      }
    } else if (!stored[i] && cluster_ && r.view != nullptr &&
               r.view->WriteOwners(items[i].key).empty()) {
      counters_.put_drops.fetch_add(1, std::memory_order_relaxed);  // no node is UP
    }
  }
  return out;
}

absl::Status ClientImpl::Put(const BlockKey& key, absl::Span<const uint8_t> value,
                             const BlockKey* parent) {
  PutItem item{key, value, parent};
  return BatchPut(absl::MakeConstSpan(&item, 1))[0];
}

// --- Lookups ---------------------------------------------------------------------------------

namespace {
// What a node's directory or mirror says of `key`; nullopt if the node must be asked.
std::optional<bool> PresentWithoutRoundTrip(NodeConnection* conn, const BlockKey& key) {
  if (LocalChannel* local = conn->local()) return local->Contains(key);
  if (KeyMirror* mirror = conn->mirror()) return mirror->Contains(key);
  return std::nullopt;
}
}  // namespace

size_t ClientImpl::MatchWithoutRoundTrips(const Routing& r, absl::Span<const BlockKey> keys,
                                          bool* done) {
  *done = false;
  // Owners resolved once per node, not per key: a prompt has a few owners and many keys.
  std::vector<std::pair<const v1::NodeInfo*, NodeConnection*>> seen;
  for (size_t i = 0; i < keys.size(); ++i) {
    NodeConnection* conn = nullptr;
    if (r.view == nullptr) {
      conn = single_.get();
    } else {
      const v1::NodeInfo* node = r.view->PrimaryOwner(keys[i]);
      if (node == nullptr) return i;
      auto it = std::find_if(seen.begin(), seen.end(), [&](auto& s) { return s.first == node; });
      if (it == seen.end()) it = seen.insert(seen.end(), {node, Conn(*node).get()});
      conn = it->second;
    }
    const std::optional<bool> present = PresentWithoutRoundTrip(conn, keys[i]);
    if (!present.has_value()) return i;  // this owner must be asked: the rest goes to them
    if (!*present) {
      *done = true;  // the first miss ends the prefix
      return i;
    }
  }
  *done = true;
  return keys.size();
}

absl::StatusOr<size_t> ClientImpl::MatchPrefix(absl::Span<const BlockKey> all_keys) {
  for (int attempt = 0; attempt < 2; ++attempt) {
    Routing r = Current();
    // Owners on this host answer from their block directories, and mirrored ones from their
    // key mirrors, in prompt order and with no round trip, as far as they can; only the rest
    // of the prompt goes out to its owners.
    bool done;
    const size_t local_prefix = MatchWithoutRoundTrips(r, all_keys, &done);
    if (done) {
      counters_.lookups_without_round_trip.fetch_add(1, std::memory_order_relaxed);
      return local_prefix;
    }
    const absl::Span<const BlockKey> keys = all_keys.subspan(local_prefix);
    std::vector<size_t> all(keys.size());
    for (size_t i = 0; i < keys.size(); ++i) all[i] = i;
    auto groups = GroupBy(all, [&](size_t i) -> ConnPtr {
      auto c = Candidates(r, keys[i], false);
      return c.empty() ? nullptr : c[0];
    });
    // The answer is the first key, in prompt order, that its owner does not hold.
    size_t first_miss = keys.size();
    if (r.view != nullptr && groups.size() < 1 && !keys.empty()) first_miss = 0;  // no node UP
    using Call = RemoteCall<v1::MatchPrefixRequest, v1::MatchPrefixResponse>;
    std::vector<std::unique_ptr<Call>> calls;
    std::vector<BulkGroup> bulk;
    absl::Status error;
    for (auto& [conn, idx] : groups) {
      if (conn->local() == nullptr && conn->bulk() != nullptr) {
        auto call = std::make_unique<BulkCall>(conn->bulk(), bulk::Op::kMatchPrefix, r.epoch);
        for (size_t i : idx) call->AddKey(&keys[i]);
        bulk.push_back({conn, idx, std::move(call)});
        continue;
      }
      if (LocalChannel* local = conn->local()) {
        std::vector<BlockKey> sub;
        for (size_t i : idx) sub.push_back(keys[i]);
        auto m = local->MatchPrefix(sub);
        if (!m.ok()) {
          if (!IsTransport(m.status())) error = m.status();
          first_miss = std::min(first_miss, idx[0]);
        } else if (*m < idx.size()) {
          first_miss = std::min(first_miss, idx[*m]);
        }
        continue;
      }
      auto call = std::make_unique<Call>();
      call->conn = conn;
      call->items = idx;
      conn->Prepare(&call->ctx, r.epoch);
      for (size_t i : idx) ToProto(keys[i], call->req.add_keys());
      calls.push_back(std::move(call));
    }
    auto in_flight = StartParallel(calls, [](Call& c, std::function<void(grpc::Status)> done) {
      c.conn->stub()->async()->MatchPrefix(&c.ctx, &c.req, &c.resp, std::move(done));
    });
    RunBulk(bulk);
    if (in_flight) in_flight->Wait();
    bool stale = false;
    for (BulkGroup& g : bulk) {
      const absl::Status& status = g.call->status();
      if (status.ok()) {
        if (g.call->matched() < g.items.size()) {
          first_miss = std::min(first_miss, g.items[g.call->matched()]);
        }
        continue;
      }
      if (absl::IsFailedPrecondition(status) && g.call->node_epoch() > r.epoch) {
        stale = true;
      } else if (!IsTransport(status) || !cluster_) {
        error = absl::Status(status.code(), absl::StrCat("match prefix at ", g.conn->address(),
                                                         ": ", status.message()));
      } else {
        counters_.get_timeouts.fetch_add(1, std::memory_order_relaxed);
      }
      first_miss = std::min(first_miss, g.items[0]);
    }
    for (auto& c : calls) {
      if (c->status.ok()) {
        if (c->resp.matched() < c->items.size()) {
          first_miss = std::min(first_miss, c->items[c->resp.matched()]);
        }
        continue;
      }
      if (c->status.error_code() == grpc::StatusCode::FAILED_PRECONDITION &&
          EpochFromTrailer(c->ctx) > r.epoch) {
        stale = true;
      } else if (!IsTransport(c->status.error_code()) || !cluster_) {
        error = absl::Status(
            FromGrpcStatus(c->status).code(),
            absl::StrCat("match prefix at ", c->conn->address(), ": ", c->status.error_message()));
      } else {
        counters_.get_timeouts.fetch_add(1, std::memory_order_relaxed);
      }
      first_miss = std::min(first_miss, c->items[0]);
    }
    if (!error.ok()) return error;
    if (!stale || attempt == 1 || !RefreshMap().ok()) return local_prefix + first_miss;
    counters_.retries.fetch_add(1, std::memory_order_relaxed);
  }
  return absl::InternalError("unreachable");
}

absl::StatusOr<std::vector<bool>> ClientImpl::Exists(absl::Span<const BlockKey> keys) {
  Routing r = Current();
  std::vector<bool> present(keys.size(), false);
  std::vector<size_t> all(keys.size());
  for (size_t i = 0; i < keys.size(); ++i) all[i] = i;
  auto groups = GroupBy(all, [&](size_t i) -> ConnPtr {
    auto c = Candidates(r, keys[i], false);
    return c.empty() ? nullptr : c[0];
  });
  using Call = RemoteCall<v1::ExistsRequest, v1::ExistsResponse>;
  std::vector<std::unique_ptr<Call>> calls;
  for (auto& [conn, idx] : groups) {
    auto call = std::make_unique<Call>();
    call->conn = conn;
    call->items = idx;
    conn->Prepare(&call->ctx, 0);  // existence is advisory: no ownership check
    for (size_t i : idx) ToProto(keys[i], call->req.add_keys());
    calls.push_back(std::move(call));
  }
  RunParallel(calls, [](Call& c, std::function<void(grpc::Status)> done) {
    c.conn->stub()->async()->Exists(&c.ctx, &c.req, &c.resp, std::move(done));
  });
  for (auto& c : calls) {
    if (!c->status.ok()) {
      if (cluster_ && IsTransport(c->status.error_code())) continue;  // absent as far as we know
      return absl::Status(
          FromGrpcStatus(c->status).code(),
          absl::StrCat("exists at ", c->conn->address(), ": ", c->status.error_message()));
    }
    for (size_t j = 0; j < c->items.size() && j < static_cast<size_t>(c->resp.present_size());
         ++j) {
      present[c->items[j]] = c->resp.present(static_cast<int>(j));
    }
  }
  return present;
}

absl::StatusOr<size_t> ClientImpl::Remove(absl::Span<const BlockKey> keys) {
  Routing r = Current();
  absl::flat_hash_map<NodeConnection*, size_t> where;
  std::vector<std::pair<ConnPtr, std::vector<size_t>>> groups;
  for (size_t i = 0; i < keys.size(); ++i) {
    for (ConnPtr& c : Candidates(r, keys[i], false)) {  // every node that may hold it
      auto [it, fresh] = where.try_emplace(c.get(), groups.size());
      if (fresh) groups.emplace_back(c, std::vector<size_t>{});
      groups[it->second].second.push_back(i);
    }
  }
  using Call = RemoteCall<v1::RemoveRequest, v1::RemoveResponse>;
  std::vector<std::unique_ptr<Call>> calls;
  for (auto& [conn, idx] : groups) {
    auto call = std::make_unique<Call>();
    call->conn = conn;
    call->items = idx;
    conn->Prepare(&call->ctx, 0);
    for (size_t i : idx) ToProto(keys[i], call->req.add_keys());
    calls.push_back(std::move(call));
  }
  RunParallel(calls, [](Call& c, std::function<void(grpc::Status)> done) {
    c.conn->stub()->async()->Remove(&c.ctx, &c.req, &c.resp, std::move(done));
  });
  size_t removed = 0;
  for (auto& c : calls) {
    if (!c->status.ok()) {
      return absl::Status(
          FromGrpcStatus(c->status).code(),
          absl::StrCat("remove at ", c->conn->address(), ": ", c->status.error_message()));
    }
    removed += c->resp.removed();
    if (KeyMirror* mirror = c->conn->mirror()) {
      for (size_t i : c->items) mirror->NoteRemoved(keys[i]);
    }
  }
  return removed;
}

absl::StatusOr<v1::StatsResponse> ClientImpl::Stats() {
  std::vector<ConnPtr> nodes;
  Routing r = Current();
  if (r.view == nullptr) {
    nodes.push_back(single_);
  } else {
    for (const v1::NodeInfo& n : r.view->map().nodes()) {
      if (n.state() != v1::DOWN) nodes.push_back(Conn(n));
    }
  }
  v1::StatsResponse total;
  uint64_t gets = 0, hits = 0;
  for (ConnPtr& c : nodes) {
    grpc::ClientContext ctx;
    c->Prepare(&ctx, 0);
    v1::StatsResponse s;
    grpc::Status st = c->stub()->Stats(&ctx, v1::StatsRequest(), &s);
    if (!st.ok()) {
      if (cluster_ && IsTransport(st.error_code())) continue;
      return absl::Status(FromGrpcStatus(st).code(),
                          absl::StrCat("stats of ", c->address(), ": ", st.error_message()));
    }
    if (nodes.size() == 1) return s;
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
  total.set_hit_ratio(gets == 0 ? 0.0 : static_cast<double>(hits) / gets);
  return total;
}

}  // namespace ems::client::internal

namespace ems {

absl::StatusOr<std::unique_ptr<Client>> Client::Connect(const ClientOptions& options) {
  auto client = std::make_unique<client::internal::ClientImpl>(options);
  if (absl::Status s = client->Init(); !s.ok()) return s;
  return std::unique_ptr<Client>(std::move(client));
}

}  // namespace ems
