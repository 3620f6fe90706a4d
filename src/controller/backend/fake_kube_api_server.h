// A fake Kubernetes API server for tests of the kubernetes backend (no real one runs here).
// It serves the same paths, verbs and JSON shapes as the real API server for what the backend
// uses: nodes (list with labelSelector, get, JSON merge patch with resourceVersion checks
// answering 409 Conflict; update is Forbidden as deploy/k8s's RBAC makes it), ConfigMaps,
// Secrets (data must be base64) and DaemonSets (create/get/replace/delete under their API
// group's path, 409 AlreadyExists), and pods listed by labelSelector,
// which it derives like the DaemonSet controller would: one pod per node matching the DaemonSet's
// nodeSelector, not Ready while a Secret volume's Secret is missing. Errors are Status objects.
// Bearer token required. Thread-safe.
#ifndef EMS_CONTROLLER_BACKEND_FAKE_KUBE_API_SERVER_H_
#define EMS_CONTROLLER_BACKEND_FAKE_KUBE_API_SERVER_H_

#include <map>
#include <memory>
#include <string>
#include <thread>

#include "absl/synchronization/mutex.h"
#include "controller/api/json_util.h"

namespace httplib {
class Server;
struct Request;
struct Response;
}  // namespace httplib

namespace ems::controller {

class FakeKubeApiServer {
 public:
  explicit FakeKubeApiServer(std::string token);
  ~FakeKubeApiServer();

  // Listens on 127.0.0.1:<free port>.
  void Start();
  std::string url() const;

  // --- test controls ---
  void AddNode(const std::string& name, const std::map<std::string, std::string>& labels,
               bool ready = true);
  // The next `n` node replacements race a simulated concurrent writer: the node's
  // resourceVersion moves just before the PUT is checked, so it answers 409.
  void InjectNodeConflicts(int n);
  void SetPodsReady(bool ready);
  std::map<std::string, std::string> NodeLabels(const std::string& name);
  Json Object(const std::string& kind, const std::string& ns, const std::string& name);
  int conflicts_served();

  // True if `labels` satisfy a labelSelector ("k=v,k2!=v2,k3,!k4").
  static bool Matches(const Json& labels, const std::string& selector);

 private:
  void Handle(const httplib::Request& req, httplib::Response& res);
  void Reply(httplib::Response& res, int code, const Json& body);
  void Error(httplib::Response& res, int code, const std::string& reason, const std::string& msg);
  Json PodsLocked(const std::string& ns, const std::string& selector)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  std::string NextVersionLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const std::string token_;
  std::unique_ptr<httplib::Server> server_;
  std::thread thread_;
  int port_ = 0;

  absl::Mutex mu_;
  int64_t version_ ABSL_GUARDED_BY(mu_) = 100;
  std::map<std::string, Json> nodes_ ABSL_GUARDED_BY(mu_);
  // "configmaps/<ns>/<name>", "secrets/<ns>/<name>" and "daemonsets/<ns>/<name>"
  std::map<std::string, Json> objects_ ABSL_GUARDED_BY(mu_);
  int inject_conflicts_ ABSL_GUARDED_BY(mu_) = 0;
  int conflicts_served_ ABSL_GUARDED_BY(mu_) = 0;
  bool pods_ready_ ABSL_GUARDED_BY(mu_) = true;
};

}  // namespace ems::controller

#endif  // EMS_CONTROLLER_BACKEND_FAKE_KUBE_API_SERVER_H_
