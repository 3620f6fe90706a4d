// A client's link to one node: a gRPC stub, and the shared-memory channel when the node runs
// on this machine.
#ifndef EMS_CLIENT_INTERNAL_NODE_CONNECTION_H_
#define EMS_CLIENT_INTERNAL_NODE_CONNECTION_H_

#include <grpcpp/grpcpp.h>

#include <memory>
#include <string>

#include "absl/time/time.h"
#include "client/bulk_channel.h"
#include "client/client.h"
#include "client/key_mirror.h"
#include "client/local_channel.h"
#include "ems/v1/data.grpc.pb.h"

namespace ems::client::internal {

// Thread-safe; shared by every call routed to the node.
class NodeConnection {
 public:
  // `local_socket` non-empty: try the shared-memory path (falls back to gRPC on failure).
  // `bulk_port` > 0: the node's bulk data channel, on the host of `address`.
  // `replaces_lost_local`: this connection replaces one whose local path was lost
  // (local_lost()), so failing to map the channel again leaves it lost too, to be retried.
  NodeConnection(std::string id, std::string address, const std::string& local_socket,
                 int bulk_port, const ClientOptions& options, bool replaces_lost_local = false);

  const std::string& id() const { return id_; }
  const std::string& address() const { return address_; }
  v1::DataPlane::Stub* stub() { return stub_.get(); }
  // nullptr when the node is remote, its socket could not be used, or the node behind the
  // channel exited (LocalChannel::node_alive): calls then go over the network. Valid while
  // the caller holds this connection. A plain load: lookups call it once per owner node.
  LocalChannel* local() const {
    return local_ != nullptr && local_->node_alive() ? local_.get() : nullptr;
  }
  // The shared-memory path was wanted and is lost: the node behind the channel exited, or a
  // connection built to replace such a one could not map a channel either. The channel maps
  // the arena of a node that is gone, which a restarted node does not grant in, so the client
  // replaces the whole connection (at most once a second: created()); the channel is unmapped
  // when its last caller lets go of the old connection.
  bool local_lost() const {
    if (!wants_local_) return false;
    return local_ == nullptr ? replaces_lost_local_ : !local_->node_alive();
  }
  absl::Time created() const { return created_; }
  // nullptr when the node has no bulk channel or the client does not use it.
  BulkChannel* bulk() { return bulk_.get(); }
  int bulk_port() const { return bulk_port_; }
  // nullptr unless ClientOptions::mirror_remote_keys and the node is reached over the bulk
  // channel.
  KeyMirror* mirror() { return mirror_.get(); }

  // Sets deadline, credential and (cluster mode, epoch > 0) the caller's map epoch.
  void Prepare(grpc::ClientContext* ctx, uint64_t epoch) const { Prepare(ctx, options_, epoch); }
  static void Prepare(grpc::ClientContext* ctx, const ClientOptions& options, uint64_t epoch);

 private:
  const std::string id_;
  const std::string address_;
  const ClientOptions options_;
  const int bulk_port_;
  std::unique_ptr<v1::DataPlane::Stub> stub_;
  const bool wants_local_;
  const bool replaces_lost_local_;
  const absl::Time created_ = absl::Now();
  std::unique_ptr<LocalChannel> local_;
  std::unique_ptr<BulkChannel> bulk_;
  std::unique_ptr<KeyMirror> mirror_;  // declared after bulk_: it uses bulk_ until it stops
};

// The epoch a node put in its trailer after refusing a key it does not own; 0 if none.
uint64_t EpochFromTrailer(const grpc::ClientContext& ctx);

}  // namespace ems::client::internal

#endif  // EMS_CLIENT_INTERNAL_NODE_CONNECTION_H_
