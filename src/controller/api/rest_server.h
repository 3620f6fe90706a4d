// The EMS REST API over HTTP (cpp-httplib): authenticates X-Auth-Token, routes to
// api::Handlers, turns Status into {"error_code", "error_msg"}. Also serves POST /v1/tokens
// (admin: mints project tokens), /healthz and /metrics. Thread-safe.
#ifndef EMS_CONTROLLER_API_REST_SERVER_H_
#define EMS_CONTROLLER_API_REST_SERVER_H_

#include <atomic>
#include <memory>
#include <string>
#include <thread>

#include "absl/status/status.h"
#include "controller/api/handlers.h"
#include "controller/auth/token_store.h"

namespace httplib {
class Server;
struct Request;
struct Response;
}  // namespace httplib

namespace ems::controller::api {

struct RestServerOptions {
  std::string listen = "0.0.0.0:8080";  // host:port; port 0 picks a free one
  // Bearer of this token may mint project tokens ("" = nobody by token).
  std::string admin_token;
  // Requests from a loopback address may mint project tokens without the admin token, like a
  // local admin socket. Turn off where untrusted code shares the controller's host.
  bool loopback_token_create = true;
};

class RestServer {
 public:
  // `handlers` and `tokens` are not owned and must outlive the server.
  RestServer(Handlers* handlers, TokenStore* tokens, RestServerOptions options);
  ~RestServer();

  // Binds and starts serving on a background thread. INVALID_ARGUMENT for a malformed listen
  // address, UNAVAILABLE if the port cannot be bound.
  absl::Status Start();
  // The bound port (after Start).
  int port() const { return port_; }
  // Stops accepting and waits for in-flight requests. Idempotent.
  void Stop();

 private:
  using Method = absl::StatusOr<ApiReply> (Handlers::*)(const ApiRequest&);
  void Route(const char* verb, const char* pattern, Method method);
  void Serve(const httplib::Request& req, httplib::Response& res, Method method);
  void CreateToken(const httplib::Request& req, httplib::Response& res);
  void Metrics(httplib::Response& res);

  Handlers* const handlers_;
  TokenStore* const tokens_;
  const RestServerOptions options_;
  std::unique_ptr<httplib::Server> server_;
  std::thread thread_;
  int port_ = 0;
  // Relaxed: counters only feed /metrics.
  std::atomic<int64_t> requests_{0};
  std::atomic<int64_t> client_errors_{0};
  std::atomic<int64_t> server_errors_{0};
};

}  // namespace ems::controller::api

#endif  // EMS_CONTROLLER_API_REST_SERVER_H_
