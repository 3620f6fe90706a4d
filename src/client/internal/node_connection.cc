#include "client/internal/node_connection.h"

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "spdlog/spdlog.h"

namespace ems::client::internal {
namespace {

constexpr char kEpochHeader[] = "ems-epoch";
constexpr char kCdKeyHeader[] = "ems-cd-key";
constexpr int kMaxMessageBytes = 80 << 20;  // above the 64 MiB value limit plus framing

}  // namespace

NodeConnection::NodeConnection(std::string id, std::string address, const std::string& local_socket,
                               int bulk_port, const ClientOptions& options)
    : id_(std::move(id)),
      address_(std::move(address)),
      options_(options),
      bulk_port_(bulk_port),
      local_socket_(local_socket) {
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
  bool local = false;
  if (options.use_local && !local_socket.empty()) {
    std::shared_ptr<LocalChannel> channel = ConnectLocal();
    local = channel != nullptr;
    absl::MutexLock lock(&local_mu_);
    local_ = std::move(channel);
  }
  if (options.mirror_remote_keys && !local && bulk_ != nullptr) {
    mirror_ = std::make_unique<KeyMirror>(bulk_.get());
  }
}

std::shared_ptr<LocalChannel> NodeConnection::ConnectLocal() {
  auto local = LocalChannel::Connect({.socket_path = local_socket_,
                                      .verify_checksums = options_.verify_local_checksums,
                                      .write_ahead_blocks = options_.local_write_ahead_blocks});
  if (!local.ok()) {
    spdlog::warn("client: node {}: local path unavailable ({}); using the network", id_,
                 local.status().ToString());
    return nullptr;
  }
  spdlog::debug("client: node {} reached through shared memory at {}", id_, local_socket_);
  return *std::move(local);
}

std::shared_ptr<LocalChannel> NodeConnection::local() {
  absl::MutexLock lock(&local_mu_);
  if (local_ == nullptr || local_->node_alive()) return local_;
  // The node behind the socket exited: its arena, which this channel maps, is not the one a
  // restarted node grants offsets in. Connect again (once a second at most).
  const absl::Time now = absl::Now();
  if (now < local_retry_) return nullptr;
  local_retry_ = now + absl::Seconds(1);
  if (std::shared_ptr<LocalChannel> fresh = ConnectLocal()) {
    spdlog::info("client: node {}: reconnected the local path at {}", id_, local_socket_);
    local_ = std::move(fresh);
    return local_;
  }
  return nullptr;
}

void NodeConnection::Prepare(grpc::ClientContext* ctx, const ClientOptions& options,
                             uint64_t epoch) {
  ctx->set_deadline(std::chrono::system_clock::now() +
                    std::chrono::microseconds(absl::ToInt64Microseconds(options.timeout)));
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
