// A client's link to one node: a gRPC stub, and the shared-memory channel when the node runs
// on this machine.
#ifndef EMS_CLIENT_INTERNAL_NODE_CONNECTION_H_
#define EMS_CLIENT_INTERNAL_NODE_CONNECTION_H_

#include <grpcpp/grpcpp.h>

#include <memory>
#include <string>

#include "absl/synchronization/mutex.h"
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
  NodeConnection(std::string id, std::string address, const std::string& local_socket,
                 int bulk_port, const ClientOptions& options);

  const std::string& id() const { return id_; }
  const std::string& address() const { return address_; }
  v1::DataPlane::Stub* stub() { return stub_.get(); }
  // nullptr when the node is remote or its socket could not be used. A channel whose node
  // exited (LocalChannel::node_alive) is replaced by a new one to the node now serving the
  // socket, tried at most once a second; until then nullptr, and calls go over the network.
  // Hold the pointer for the call: a replaced channel lives until its last user is done.
  std::shared_ptr<LocalChannel> local();
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
  // A channel to the node serving local_socket_, or nullptr (logged) if it cannot be had.
  std::shared_ptr<LocalChannel> ConnectLocal();

  const std::string id_;
  const std::string address_;
  const ClientOptions options_;
  const int bulk_port_;
  std::unique_ptr<v1::DataPlane::Stub> stub_;
  const std::string local_socket_;
  absl::Mutex local_mu_;
  std::shared_ptr<LocalChannel> local_ ABSL_GUARDED_BY(local_mu_);
  absl::Time local_retry_ ABSL_GUARDED_BY(local_mu_) = absl::InfinitePast();
  std::unique_ptr<BulkChannel> bulk_;
  std::unique_ptr<KeyMirror> mirror_;  // declared after bulk_: it uses bulk_ until it stops
};

// The epoch a node put in its trailer after refusing a key it does not own; 0 if none.
uint64_t EpochFromTrailer(const grpc::ClientContext& ctx);

}  // namespace ems::client::internal

#endif  // EMS_CLIENT_INTERNAL_NODE_CONNECTION_H_
