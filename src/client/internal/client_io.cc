// ClientImpl's reads and writes: Get, BatchGet, Put, BatchPut.
#include <algorithm>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "client/internal/client_impl.h"
#include "client/internal/fanout.h"
#include "common/grpc_status.h"
#include "common/prefix_hash.h"

namespace ems::client::internal {

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
  Routing r = Route();
  std::vector<size_t> pending;
  pending.reserve(n);
  for (size_t i = 0; i < n; ++i) {
    // Every byte of the namespace, not only its length (CheckKey): a node refuses a request
    // holding a bad key whole, so one bad key failed every other item asked of the same node
    // with its error. Beside a block's read the check costs nothing.
    if (absl::Status bad = ValidateNamespace(items[i].key.ns); !bad.ok()) {
      results[i] = std::move(bad);
      outcomes[i] = Outcome::kDone;
      continue;
    }
    candidates[i] = Candidates(r, items[i].key, false);
    pending.push_back(i);
  }
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
      if (LocalChannel* local = conn->local()) {
        GetLocal(local, items, idx, results, outcomes);
        continue;
      }
      if (conn->bulk() != nullptr) {
        AddBulkCalls(
            conn, bulk::Op::kGet, r.epoch, idx,
            [&](BulkCall& call, size_t i) { call.AddGet(&items[i].key, items[i].buffer); }, bulk);
        continue;
      }
      for (auto& part : SplitByBytes(idx, [&](size_t i) { return items[i].buffer.size(); })) {
        auto call = std::make_unique<Call>();
        call->conn = conn;
        for (size_t i : part) ToProto(items[i].key, call->req.add_keys());
        call->items = std::move(part);
        conn->Prepare(&call->ctx, r.epoch);
        calls.push_back(std::move(call));
      }
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
  // Only a refusal suggests the node moved; a timeout means it is there but slow, and a
  // Health probe would make the caller wait another timeout.
  if (!cluster_ && std::any_of(results.begin(), results.end(),
                               [](const auto& r) { return absl::IsUnavailable(r.status()); })) {
    RecheckSingle();
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
  Routing r = Route();
  std::vector<size_t> pending;
  pending.reserve(n);
  for (size_t i = 0; i < n; ++i) {
    error[i] = CheckKey(items[i].key);
    if (error[i].ok() && items[i].parent != nullptr) {
      if (absl::Status bad = CheckKey(*items[i].parent); !bad.ok()) {
        error[i] = absl::InvalidArgumentError(absl::StrCat("parent: ", bad.message()));
      }
    }
    if (error[i].ok()) pending.push_back(i);
  }

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
    bool any_stale = false;
    for (auto& [conn, idx] : groups) {
      LocalChannel* local = conn->local();
      if (local == nullptr && conn->bulk() != nullptr) {
        AddBulkCalls(
            conn, bulk::Op::kPut, r.epoch, idx,
            [&](BulkCall& call, size_t i) {
              call.AddPut(&items[i].key, items[i].value, sums[i], items[i].parent);
            },
            bulk);
        continue;
      }
      if (local != nullptr) {
        std::vector<client::LocalPutItem> local_items;
        for (size_t i : idx) local_items.push_back({items[i].key, items[i].value, items[i].parent});
        auto st = local->BatchPut(local_items, r.epoch);
        for (size_t j = 0; j < idx.size(); ++j) {
          const size_t i = idx[j];
          if (st[j].ok()) {
            stored[i] = true;
          } else if (absl::IsFailedPrecondition(st[j])) {
            stale[i] = any_stale = true;  // the node's map is newer: route it again
          } else if (IsTransport(st[j])) {
            transport[i] = true;
          } else if (error[i].ok()) {
            error[i] = st[j];
          }
        }
        continue;
      }
      for (auto& part : SplitByBytes(idx, [&](size_t i) { return items[i].value.size(); })) {
        auto call = std::make_unique<Call>();
        call->conn = conn;
        conn->Prepare(&call->ctx, r.epoch);
        for (size_t i : part) {
          v1::PutRequest* p = call->req.add_items();
          ToProto(items[i].key, p->mutable_key());
          p->set_value(items[i].value.data(), items[i].value.size());
          p->set_checksum(sums[i]);
          if (items[i].parent != nullptr) ToProto(*items[i].parent, p->mutable_parent());
        }
        call->items = std::move(part);
        calls.push_back(std::move(call));
      }
    }
    auto in_flight = StartParallel(calls, [](Call& c, std::function<void(grpc::Status)> done) {
      c.conn->stub()->async()->BatchPut(&c.ctx, &c.req, &c.resp, std::move(done));
    });
    RunBulk(bulk);
    if (in_flight) in_flight->Wait();
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
  if (!cluster_ && std::any_of(out.begin(), out.end(),
                               [](const absl::Status& s) { return absl::IsUnavailable(s); })) {
    RecheckSingle();
  }
  return out;
}

absl::Status ClientImpl::Put(const BlockKey& key, absl::Span<const uint8_t> value,
                             const BlockKey* parent) {
  PutItem item{key, value, parent};
  return BatchPut(absl::MakeConstSpan(&item, 1))[0];
}

}  // namespace ems::client::internal
