// A small client of the Kubernetes API server's REST API (JSON over HTTP(S), bearer token):
// just the verbs the kubernetes backend needs. Thread-safe (one connection per call).
#ifndef EMS_CONTROLLER_BACKEND_KUBE_CLIENT_H_
#define EMS_CONTROLLER_BACKEND_KUBE_CLIENT_H_

#include <string>

#include "absl/status/statusor.h"
#include "controller/api/json_util.h"

namespace ems::controller {

struct KubeClientOptions {
  std::string api_server;  // "https://10.0.0.1:443" or "http://127.0.0.1:8001"
  std::string token_file;  // re-read on every call: projected tokens rotate
  std::string ca_file;     // "" = system CAs (https only)
  int timeout_seconds = 10;
};

class KubeClient {
 public:
  explicit KubeClient(KubeClientOptions options) : options_(std::move(options)) {}

  // Maps API-server answers to canonical codes: 404 NOT_FOUND, 409 on create ALREADY_EXISTS,
  // 409 otherwise ABORTED (resourceVersion conflict: re-read and retry), 401/403
  // PERMISSION_DENIED, 422/400 INVALID_ARGUMENT, others UNAVAILABLE. Messages carry the
  // server's Status message.
  absl::StatusOr<Json> Get(const std::string& path);
  absl::StatusOr<Json> Create(const std::string& collection_path, const Json& object);
  absl::StatusOr<Json> Replace(const std::string& path, const Json& object);
  // PATCH with a JSON merge patch (RFC 7386): only the fields in `patch` change; null deletes.
  absl::StatusOr<Json> MergePatch(const std::string& path, const Json& patch);
  absl::Status Delete(const std::string& path);

  // Percent-encodes a query value (label selectors hold '=' and ',').
  static std::string Escape(const std::string& s);

 private:
  absl::StatusOr<Json> Call(const std::string& method, const std::string& path, const Json* body);

  const KubeClientOptions options_;
};

}  // namespace ems::controller

#endif  // EMS_CONTROLLER_BACKEND_KUBE_CLIENT_H_
