// Durable controller state in SQLite (WAL, synchronous=FULL): a write that returned OK
// survives a SIGKILL of the controller at any later moment.
#ifndef EMS_CONTROLLER_STATE_STORE_H_
#define EMS_CONTROLLER_STATE_STORE_H_

#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"

struct sqlite3;

namespace ems::controller {

// Records grouped in tables ("kind" below: clusters, jobs, maps, ...), each a key → blob map.
// Thread-safe: one connection behind a mutex (the controller's write rate is tiny).
class StateStore {
 public:
  // Opens or creates `path`. INTERNAL with SQLite's message on failure.
  static absl::StatusOr<std::unique_ptr<StateStore>> Open(const std::string& path);
  ~StateStore();
  StateStore(const StateStore&) = delete;
  StateStore& operator=(const StateStore&) = delete;

  absl::Status Put(absl::string_view kind, absl::string_view key, absl::string_view value);
  // nullopt if absent.
  absl::StatusOr<std::optional<std::string>> Get(absl::string_view kind, absl::string_view key);
  // OK whether or not the record existed.
  absl::Status Delete(absl::string_view kind, absl::string_view key);
  // One write of a batch: `value` set = put, nullopt = delete.
  struct Write {
    std::string kind;
    std::string key;
    std::optional<std::string> value;
  };
  // Applies every write in one transaction: all of them survive a crash, or none does.
  absl::Status Apply(const std::vector<Write>& writes);
  // Every record of `kind`, ordered by key.
  absl::StatusOr<std::vector<std::pair<std::string, std::string>>> List(absl::string_view kind);

 private:
  explicit StateStore(sqlite3* db) : db_(db) {}
  absl::Status Exec(const char* sql) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  absl::Mutex mu_;
  sqlite3* const db_ ABSL_PT_GUARDED_BY(mu_);
};

}  // namespace ems::controller

#endif  // EMS_CONTROLLER_STATE_STORE_H_
