#include "node/migrator.h"

#include <grpcpp/grpcpp.h>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/key_proto.h"
#include "common/metadata.h"
#include "node/data_service.h"
#include "spdlog/spdlog.h"

namespace ems::node {

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

bool Migrator::stopping() const {
  absl::MutexLock lock(&mu_);
  return stop_;
}

bool Migrator::SleepUnlessStopped(absl::Duration d) {
  absl::MutexLock lock(&mu_);
  auto stopped = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return stop_; };
  mu_.AwaitWithTimeout(absl::Condition(&stopped), d);
  return !stop_;
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
    // Under one map a block becomes misplaced only if a client put it without routing it
    // (epoch 0: a client given one node's address); a client routing by an older map is
    // refused (admission.h). So after a clean pass the pool is read again at the next map, or
    // after `rescan` for those: a full read of a pool of millions of keys every period would
    // cost more than the migrations it finds. A draining node is the exception: writes admitted
    // before the drain may seal after any pass, and it reads its (emptying) pool every period
    // until it has moved them too.
    const v1::NodeInfo* self = view->Find(options_.node_id);
    const bool draining = self != nullptr && self->state() == v1::DRAINING;
    PassResult pass;
    if (draining || view->epoch() != clean_epoch_ || absl::Now() - clean_at_ >= options_.rescan) {
      pass = Pass(*view);
      if (pass.clean) {
        clean_epoch_ = view->epoch();
        clean_at_ = absl::Now();
      }
    }
    // Drained only when no write is in flight either: one sealed after the report would be
    // stored, and its writer told so, on a node that is about to leave.
    if (draining && pool_->Keys(1).empty() && pool_->Stats().unsealed_blocks == 0) {
      bool report = false;
      {
        absl::MutexLock lock(&mu_);
        report = drained_epoch_ != view->epoch();
      }
      if (report) {
        spdlog::info("migration: drained (epoch {})", view->epoch());
        absl::Status s = drained_ ? drained_() : absl::OkStatus();
        if (s.ok()) {
          absl::MutexLock lock(&mu_);
          drained_epoch_ = view->epoch();
        } else {
          spdlog::warn("migration: cannot report the drain, retrying: {}", s.ToString());
        }
      }
    }
    if (pass.moved > 0) {
      absl::MutexLock lock(&mu_);
      kicked_ = true;  // more may remain: go again at once
    }
  }
}

Migrator::PassResult Migrator::Pass(const ClusterView& view) {
  PassResult result;
  Pace pace{.start = absl::Now()};
  for (size_t from = 0;;) {
    if (stopping()) {
      result.clean = false;
      break;
    }
    pool::Pool::KeyScan page = pool_->ScanKeys(from, options_.keys_per_page);
    PushPage(view, page.keys, pace, result);
    if (page.done) break;
    from = page.next;
  }
  if (result.moved > 0) {
    spdlog::info("migration: moved {} blocks ({} MiB) under epoch {}", result.moved,
                 pace.sent_bytes >> 20, view.epoch());
    absl::MutexLock lock(&mu_);
    moved_ += result.moved;
  }
  return result;
}

void Migrator::PushPage(const ClusterView& view, const std::vector<BlockKey>& keys, Pace& pace,
                        PassResult& result) {
  // Group the blocks to move by destination; a replica set gets a copy on each owner, and the
  // local copy goes only when every one of them acknowledged it.
  struct Batch {
    std::string address;
    std::vector<size_t> keys;  // indices into `keys`
  };
  absl::flat_hash_map<std::string, Batch> by_owner;
  std::vector<int> wanted(keys.size(), 0), acked(keys.size(), 0);
  for (size_t k = 0; k < keys.size(); ++k) {
    if (view.Owns(options_.node_id, keys[k])) continue;
    for (const v1::NodeInfo* owner : view.WriteOwners(keys[k])) {
      Batch& b = by_owner[owner->id()];
      b.address = owner->address();
      b.keys.push_back(k);
      ++wanted[k];
    }
  }
  if (by_owner.empty()) return;
  result.clean = false;  // there was something to move

  for (auto& [owner_id, batch] : by_owner) {
    v1::DataPlane::Stub* stub = StubFor(batch.address);
    size_t i = 0;
    while (i < batch.keys.size() && !stopping()) {
      v1::BatchPutRequest req;
      std::vector<size_t> sent;
      uint64_t bytes = 0;
      for (; i < batch.keys.size() && bytes < options_.batch_bytes; ++i) {
        const BlockKey& key = keys[batch.keys[i]];
        // Pin, not Get: a copy to the block's owner is no client's read, so it is neither
        // counted in the node's gets and hits nor kept recent for eviction (a block whose
        // push keeps failing would stay hot here, where no client reads it).
        auto handle = pool_->Pin(key);
        if (!handle.ok()) continue;  // evicted or removed meanwhile
        v1::PutRequest* item = req.add_items();
        ToProto(key, item->mutable_key());
        item->set_value(reinterpret_cast<const char*>(handle->data()), handle->size());
        item->set_checksum(handle->info().checksum);
        bytes += handle->size();
        sent.push_back(batch.keys[i]);
      }
      if (req.items_size() == 0) continue;
      grpc::ClientContext ctx;
      ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
      ctx.AddMetadata(kEpochHeader, absl::StrCat(view.epoch()));
      // A push, not a client's put: an owner a client removed one of these keys from since
      // (the remove raced this copy) refuses it and answers OK, and the copy here goes too.
      ctx.AddMetadata(kMigrationHeader, "1");
      if (options_.credential != nullptr) options_.credential->Present(ctx);
      v1::BatchPutResponse resp;
      grpc::Status s = stub->BatchPut(&ctx, req, &resp);
      if (!s.ok()) {
        spdlog::warn("migration: push of {} blocks to {} failed: {}", req.items_size(), owner_id,
                     s.error_message());
        break;  // keep the local copies; the next pass retries
      }
      for (int j = 0; j < resp.statuses_size() && j < static_cast<int>(sent.size()); ++j) {
        // A block another put is still writing there is not stored yet: keep this copy, and
        // the next pass offers it again.
        const v1::ItemStatus& st = resp.statuses(j);
        if (st.code() == 0 && !st.being_written()) ++acked[sent[j]];
      }
      pace.sent_bytes += bytes;
      if (options_.rate_mbps > 0) {  // pace to the configured rate
        const absl::Duration due = absl::Seconds(pace.sent_bytes / (options_.rate_mbps * 1e6));
        const absl::Duration spent = absl::Now() - pace.start;
        if (due > spent && !SleepUnlessStopped(due - spent)) break;
      }
    }
  }
  for (size_t k = 0; k < keys.size(); ++k) {
    if (wanted[k] == 0 || acked[k] < wanted[k]) continue;  // every owner must have it first
    if (pool_->Remove(keys[k]).ok()) ++result.moved;
  }
}

}  // namespace ems::node
