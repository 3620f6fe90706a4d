#include "client/internal/node_connection.h"

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/metadata.h"
#include "spdlog/spdlog.h"

namespace ems::client::internal {
namespace {

constexpr int kMaxMessageBytes = 80 << 20;  // above the 64 MiB value limit plus framing

}  // namespace

NodeConnection::NodeConnection(std::string id, std::string address, const std::string& local_socket,
                               int bulk_port, const ClientOptions& options,
                               bool replaces_lost_local)
    : id_(std::move(id)),
      address_(std::move(address)),
      options_(options),
      bulk_port_(bulk_port),
      wants_local_(options.use_local && !local_socket.empty()),
      replaces_lost_local_(replaces_lost_local) {
  if (options.use_bulk && bulk_port > 0) {
    std::string host = address_.substr(0, address_.rfind(':'));
    if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
      host = host.substr(1, host.size() - 2);  // [v6]:port
    }
    bulk_ = std::make_unique<BulkChannel>(BulkChannelOptions{
        host, bulk_port, options.cd_key, options.timeout, options.verify_checksums});
  }
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(kMaxMessageBytes);
  args.SetMaxSendMessageSize(kMaxMessageBytes);
  stub_ = v1::DataPlane::NewStub(
      grpc::CreateCustomChannel(address_, grpc::InsecureChannelCredentials(), args));
  if (wants_local_) {
    auto local = LocalChannel::Connect({.socket_path = local_socket,
                                        .verify_checksums = options.verify_local_checksums,
                                        .write_ahead_blocks = options.local_write_ahead_blocks,
                                        .timeout = options.timeout,
                                        .cd_key = options.cd_key});
    if (local.ok()) {
      local_ = *std::move(local);
      if (replaces_lost_local) {
        spdlog::info("client: node {}: reconnected the local path at {}", id_, local_socket);
      } else {
        spdlog::debug("client: node {} reached through shared memory at {}", id_, local_socket);
      }
    } else {
      spdlog::warn("client: node {}: local path unavailable ({}); using the network", id_,
                   local.status().ToString());
    }
  }
  if (options.mirror_remote_keys && local_ == nullptr && bulk_ != nullptr) {
    mirror_ = std::make_unique<KeyMirror>(bulk_.get());
  }
}

void NodeConnection::Prepare(grpc::ClientContext* ctx, const ClientOptions& options,
                             uint64_t epoch) {
  // absl::Time saturates (InfiniteDuration: InfiniteFuture, which ToChronoTime turns into
  // time_point::max(), gRPC's "no deadline"); chrono arithmetic on INT64_MAX us overflowed
  // into a deadline in the past.
  ctx->set_deadline(absl::ToChronoTime(absl::Now() + options.timeout));
  if (!options.cd_key.empty()) ctx->AddMetadata(kCdKeyHeader, options.cd_key);
  if (epoch > 0) ctx->AddMetadata(kEpochHeader, absl::StrCat(epoch));
}

uint64_t EpochFromTrailer(const grpc::ClientContext& ctx) {
  const auto& md = ctx.GetServerTrailingMetadata();
  auto it = md.find(kEpochHeader);
  uint64_t epoch = 0;
  if (it != md.end()) {
    absl::SimpleAtoi(absl::string_view(it->second.data(), it->second.size()), &epoch);
  }
  return epoch;
}

}  // namespace ems::client::internal
