// Project-scoped API tokens (X-Auth-Token): issued by the admin path, valid for 24 h, persisted
// as SHA-256 hashes so the state file never holds a usable token. Thread-safe.
#ifndef EMS_CONTROLLER_AUTH_TOKEN_STORE_H_
#define EMS_CONTROLLER_AUTH_TOKEN_STORE_H_

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "common/clock.h"
#include "controller/state_store.h"

namespace ems::controller {

struct IssuedToken {
  std::string token;
  std::string project_id;
  absl::Time expires_at;
};

class TokenStore {
 public:
  static constexpr absl::Duration kDefaultTtl = absl::Hours(24);

  // `store` and `clock` are not owned and must outlive this.
  TokenStore(StateStore* store, Clock* clock, absl::Duration ttl = kDefaultTtl)
      : store_(store), clock_(clock), ttl_(ttl) {}

  // A new token for `project_id`. INVALID_ARGUMENT (EMS.00004000) for a malformed project id.
  absl::StatusOr<IssuedToken> Create(const std::string& project_id);
  // The project the token is bound to. UNAUTHENTICATED (common.01010018) when the token is
  // missing, unknown or expired; the message says which.
  absl::StatusOr<std::string> Authenticate(absl::string_view token);
  // Forgets expired tokens; returns how many.
  int PurgeExpired();

 private:
  StateStore* const store_;
  Clock* const clock_;
  const absl::Duration ttl_;
};

}  // namespace ems::controller

#endif  // EMS_CONTROLLER_AUTH_TOKEN_STORE_H_
