// The ems.v1.DataPlane gRPC service over one pool (callback API: handlers run on gRPC's
// threads and never block on anything but the pool's short critical sections).
#ifndef EMS_NODE_DATA_SERVICE_H_
#define EMS_NODE_DATA_SERVICE_H_

#include <atomic>
#include <functional>
#include <memory>
#include <string>

#include "common/cluster_view.h"
#include "ems/v1/data.grpc.pb.h"
#include "node/credential.h"
#include "node/removed_keys.h"
#include "pool/pool.h"

namespace ems::node {

struct DataServiceOptions {
  std::string node_id;
  // When set and holding a key, requests must carry it in kCdKeyHeader (UNAUTHENTICATED
  // otherwise). Shared with the bulk channel; it can change while the node serves.
  std::shared_ptr<const Credential> credential;
  // The node's current cluster map; nullptr or returning nullptr = standalone (owns all keys).
  std::function<std::shared_ptr<const ClusterView>()> view;
  int bulk_port = 0;  // advertised in Health; 0 = no bulk channel
  // Keys clients removed lately, shared with the other put paths; not owned. Remove notes them
  // and migration pushes of them are refused. nullptr = none kept (a standalone node).
  RemovedKeys* removed_keys = nullptr;
};

// Thread-safe. `pool` is not owned and must outlive the service.
class DataService final : public v1::DataPlane::CallbackService {
 public:
  DataService(pool::Pool* pool, DataServiceOptions options)
      : pool_(pool), options_(std::move(options)) {}

  // Health answers NOT_SERVING from now on (draining or shutting down).
  void SetServing(bool serving) { serving_.store(serving, std::memory_order_release); }

  grpc::ServerUnaryReactor* Put(grpc::CallbackServerContext* ctx, const v1::PutRequest* req,
                                v1::PutResponse* resp) override;
  grpc::ServerUnaryReactor* Get(grpc::CallbackServerContext* ctx, const v1::GetRequest* req,
                                v1::GetResponse* resp) override;
  grpc::ServerUnaryReactor* BatchPut(grpc::CallbackServerContext* ctx,
                                     const v1::BatchPutRequest* req,
                                     v1::BatchPutResponse* resp) override;
  grpc::ServerUnaryReactor* BatchGet(grpc::CallbackServerContext* ctx,
                                     const v1::BatchGetRequest* req,
                                     v1::BatchGetResponse* resp) override;
  grpc::ServerUnaryReactor* MatchPrefix(grpc::CallbackServerContext* ctx,
                                        const v1::MatchPrefixRequest* req,
                                        v1::MatchPrefixResponse* resp) override;
  grpc::ServerUnaryReactor* Exists(grpc::CallbackServerContext* ctx, const v1::ExistsRequest* req,
                                   v1::ExistsResponse* resp) override;
  grpc::ServerUnaryReactor* Remove(grpc::CallbackServerContext* ctx, const v1::RemoveRequest* req,
                                   v1::RemoveResponse* resp) override;
  grpc::ServerUnaryReactor* Stats(grpc::CallbackServerContext* ctx, const v1::StatsRequest* req,
                                  v1::StatsResponse* resp) override;
  grpc::ServerUnaryReactor* Health(grpc::CallbackServerContext* ctx, const v1::HealthRequest* req,
                                   v1::HealthResponse* resp) override;

 private:
  // Checks the credential and, when the caller's map is older than ours, that this node owns
  // every key (FAILED_PRECONDITION with our epoch in the trailer otherwise).
  absl::Status Admit(grpc::CallbackServerContext* ctx,
                     const google::protobuf::RepeatedPtrField<v1::Key>* keys);
  // A client's put, or a node's migration push (kMigrationHeader).
  enum class PutKind { kClient, kPush };
  // Stores one block. A push of a key a client removed here lately is not stored (or is
  // removed again if the remove came while it was written): OK with *refused set.
  absl::Status PutOne(const v1::PutRequest& req, PutKind kind, v1::PutResponse* resp,
                      bool* refused);
  void GetOne(const v1::Key& key, v1::GetResponse* resp, absl::Status* status);

  pool::Pool* const pool_;
  const DataServiceOptions options_;
  std::atomic<bool> serving_{true};  // release/acquire
};

// Fills a Stats response from the pool.
void FillStats(pool::Pool& pool, v1::StatsResponse* resp);

}  // namespace ems::node

#endif  // EMS_NODE_DATA_SERVICE_H_
