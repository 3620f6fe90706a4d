// What the client's batch calls share: starting one call per node and waiting for all of
// them, over gRPC or the bulk channel, and grouping a batch's items by the node that serves
// them. Header-only; used by the put/get and the lookup halves of ClientImpl.
#ifndef EMS_CLIENT_INTERNAL_FANOUT_H_
#define EMS_CLIENT_INTERNAL_FANOUT_H_

#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <cstdint>
#include <memory>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/synchronization/blocking_counter.h"
#include "client/bulk_channel.h"
#include "client/internal/node_connection.h"
#include "common/key.h"
#include "common/key_proto.h"
#include "ems/v1/data.pb.h"

namespace ems::client::internal {

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

// Adds the requests for items `idx` to one node to `groups`: a BulkCall per bulk::kMaxItems
// items, the most a node takes in one request (it answers more with an error and closes the
// connection unread, which the client saw as a transport failure). `add(call, i)` adds item i.
// Each call takes its own pooled connection, so the parts travel in parallel.
template <typename Add>
void AddBulkCalls(const std::shared_ptr<NodeConnection>& conn, bulk::Op op, uint64_t epoch,
                  const std::vector<size_t>& idx, Add add, std::vector<BulkGroup>& groups) {
  for (size_t begin = 0; begin < idx.size(); begin += bulk::kMaxItems) {
    const size_t end = std::min(idx.size(), begin + size_t{bulk::kMaxItems});
    auto call = std::make_unique<client::BulkCall>(conn->bulk(), op, epoch);
    std::vector<size_t> part(idx.begin() + begin, idx.begin() + end);
    for (size_t i : part) add(*call, i);
    groups.push_back({conn, std::move(part), std::move(call)});
  }
}

// Sends every request, then reads every answer: the nodes work in parallel without threads.
// All requests and answers share one deadline: nodes that stall cost the caller one timeout,
// not one each.
inline void RunBulk(std::vector<BulkGroup>& groups) {
  if (groups.empty()) return;
  const absl::Time deadline = absl::Now() + groups.front().conn->bulk()->options().timeout;
  for (BulkGroup& g : groups) g.call->Send(deadline);
  for (BulkGroup& g : groups) g.call->Finish(deadline);
}

// Values per gRPC call: a call is one message each way, and channels cap messages at 80 MiB
// (node_connection.cc, and the node's max_message_bytes).
inline constexpr size_t kGrpcBatchBytes = 64 << 20;

// Splits `idx` into runs whose `bytes(i)` add up to at most kGrpcBatchBytes (a larger item
// alone), in order.
template <typename Bytes>
std::vector<std::vector<size_t>> SplitByBytes(const std::vector<size_t>& idx, Bytes bytes) {
  std::vector<std::vector<size_t>> parts(1);
  size_t total = 0;
  for (size_t i : idx) {
    const size_t b = bytes(i);
    if (!parts.back().empty() && total + b > kGrpcBatchBytes) {
      parts.emplace_back();
      total = 0;
    }
    parts.back().push_back(i);
    total += b;
  }
  return parts;
}

// OK if `key` may go to a node; INVALID_ARGUMENT naming what is wrong otherwise. Checked
// before anything is sent, whatever the transport: the bulk channel writes a namespace's length
// in 16 bits, so a longer one would put the stream out of step (the node would read its tail
// as the next request). Only the length, which costs nothing on a lookup's path (64 keys in
// about 4 us from the directories): a node refuses a namespace's bad bytes itself.
inline absl::Status CheckKey(const BlockKey& key) {
  if (!key.ns.empty() && key.ns.size() <= kMaxNamespaceBytes) return absl::OkStatus();
  return ValidateNamespace(key.ns);  // names the problem
}

inline bool IsTransport(grpc::StatusCode c) {
  return c == grpc::StatusCode::UNAVAILABLE || c == grpc::StatusCode::DEADLINE_EXCEEDED ||
         c == grpc::StatusCode::CANCELLED;
}

inline bool IsTransport(const absl::Status& s) {
  return absl::IsUnavailable(s) || absl::IsDeadlineExceeded(s) || absl::IsCancelled(s);
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

}  // namespace ems::client::internal

#endif  // EMS_CLIENT_INTERNAL_FANOUT_H_
