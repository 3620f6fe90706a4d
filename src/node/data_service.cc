#include "node/data_service.h"

#include <cstring>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/grpc_status.h"
#include "common/key_proto.h"
#include "common/metadata.h"
#include "common/status_macros.h"
#include "node/admission.h"

namespace ems::node {
namespace {

constexpr char kVersion[] = "0.1.0";

// Parses every key, naming the first bad one by its index.
absl::StatusOr<std::vector<BlockKey>> KeysFrom(
    const google::protobuf::RepeatedPtrField<v1::Key>& keys) {
  std::vector<BlockKey> out;
  out.reserve(keys.size());
  for (int i = 0; i < keys.size(); ++i) {
    auto k = FromProto(keys[i]);
    if (!k.ok()) {
      return absl::InvalidArgumentError(absl::StrCat("keys[", i, "]: ", k.status().message()));
    }
    out.push_back(*std::move(k));
  }
  return out;
}

// True if the call is a node's migration push rather than a client's put.
bool IsPush(grpc::CallbackServerContext* ctx) {
  const auto& md = ctx->client_metadata();
  auto it = md.find(kMigrationHeader);
  return it != md.end() && absl::string_view(it->second.data(), it->second.size()) == "1";
}

grpc::ServerUnaryReactor* Done(grpc::CallbackServerContext* ctx, const absl::Status& s) {
  grpc::ServerUnaryReactor* r = ctx->DefaultReactor();
  r->Finish(ToGrpcStatus(s));
  return r;
}

}  // namespace

absl::Status DataService::Admit(grpc::CallbackServerContext* ctx,
                                const google::protobuf::RepeatedPtrField<v1::Key>* keys) {
  const auto& md = ctx->client_metadata();
  auto cd = md.find(kCdKeyHeader);
  const absl::string_view given =
      cd == md.end() ? "" : absl::string_view(cd->second.data(), cd->second.size());
  if (options_.credential) {
    EMS_RETURN_IF_ERROR(options_.credential->Check(options_.node_id, given, kCdKeyHeader));
  }
  if (keys == nullptr || !options_.view) return absl::OkStatus();
  auto it = md.find(kEpochHeader);
  if (it == md.end()) return absl::OkStatus();  // a caller without a map talks to one node
  uint64_t client_epoch = 0;
  if (!absl::SimpleAtoi(absl::string_view(it->second.data(), it->second.size()), &client_epoch)) {
    return absl::InvalidArgumentError(absl::StrCat(kEpochHeader, " is not a number"));
  }
  std::shared_ptr<const ClusterView> view = options_.view();
  if (view == nullptr || client_epoch >= view->epoch()) return absl::OkStatus();
  std::vector<BlockKey> valid;  // bad keys are reported by the handler itself
  for (const v1::Key& k : *keys) {
    if (auto key = FromProto(k); key.ok()) valid.push_back(*std::move(key));
  }
  absl::Status s = CheckOwnership(view.get(), options_.node_id, client_epoch, valid);
  if (!s.ok()) ctx->AddTrailingMetadata(kEpochHeader, absl::StrCat(view->epoch()));
  return s;
}

absl::Status DataService::PutOne(const v1::PutRequest& req, PutKind kind, v1::PutResponse* resp,
                                 bool* refused) {
  auto key = FromProto(req.key());
  if (!key.ok()) return key.status();
  // A client's Remove may reach this node (the key's new owner) before a migration push of the
  // block it removed, sent by an old owner that was not asked (an expand) or had already
  // copied it (a drain): stored, the block would be readable again for good. So a push of a key
  // removed here lately is refused, and answered OK so the pusher lets its copy go. The pusher
  // cannot tell instead: after a remove a client may put the key again, here, and a follow-up
  // remove from the pusher would delete that block, which the client was told is stored. A
  // client's put ends the refusal, before it allocates (see RemovedKeys).
  RemovedKeys* removed = options_.removed_keys;
  if (removed != nullptr && kind == PutKind::kClient) removed->Forget(*key);
  if (removed != nullptr && kind == PutKind::kPush && removed->Contains(*key)) {
    *refused = true;
    return absl::OkStatus();
  }
  absl::StatusOr<BlockKey> parent;
  if (req.has_parent()) {
    parent = FromProto(req.parent());
    if (!parent.ok()) {
      return absl::InvalidArgumentError(absl::StrCat("parent: ", parent.status().message()));
    }
  }
  auto handle = pool_->Allocate(*key, req.value().size(), req.has_parent() ? &*parent : nullptr);
  if (!handle.ok()) {
    if (pool::StoredAlready(handle.status())) {
      resp->set_existed(true);  // immutable and already there: a no-op success
      resp->set_being_written(pool::BeingWritten(handle.status()));
      return absl::OkStatus();
    }
    return handle.status();
  }
  std::memcpy(handle->data(), req.value().data(), req.value().size());
  EMS_RETURN_IF_ERROR(pool_->Seal(*std::move(handle), req.checksum()));
  // A remove that came while the push wrote the block found nothing sealed to remove.
  if (removed != nullptr && kind == PutKind::kPush) *refused = removed->UndoIfNoted(*key, *pool_);
  return absl::OkStatus();
}

void DataService::GetOne(const v1::Key& k, v1::GetResponse* resp, absl::Status* status) {
  auto key = FromProto(k);
  if (!key.ok()) {
    *status = key.status();
    return;
  }
  auto handle = pool_->Get(*key);
  if (!handle.ok()) {
    if (!absl::IsNotFound(handle.status())) *status = handle.status();
    resp->set_found(false);
    return;
  }
  resp->set_found(true);
  resp->set_value(reinterpret_cast<const char*>(handle->data()), handle->size());
  resp->set_checksum(handle->info().checksum);
}

grpc::ServerUnaryReactor* DataService::Put(grpc::CallbackServerContext* ctx,
                                           const v1::PutRequest* req, v1::PutResponse* resp) {
  google::protobuf::RepeatedPtrField<v1::Key> keys;
  *keys.Add() = req->key();
  if (absl::Status s = Admit(ctx, &keys); !s.ok()) return Done(ctx, s);
  bool refused = false;  // a client's put is never refused
  return Done(ctx, PutOne(*req, PutKind::kClient, resp, &refused));
}

grpc::ServerUnaryReactor* DataService::Get(grpc::CallbackServerContext* ctx,
                                           const v1::GetRequest* req, v1::GetResponse* resp) {
  google::protobuf::RepeatedPtrField<v1::Key> keys;
  *keys.Add() = req->key();
  if (absl::Status s = Admit(ctx, &keys); !s.ok()) return Done(ctx, s);
  absl::Status status;
  GetOne(req->key(), resp, &status);
  return Done(ctx, status);
}

grpc::ServerUnaryReactor* DataService::BatchPut(grpc::CallbackServerContext* ctx,
                                                const v1::BatchPutRequest* req,
                                                v1::BatchPutResponse* resp) {
  google::protobuf::RepeatedPtrField<v1::Key> keys;
  for (const auto& item : req->items()) *keys.Add() = item.key();
  if (absl::Status s = Admit(ctx, &keys); !s.ok()) return Done(ctx, s);
  const PutKind kind = IsPush(ctx) ? PutKind::kPush : PutKind::kClient;
  for (const v1::PutRequest& item : req->items()) {
    v1::PutResponse put;
    bool refused = false;
    absl::Status s = PutOne(item, kind, &put, &refused);
    v1::ItemStatus* st = resp->add_statuses();
    st->set_code(static_cast<int>(s.code()));
    st->set_message(refused ? "removed here by a client lately: not stored"
                            : std::string(s.message()));
    st->set_being_written(put.being_written());
  }
  return Done(ctx, absl::OkStatus());
}

grpc::ServerUnaryReactor* DataService::BatchGet(grpc::CallbackServerContext* ctx,
                                                const v1::BatchGetRequest* req,
                                                v1::BatchGetResponse* resp) {
  if (absl::Status s = Admit(ctx, &req->keys()); !s.ok()) return Done(ctx, s);
  for (int i = 0; i < req->keys_size(); ++i) {
    absl::Status status;
    GetOne(req->keys(i), resp->add_items(), &status);
    if (!status.ok()) {
      resp->Clear();
      return Done(ctx,
                  absl::Status(status.code(), absl::StrCat("keys[", i, "]: ", status.message())));
    }
  }
  return Done(ctx, absl::OkStatus());
}

grpc::ServerUnaryReactor* DataService::MatchPrefix(grpc::CallbackServerContext* ctx,
                                                   const v1::MatchPrefixRequest* req,
                                                   v1::MatchPrefixResponse* resp) {
  if (absl::Status s = Admit(ctx, &req->keys()); !s.ok()) return Done(ctx, s);
  auto keys = KeysFrom(req->keys());
  if (!keys.ok()) return Done(ctx, keys.status());
  resp->set_matched(static_cast<uint32_t>(pool_->MatchPrefix(*keys)));
  return Done(ctx, absl::OkStatus());
}

grpc::ServerUnaryReactor* DataService::Exists(grpc::CallbackServerContext* ctx,
                                              const v1::ExistsRequest* req,
                                              v1::ExistsResponse* resp) {
  if (absl::Status s = Admit(ctx, &req->keys()); !s.ok()) return Done(ctx, s);
  auto keys = KeysFrom(req->keys());
  if (!keys.ok()) return Done(ctx, keys.status());
  for (const BlockKey& k : *keys) resp->add_present(pool_->Contains(k));
  return Done(ctx, absl::OkStatus());
}

grpc::ServerUnaryReactor* DataService::Remove(grpc::CallbackServerContext* ctx,
                                              const v1::RemoveRequest* req,
                                              v1::RemoveResponse* resp) {
  if (absl::Status s = Admit(ctx, nullptr); !s.ok()) return Done(ctx, s);
  auto keys = KeysFrom(req->keys());
  if (!keys.ok()) return Done(ctx, keys.status());
  uint32_t removed = 0;
  for (const BlockKey& k : *keys) {
    // Noted first, so a push that seals the block after this remove looked undoes it.
    if (options_.removed_keys != nullptr) options_.removed_keys->Note(k);
    const bool gone = pool_->Remove(k).ok();
    removed += gone;
    resp->add_removed_keys(gone);
  }
  resp->set_removed(removed);
  return Done(ctx, absl::OkStatus());
}

grpc::ServerUnaryReactor* DataService::Stats(grpc::CallbackServerContext* ctx,
                                             const v1::StatsRequest*, v1::StatsResponse* resp) {
  if (absl::Status s = Admit(ctx, nullptr); !s.ok()) return Done(ctx, s);
  FillStats(*pool_, resp);
  return Done(ctx, absl::OkStatus());
}

grpc::ServerUnaryReactor* DataService::Health(grpc::CallbackServerContext* ctx,
                                              const v1::HealthRequest*, v1::HealthResponse* resp) {
  resp->set_status(serving_.load(std::memory_order_acquire) ? v1::HealthResponse::SERVING
                                                            : v1::HealthResponse::NOT_SERVING);
  resp->set_node_id(options_.node_id);
  resp->set_version(kVersion);
  resp->set_bulk_port(static_cast<uint32_t>(options_.bulk_port));
  return Done(ctx, absl::OkStatus());
}

void FillStats(pool::Pool& pool, v1::StatsResponse* resp) {
  const pool::PoolStats s = pool.Stats();
  resp->set_keys(s.keys);
  resp->set_used_bytes(s.used_bytes);
  resp->set_capacity_bytes(s.capacity_bytes);
  resp->set_get_count(s.gets);
  resp->set_put_count(s.puts);
  resp->set_hit_count(s.hits);
  resp->set_miss_count(s.misses);
  resp->set_hit_ratio(s.gets == 0 ? 0.0 : static_cast<double>(s.hits) / s.gets);
  resp->set_bytes_in(s.bytes_in);
  resp->set_bytes_out(s.bytes_out);
  resp->set_evictions(s.evictions);
  resp->set_pinned_blocks(s.pinned_blocks);
  resp->set_unsealed_blocks(s.unsealed_blocks);
  resp->set_blank_blocks(s.blank_blocks);
  resp->set_reclaimed_writes(s.reclaimed_writes);
  resp->set_hugepages(s.hugepages);
  resp->set_eviction_policy(s.eviction_policy);
  resp->set_metadata_bytes(s.metadata_bytes);
}

}  // namespace ems::node
