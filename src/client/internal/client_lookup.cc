// ClientImpl's lookups: MatchPrefix, Exists, Remove.
#include <algorithm>
#include <optional>

#include "absl/strings/str_cat.h"
#include "client/internal/client_impl.h"
#include "client/internal/fanout.h"
#include "common/grpc_status.h"

namespace ems::client::internal {

namespace {
// What a node's directory (through its local channel, if it has one) or mirror says of `key`;
// nullopt if the node must be asked.
std::optional<bool> PresentWithoutRoundTrip(NodeConnection* conn, LocalChannel* local,
                                            const BlockKey& key) {
  if (local != nullptr) return local->Contains(key);
  if (KeyMirror* mirror = conn->mirror()) return mirror->Contains(key);
  return std::nullopt;
}

struct Owner {
  const v1::NodeInfo* node;
  std::shared_ptr<NodeConnection> conn;  // held for the walk: Conn() may replace it
  LocalChannel* local;
};
}  // namespace

size_t ClientImpl::MatchWithoutRoundTrips(const Routing& r, absl::Span<const BlockKey> keys,
                                          bool* done) {
  *done = false;
  // Owners (and their local channels) resolved once per node, not per key: a prompt has a
  // few owners and many keys.
  std::vector<Owner> seen;
  const Owner single = r.view == nullptr ? Owner{nullptr, r.single, r.single->local()}
                                         : Owner{nullptr, nullptr, nullptr};
  for (size_t i = 0; i < keys.size(); ++i) {
    const Owner* owner = &single;
    if (r.view != nullptr) {
      const v1::NodeInfo* node = r.view->PrimaryOwner(keys[i]);
      if (node == nullptr) return i;
      auto it = std::find_if(seen.begin(), seen.end(), [&](auto& s) { return s.node == node; });
      if (it == seen.end()) {
        ConnPtr conn = Conn(*node);
        LocalChannel* local = conn->local();
        it = seen.insert(seen.end(), {node, std::move(conn), local});
      }
      owner = &*it;
    }
    const std::optional<bool> present =
        PresentWithoutRoundTrip(owner->conn.get(), owner->local, keys[i]);
    if (!present.has_value()) return i;  // this owner must be asked: the rest goes to them
    if (!*present) {
      *done = true;  // the first miss ends the prefix
      return i;
    }
  }
  *done = true;
  return keys.size();
}

absl::StatusOr<size_t> ClientImpl::MatchPrefix(absl::Span<const BlockKey> keys) {
  for (size_t i = 0; i < keys.size(); ++i) {
    if (absl::Status bad = CheckKey(keys[i]); !bad.ok()) {
      return absl::InvalidArgumentError(absl::StrCat("keys[", i, "]: ", bad.message()));
    }
  }
  bool unreachable = false;
  absl::StatusOr<size_t> matched = MatchPrefixOnce(keys, &unreachable);
  if (!cluster_ && absl::IsUnavailable(matched.status())) RecheckSingle();
  if (!cluster_ || !matched.ok() || *matched == keys.size()) return matched;
  // While a node drains, the blocks it has not pushed yet are still there to read (Get asks
  // it after the new owner), but the lookup above asked only each key's owner: a prompt
  // whose blocks the draining node held matched nothing from its first such block on
  // (1 of 60 in a test, all 60 readable). Then the rest of the prompt is asked of every node
  // that may hold it, in one more round, for as long as a drain lasts.
  // Likewise an owner that could not be reached (dead, and not yet marked DOWN) holds nothing
  // as far as the lookup knows, but with replication Get reads its blocks from the replicas.
  Routing r = Current();
  if (r.view == nullptr) return matched;
  const bool replicas = unreachable && r.view->replication_factor() > 1;
  if (!r.view->has_draining() && !replicas) return matched;
  return *matched + LeadingHeldByAnyReadOwner(r, keys.subspan(*matched));
}

std::vector<std::pair<ClientImpl::ConnPtr, std::vector<size_t>>> ClientImpl::ByEveryReadOwner(
    const Routing& r, absl::Span<const BlockKey> keys) {
  absl::flat_hash_map<NodeConnection*, size_t> where;
  std::vector<std::pair<ConnPtr, std::vector<size_t>>> groups;
  for (size_t i = 0; i < keys.size(); ++i) {
    for (ConnPtr& c : Candidates(r, keys[i], false)) {
      auto [it, fresh] = where.try_emplace(c.get(), groups.size());
      if (fresh) groups.emplace_back(c, std::vector<size_t>{});
      groups[it->second].second.push_back(i);
    }
  }
  return groups;
}

std::vector<bool> ClientImpl::HeldByAnyReadOwner(const Routing& r, absl::Span<const BlockKey> keys,
                                                 absl::Status* error) {
  using Call = RemoteCall<v1::ExistsRequest, v1::ExistsResponse>;
  std::vector<std::unique_ptr<Call>> calls;
  for (auto& [conn, idx] : ByEveryReadOwner(r, keys)) {
    auto call = std::make_unique<Call>();
    call->conn = conn;
    conn->Prepare(&call->ctx, 0);  // existence is advisory: no ownership check
    for (size_t i : idx) ToProto(keys[i], call->req.add_keys());
    call->items = std::move(idx);
    calls.push_back(std::move(call));
  }
  RunParallel(calls, [](Call& c, std::function<void(grpc::Status)> done) {
    c.conn->stub()->async()->Exists(&c.ctx, &c.req, &c.resp, std::move(done));
  });
  std::vector<bool> held(keys.size(), false);
  for (auto& c : calls) {
    if (!c->status.ok()) {
      // Not known to hold anything; in a cluster an unreachable node is a miss, not an error.
      if (error->ok() && !(cluster_ && IsTransport(c->status.error_code()))) {
        *error = absl::Status(
            FromGrpcStatus(c->status).code(),
            absl::StrCat("exists at ", c->conn->address(), ": ", c->status.error_message()));
      }
      continue;
    }
    for (size_t j = 0; j < c->items.size() && j < static_cast<size_t>(c->resp.present_size());
         ++j) {
      if (c->resp.present(static_cast<int>(j))) held[c->items[j]] = true;
    }
  }
  return held;
}

size_t ClientImpl::LeadingHeldByAnyReadOwner(const Routing& r, absl::Span<const BlockKey> keys) {
  absl::Status ignored;  // a node that fails is not known to hold anything
  std::vector<bool> held = HeldByAnyReadOwner(r, keys, &ignored);
  return std::find(held.begin(), held.end(), false) - held.begin();
}

absl::StatusOr<size_t> ClientImpl::MatchPrefixOnce(absl::Span<const BlockKey> all_keys,
                                                   bool* unreachable) {
  for (int attempt = 0; attempt < 2; ++attempt) {
    Routing r = Route();
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
      LocalChannel* local = conn->local();
      if (local == nullptr && conn->bulk() != nullptr) {
        // A split prompt's parts each answer their own leading run; the first miss over all
        // of them is the same.
        AddBulkCalls(
            conn, bulk::Op::kMatchPrefix, r.epoch, idx,
            [&](BulkCall& call, size_t i) { call.AddKey(&keys[i]); }, bulk);
        continue;
      }
      if (local != nullptr) {
        std::vector<BlockKey> sub;
        for (size_t i : idx) sub.push_back(keys[i]);
        auto m = local->MatchPrefix(sub);
        if (!m.ok()) {
          if (!IsTransport(m.status())) error = m.status();
          *unreachable |= IsTransport(m.status());
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
        *unreachable = true;
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
        *unreachable = true;
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
  // Every node that may hold a key is asked, as Get would read it: a draining node still
  // holds what it has not pushed yet, and a replica holds what its dead owner did.
  absl::Status error;
  std::vector<bool> present = HeldByAnyReadOwner(Route(), keys, &error);
  if (!error.ok()) return error;
  return present;
}

absl::StatusOr<size_t> ClientImpl::Remove(absl::Span<const BlockKey> keys) {
  Routing r = Route();
  using Call = RemoteCall<v1::RemoveRequest, v1::RemoveResponse>;
  std::vector<std::unique_ptr<Call>> calls;
  for (auto& [conn, idx] : ByEveryReadOwner(r, keys)) {
    auto call = std::make_unique<Call>();
    call->conn = conn;
    conn->Prepare(&call->ctx, 0);
    for (size_t i : idx) ToProto(keys[i], call->req.add_keys());
    call->items = std::move(idx);
    calls.push_back(std::move(call));
  }
  RunParallel(calls, [](Call& c, std::function<void(grpc::Status)> done) {
    c.conn->stub()->async()->Remove(&c.ctx, &c.req, &c.resp, std::move(done));
  });
  // A key asked of several replicas counts once: the caller asked for keys, not copies.
  std::vector<bool> gone(keys.size(), false);
  size_t uncounted = 0;  // from nodes that say how many, not which
  for (auto& c : calls) {
    if (!c->status.ok()) {
      return absl::Status(
          FromGrpcStatus(c->status).code(),
          absl::StrCat("remove at ", c->conn->address(), ": ", c->status.error_message()));
    }
    if (c->resp.removed_keys_size() == static_cast<int>(c->items.size())) {
      for (size_t j = 0; j < c->items.size(); ++j) {
        if (c->resp.removed_keys(static_cast<int>(j))) gone[c->items[j]] = true;
      }
    } else {
      uncounted += c->resp.removed();
    }
    if (KeyMirror* mirror = c->conn->mirror()) {
      for (size_t i : c->items) mirror->NoteRemoved(keys[i]);
    }
  }
  return std::min<size_t>(keys.size(), std::count(gone.begin(), gone.end(), true) + uncounted);
}

}  // namespace ems::client::internal
