// Data-plane credentials (CreateCredentialInfo / ShowCredentialInfo): cdKeys bound to a
// project, persisted in the StateStore. Thread-safe.
#ifndef EMS_CONTROLLER_AUTH_CREDENTIAL_STORE_H_
#define EMS_CONTROLLER_AUTH_CREDENTIAL_STORE_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "common/clock.h"
#include "controller/state_store.h"

namespace ems::controller {

struct Credential {
  std::string project_id;
  std::string cd_key;    // 32 hex digits
  int64_t create_at_ms;  // Unix milliseconds ("createAt")
  int64_t seq = 0;       // creation order within the project; 0 in records written before it
};

class CredentialStore {
 public:
  static constexpr int kMaxPerProject = 16;

  CredentialStore(StateStore* store, Clock* clock) : store_(store), clock_(clock) {}

  // A new cdKey for the project. 400 EMS.00004000 once the project holds kMaxPerProject.
  absl::StatusOr<Credential> Create(const std::string& project_id);
  // The project's credentials in the order they were created (nodes take the first): by a
  // sequence number, not createAt, which a wall clock stepped back or one millisecond shared
  // by two keys would reorder.
  absl::StatusOr<std::vector<Credential>> List(const std::string& project_id);
  // True if `cd_key` is one of the project's keys (for the data plane's check).
  bool Verify(const std::string& project_id, const std::string& cd_key);

 private:
  StateStore* const store_;
  Clock* const clock_;
  // Serializes Create: its sequence number and the per-project cap read, then write.
  absl::Mutex create_mu_;
};

}  // namespace ems::controller

#endif  // EMS_CONTROLLER_AUTH_CREDENTIAL_STORE_H_
