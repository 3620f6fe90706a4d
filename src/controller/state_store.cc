#include "controller/state_store.h"

#include <fcntl.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"

namespace ems::controller {
namespace {

absl::Status SqliteError(sqlite3* db, absl::string_view what) {
  return absl::InternalError(absl::StrCat("sqlite ", what, ": ", sqlite3_errmsg(db)));
}

// Owns a prepared statement; finalizes it on every path.
class Statement {
 public:
  Statement(sqlite3* db, const char* sql) {
    rc_ = sqlite3_prepare_v2(db, sql, -1, &stmt_, nullptr);
  }
  ~Statement() { sqlite3_finalize(stmt_); }
  bool ok() const { return rc_ == SQLITE_OK; }
  sqlite3_stmt* get() { return stmt_; }
  void BindText(int i, absl::string_view s) {
    sqlite3_bind_text(stmt_, i, s.data(), static_cast<int>(s.size()), SQLITE_TRANSIENT);
  }
  void BindBlob(int i, absl::string_view s) {
    sqlite3_bind_blob(stmt_, i, s.data(), static_cast<int>(s.size()), SQLITE_TRANSIENT);
  }
  std::string Column(int i) {
    const void* p = sqlite3_column_blob(stmt_, i);
    return std::string(static_cast<const char*>(p), sqlite3_column_bytes(stmt_, i));
  }

