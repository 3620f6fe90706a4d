#include "controller/auth/token_store.h"

#include "controller/api/errors.h"
#include "controller/api/json_util.h"
#include "controller/api/validation.h"
#include "controller/ids.h"
#include "spdlog/spdlog.h"

namespace ems::controller {
namespace {
constexpr char kKind[] = "token";
}  // namespace

absl::StatusOr<IssuedToken> TokenStore::Create(const std::string& project_id) {
  if (absl::Status s = api::ValidateProjectId(project_id); !s.ok()) return s;
  IssuedToken t{"emst-" + RandomHex(24), project_id, clock_->Now() + ttl_};
  Json record = {{"project_id", project_id}, {"expires_at", absl::ToUnixSeconds(t.expires_at)}};
  if (absl::Status s = store_->Put(kKind, Sha256Hex(t.token), DumpJson(record)); !s.ok()) {
    return s;
  }
  return t;
}

absl::StatusOr<std::string> TokenStore::Authenticate(absl::string_view token) {
  if (token.empty()) return api::AuthFailed("X-Auth-Token header is missing");
  auto blob = store_->Get(kKind, Sha256Hex(token));
  if (!blob.ok()) return blob.status();
  if (!blob->has_value()) return api::AuthFailed("token is invalid");
  auto record = ParseJson(**blob, "token record");
  if (!record.ok()) return absl::DataLossError("token record is corrupt");
  if (clock_->Now() >= absl::FromUnixSeconds(IntOr(*record, "expires_at", 0))) {
    return api::AuthFailed("token has expired");
  }
  return StrOr(*record, "project_id");
}

int TokenStore::PurgeExpired() {
  auto all = store_->List(kKind);
  if (!all.ok()) return 0;
  const absl::Time now = clock_->Now();
  int purged = 0;
  for (const auto& [hash, blob] : *all) {
    auto record = ParseJson(blob, "token record");
    if (record.ok() && now < absl::FromUnixSeconds(IntOr(*record, "expires_at", 0))) continue;
    if (store_->Delete(kKind, hash).ok()) ++purged;
  }
  if (purged > 0) spdlog::info("purged {} expired API tokens", purged);
  return purged;
}

}  // namespace ems::controller
