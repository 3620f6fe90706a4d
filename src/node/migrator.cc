#include "node/migrator.h"

#include <grpcpp/grpcpp.h>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/key_proto.h"
#include "node/data_service.h"
#include "spdlog/spdlog.h"

namespace ems::node {
namespace {

constexpr size_t kKeysPerPass = 1 << 16;

}  // namespace

Migrator::Migrator(pool::Pool* pool, MigratorOptions options, ViewFn view, DrainedFn drained)
    : pool_(pool),
      options_(std::move(options)),
      view_(std::move(view)),
      drained_(std::move(drained)),
      thread_([this] { Run(); }) {}

Migrator::~Migrator() { Stop(); }

void Migrator::Stop() {
  {
    absl::MutexLock lock(&mu_);
    stop_ = true;
  }
  if (thread_.joinable()) thread_.join();
}

void Migrator::Kick() {
  absl::MutexLock lock(&mu_);
  kicked_ = true;
}

uint64_t Migrator::moved_blocks() const {
  absl::MutexLock lock(&mu_);
  return moved_;
}

v1::DataPlane::Stub* Migrator::StubFor(const std::string& address) {
  auto& stub = stubs_[address];
  if (stub == nullptr) {
    grpc::ChannelArguments args;
    args.SetMaxSendMessageSize(static_cast<int>(options_.batch_bytes + (80 << 20)));
    stub = v1::DataPlane::NewStub(
        grpc::CreateCustomChannel(address, grpc::InsecureChannelCredentials(), args));
  }
  return stub.get();
}

void Migrator::Run() {
  while (true) {
    {
      absl::MutexLock lock(&mu_);
      auto wake = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return kicked_ || stop_; };
      mu_.AwaitWithTimeout(absl::Condition(&wake), options_.period);
      if (stop_) return;
      kicked_ = false;
    }
    std::shared_ptr<const ClusterView> view = view_();
    if (view == nullptr) continue;
    const size_t moved = Pass(*view);
    const v1::NodeInfo* self = view->Find(options_.node_id);
    if (self != nullptr && self->state() == v1::DRAINING && pool_->Keys(1).empty()) {
      bool report = false;
      {
        absl::MutexLock lock(&mu_);
        report = drained_epoch_ != view->epoch();
        drained_epoch_ = view->epoch();
      }
      if (report) {
        spdlog::info("migration: drained (epoch {})", view->epoch());
        if (drained_) drained_();
      }
    }
    if (moved > 0) {
      absl::MutexLock lock(&mu_);
      kicked_ = true;  // more may remain: go again at once
    }
  }
}

size_t Migrator::Pass(const ClusterView& view) {
  // Group the blocks to move by destination; a replica set gets a copy on each owner.
  struct Batch {
    std::string address;
    std::vector<BlockKey> keys;
  };
  absl::flat_hash_map<std::string, Batch> by_owner;
  for (BlockKey& key : pool_->Keys(kKeysPerPass)) {
    if (view.Owns(options_.node_id, key)) continue;
    for (const v1::NodeInfo* owner : view.WriteOwners(key)) {
      Batch& b = by_owner[owner->id()];
      b.address = owner->address();
      b.keys.push_back(key);
    }
  }
  if (by_owner.empty()) return 0;

  absl::flat_hash_map<std::string, int> acked;  // key string → owners that took it
  absl::flat_hash_map<std::string, int> wanted;
  absl::flat_hash_map<std::string, BlockKey> keys_by_name;
  const absl::Time start = absl::Now();
  uint64_t sent_bytes = 0;
  for (auto& [owner_id, batch] : by_owner) {
    v1::DataPlane::Stub* stub = StubFor(batch.address);
    size_t i = 0;
    while (i < batch.keys.size()) {
      v1::BatchPutRequest req;
      std::vector<std::string> names;
      uint64_t bytes = 0;
      for (; i < batch.keys.size() && bytes < options_.batch_bytes; ++i) {
        auto handle = pool_->Get(batch.keys[i]);
        if (!handle.ok()) continue;  // evicted or removed meanwhile
        v1::PutRequest* item = req.add_items();
        ToProto(batch.keys[i], item->mutable_key());
        item->set_value(reinterpret_cast<const char*>(handle->data()), handle->size());
        item->set_checksum(handle->info().checksum);
        bytes += handle->size();
        std::string name = batch.keys[i].ToString();
        ++wanted[name];
        keys_by_name.emplace(name, batch.keys[i]);
        names.push_back(std::move(name));
      }
      if (req.items_size() == 0) continue;
      grpc::ClientContext ctx;
      ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
      ctx.AddMetadata(kEpochHeader, absl::StrCat(view.epoch()));
      v1::BatchPutResponse resp;
      grpc::Status s = stub->BatchPut(&ctx, req, &resp);
      if (!s.ok()) {
        spdlog::warn("migration: push of {} blocks to {} failed: {}", req.items_size(), owner_id,
                     s.error_message());
        break;  // keep the local copies; the next pass retries
      }
      for (int j = 0; j < resp.statuses_size() && j < static_cast<int>(names.size()); ++j) {
        if (resp.statuses(j).code() == 0) ++acked[names[j]];
      }
      sent_bytes += bytes;
      if (options_.rate_mbps > 0) {  // pace to the configured rate
        const absl::Duration due = absl::Seconds(sent_bytes / (options_.rate_mbps * 1e6));
        const absl::Duration spent = absl::Now() - start;
        if (due > spent) absl::SleepFor(due - spent);
      }
    }
  }
  size_t moved = 0;
  for (auto& [name, count] : acked) {
    if (count < wanted[name]) continue;  // every owner must have it before the copy goes
    if (pool_->Remove(keys_by_name.at(name)).ok()) ++moved;
  }
  if (moved > 0) {
    spdlog::info("migration: moved {} blocks ({} MiB) under epoch {}", moved, sent_bytes >> 20,
                 view.epoch());
    absl::MutexLock lock(&mu_);
    moved_ += moved;
  }
  return moved;
}

}  // namespace ems::node