 private:
  sqlite3_stmt* stmt_ = nullptr;
  int rc_;
};

// The state holds every project's cdKeys in the clear: only the controller's user may read
// it, whatever the umask, and a file an older controller created readable is tightened.
// SQLite gives its -wal and -shm files the database's mode when it creates them.
absl::Status RestrictToOwner(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0 || ::fchmod(fd, 0600) != 0) {
    absl::Status s = absl::InternalError(
        absl::StrCat("cannot make state database ", path, " private: ", std::strerror(errno)));
    if (fd >= 0) ::close(fd);
    return s;
  }
  ::close(fd);
  for (const char* suffix : {"-wal", "-shm"}) {
    const std::string side = path + suffix;
    if (::chmod(side.c_str(), 0600) != 0 && errno != ENOENT) {
      return absl::InternalError(
          absl::StrCat("cannot make ", side, " private: ", std::strerror(errno)));
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::unique_ptr<StateStore>> StateStore::Open(const std::string& path) {
  EMS_RETURN_IF_ERROR(RestrictToOwner(path));
  sqlite3* db = nullptr;
  if (sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, nullptr) !=
      SQLITE_OK) {
    absl::Status s = absl::InternalError(
        absl::StrCat("cannot open state database ", path, ": ", db ? sqlite3_errmsg(db) : "?"));
    sqlite3_close(db);
    return s;
  }
  std::unique_ptr<StateStore> store(new StateStore(db));
  absl::MutexLock lock(&store->mu_);
  // One controller per state. A second one given the same --state_dir by mistake would run
  // the same clusters' jobs and resyncs against the first. In EXCLUSIVE locking mode the
  // connection keeps the database's lock for its whole life; taking it here, before any wait
  // for a busy database is set, makes that second controller fail at once.
  if (absl::Status s = store->Exec("PRAGMA locking_mode=EXCLUSIVE"); !s.ok()) return s;
  if (absl::Status s = store->Exec("BEGIN EXCLUSIVE"); !s.ok()) {
    if (sqlite3_errcode(db) != SQLITE_BUSY) return s;
    return absl::FailedPreconditionError(
        absl::StrCat("state database ", path,
                     " is in use by another process (an ems-controller with the same "
                     "--state_dir?)"));
  }
  if (absl::Status s = store->Exec("COMMIT"); !s.ok()) return s;
  sqlite3_busy_timeout(db, 5000);
  if (absl::Status s = store->Exec("PRAGMA journal_mode=WAL"); !s.ok()) return s;
  // FULL: a commit is on disk before Put returns, so an acknowledged write survives SIGKILL
  // and power loss alike.
  if (absl::Status s = store->Exec("PRAGMA synchronous=FULL"); !s.ok()) return s;
  if (absl::Status s =
          store->Exec("CREATE TABLE IF NOT EXISTS records (kind TEXT NOT NULL, key TEXT NOT NULL, "
                      "value BLOB NOT NULL, PRIMARY KEY (kind, key))");
      !s.ok()) {
    return s;
  }
  return store;
}

StateStore::~StateStore() {
  absl::MutexLock lock(&mu_);
  sqlite3_close(db_);
}

absl::Status StateStore::Exec(const char* sql) {
  char* err = nullptr;
  if (sqlite3_exec(db_, sql, nullptr, nullptr, &err) != SQLITE_OK) {
    absl::Status s = absl::InternalError(absl::StrCat("sqlite: ", sql, ": ", err ? err : "?"));
    sqlite3_free(err);
    return s;
  }
  return absl::OkStatus();
}

absl::Status StateStore::Put(absl::string_view kind, absl::string_view key,
                             absl::string_view value) {
  absl::MutexLock lock(&mu_);
  Statement st(db_, "INSERT OR REPLACE INTO records (kind, key, value) VALUES (?, ?, ?)");
  if (!st.ok()) return SqliteError(db_, "prepare put");
  st.BindText(1, kind);
  st.BindText(2, key);
  st.BindBlob(3, value);
  if (sqlite3_step(st.get()) != SQLITE_DONE) return SqliteError(db_, "put");
  return absl::OkStatus();
}

absl::StatusOr<std::optional<std::string>> StateStore::Get(absl::string_view kind,
                                                           absl::string_view key) {
  absl::MutexLock lock(&mu_);
  Statement st(db_, "SELECT value FROM records WHERE kind = ? AND key = ?");
  if (!st.ok()) return SqliteError(db_, "prepare get");
  st.BindText(1, kind);
  st.BindText(2, key);
  int rc = sqlite3_step(st.get());
  if (rc == SQLITE_DONE) return std::optional<std::string>();
  if (rc != SQLITE_ROW) return SqliteError(db_, "get");
  return std::optional<std::string>(st.Column(0));
}

absl::Status StateStore::Delete(absl::string_view kind, absl::string_view key) {
  absl::MutexLock lock(&mu_);
  Statement st(db_, "DELETE FROM records WHERE kind = ? AND key = ?");
  if (!st.ok()) return SqliteError(db_, "prepare delete");
  st.BindText(1, kind);
  st.BindText(2, key);
  if (sqlite3_step(st.get()) != SQLITE_DONE) return SqliteError(db_, "delete");
  return absl::OkStatus();
}

absl::Status StateStore::Apply(const std::vector<Write>& writes) {
  absl::MutexLock lock(&mu_);
  EMS_RETURN_IF_ERROR(Exec("BEGIN IMMEDIATE"));
  for (const Write& w : writes) {
    Statement st(db_, w.value ? "INSERT OR REPLACE INTO records (kind, key, value) VALUES (?, ?, ?)"
                              : "DELETE FROM records WHERE kind = ? AND key = ?");
    absl::Status s;
    if (!st.ok()) {
      s = SqliteError(db_, "prepare batch");
    } else {
      st.BindText(1, w.kind);
      st.BindText(2, w.key);
      if (w.value) st.BindBlob(3, *w.value);
      if (sqlite3_step(st.get()) != SQLITE_DONE) s = SqliteError(db_, "batch write");
    }
    if (!s.ok()) {
      Exec("ROLLBACK").IgnoreError();  // the batch's error is the one worth reporting
      return s;
    }
  }
  absl::Status committed = Exec("COMMIT");
  // A COMMIT that fails (disk full, I/O error) may leave the transaction open, and then every
  // later BEGIN fails and every Put joins a transaction nobody commits.
  if (!committed.ok() && sqlite3_get_autocommit(db_) == 0) Exec("ROLLBACK").IgnoreError();
  return committed;
}

absl::StatusOr<std::vector<std::pair<std::string, std::string>>> StateStore::List(
    absl::string_view kind) {
  absl::MutexLock lock(&mu_);
  Statement st(db_, "SELECT key, value FROM records WHERE kind = ? ORDER BY key");
  if (!st.ok()) return SqliteError(db_, "prepare list");
  st.BindText(1, kind);
  std::vector<std::pair<std::string, std::string>> out;
  int rc;
  while ((rc = sqlite3_step(st.get())) == SQLITE_ROW) out.emplace_back(st.Column(0), st.Column(1));
  if (rc != SQLITE_DONE) return SqliteError(db_, "list");
  return out;
}

}  // namespace ems::controller
