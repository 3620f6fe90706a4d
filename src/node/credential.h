// The project credential (cdKey) a node requires from clients. It can change while the node
// serves: a credential created after the node started reaches it by a rewritten key file (the
// local backend) or an updated Kubernetes Secret, without a restart that would drop the arena.
#ifndef EMS_NODE_CREDENTIAL_H_
#define EMS_NODE_CREDENTIAL_H_

#include <grpcpp/client_context.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"

namespace ems::node {

// Thread-safe.
class Credential {
 public:
  explicit Credential(std::string key = "") : key_(std::move(key)) {}
  // OK when no key is required or `given` is it; UNAUTHENTICATED naming `where` otherwise.
  absl::Status Check(const std::string& node_id, absl::string_view given,
                     absl::string_view where) const;
  std::string Get() const;
  // Adds the current key to an outgoing call (kCdKeyHeader), if there is one: the node's
  // calls to other nodes (migration) and to the controller (membership). Read at each call, so
  // a key created after the node started is presented once its key file has it.
  void Present(grpc::ClientContext& ctx) const;
  void Set(std::string key);
  // Changes whenever the key does: a check that passed at one generation holds until the next.
  uint64_t generation() const { return generation_.load(std::memory_order_acquire); }

 private:
  mutable absl::Mutex mu_;
  std::string key_ ABSL_GUARDED_BY(mu_);  // "" = none required
  std::atomic<uint64_t> generation_{0};
};

// The credential in `path`: the whole file with surrounding whitespace removed. A file that
// cannot be read is an error, never "no credential": a mistyped path or an unmounted Secret
// must not turn authentication off.
absl::StatusOr<std::string> ReadCdKeyFile(const std::string& path);

// Re-reads `path` every `period` and sets `credential` to what it holds now. A read that fails
// keeps the current key (a Secret update swaps files; a moment without one must not open the
// node). Stops when destroyed.
class CredentialFileWatcher {
 public:
  CredentialFileWatcher(std::string path, std::shared_ptr<Credential> credential,
                        absl::Duration period);
  ~CredentialFileWatcher();

 private:
  void Run();

  const std::string path_;
  const std::shared_ptr<Credential> credential_;
  const absl::Duration period_;
  absl::Notification stop_;
  std::thread thread_;
};

}  // namespace ems::node

#endif  // EMS_NODE_CREDENTIAL_H_
