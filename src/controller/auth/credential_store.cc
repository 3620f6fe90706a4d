#include "controller/auth/credential_store.h"

#include <algorithm>
#include <tuple>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "controller/api/errors.h"
#include "controller/api/json_util.h"
#include "controller/ids.h"

namespace ems::controller {
namespace {
constexpr char kKind[] = "credential";
}  // namespace

absl::StatusOr<Credential> CredentialStore::Create(const std::string& project_id) {
  absl::MutexLock lock(&create_mu_);
  auto existing = List(project_id);
  if (!existing.ok()) return existing.status();
  if (existing->size() >= kMaxPerProject) {
    return api::RangeError("credentials", "count", false, std::to_string(kMaxPerProject));
  }
  const int64_t seq = existing->empty() ? 1 : existing->back().seq + 1;
  Credential c{project_id, RandomHex(16), absl::ToUnixMillis(clock_->Now()), seq};
  Json record = {{"projectId", c.project_id},
                 {"cdKey", c.cd_key},
                 {"createAt", c.create_at_ms},
                 {"seq", c.seq}};
  // project/cdKey: "/" cannot occur in a project id, so one project's prefix never matches
  // another's.
  absl::Status s = store_->Put(kKind, absl::StrCat(project_id, "/", c.cd_key), DumpJson(record));
  if (!s.ok()) return s;
  return c;
}

absl::StatusOr<std::vector<Credential>> CredentialStore::List(const std::string& project_id) {
  auto all = store_->List(kKind);
  if (!all.ok()) return all.status();
  std::vector<Credential> out;
  const std::string prefix = project_id + "/";
  for (const auto& [key, blob] : *all) {
    if (!absl::StartsWith(key, prefix)) continue;
    auto j = ParseJson(blob, "credential record");
    if (!j.ok()) return absl::DataLossError(absl::StrCat("credential ", key, " is corrupt"));
    out.push_back({project_id, StrOr(*j, "cdKey"), IntOr(*j, "createAt", 0), IntOr(*j, "seq", 0)});
  }
  // Records without a sequence number (seq 0) predate it: they keep their createAt order,
  // ahead of every later key.
  std::stable_sort(out.begin(), out.end(), [](const Credential& a, const Credential& b) {
    return std::tie(a.seq, a.create_at_ms) < std::tie(b.seq, b.create_at_ms);
  });
  return out;
}

bool CredentialStore::Verify(const std::string& project_id, const std::string& cd_key) {
  auto record = store_->Get(kKind, absl::StrCat(project_id, "/", cd_key));
  return record.ok() && record->has_value();
}

}  // namespace ems::controller
