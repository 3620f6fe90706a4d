#include "controller/api/rest_server.h"

#include <httplib.h>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/exclusive_port.h"
#include "common/secret.h"
#include "controller/api/errors.h"
#include "controller/ids.h"
#include "spdlog/spdlog.h"

namespace ems::controller::api {
namespace {

constexpr char kJson[] = "application/json;charset=UTF-8";
constexpr size_t kMaxBody = 1 << 20;

void WriteError(httplib::Response& res, const absl::Status& status) {
  HttpError e = ToHttp(status);
  res.status = e.http_status;
  res.set_content(e.body, kJson);
}

bool IsLoopback(const std::string& addr) {
  return addr == "127.0.0.1" || addr == "::1" || addr.rfind("127.", 0) == 0 ||
         addr == "::ffff:127.0.0.1";
}

// Constant-time comparison, so response timing does not reveal the admin token.
}  // namespace

RestServer::RestServer(Handlers* handlers, TokenStore* tokens, RestServerOptions options)
    : handlers_(handlers),
      tokens_(tokens),
      options_(std::move(options)),
      server_(std::make_unique<httplib::Server>()) {}

RestServer::~RestServer() { Stop(); }

void RestServer::Route(const char* verb, const char* pattern, Method method) {
  auto handler = [this, method](const httplib::Request& req, httplib::Response& res) {
    Serve(req, res, method);
  };
  const std::string v = verb;
  if (v == "GET") server_->Get(pattern, handler);
  if (v == "POST") server_->Post(pattern, handler);
  if (v == "DELETE") server_->Delete(pattern, handler);
}

void RestServer::Serve(const httplib::Request& req, httplib::Response& res, Method method) {
  requests_.fetch_add(1, std::memory_order_relaxed);
  auto project = tokens_->Authenticate(req.get_header_value("X-Auth-Token"));
  absl::StatusOr<ApiReply> reply = absl::UnknownError("unreachable");
  if (!project.ok()) {
    reply = project.status();
  } else {
    ApiRequest r;
    r.project_id = *project;
    // Ids are stored in one spelling (CanonicalUuid): a cluster is found whatever the case
    // its id is given in.
    auto canonical = [](std::string v) { return IsUuid(v) ? CanonicalUuid(v) : v; };
    for (size_t i = 1; i < req.matches.size(); ++i) {
      r.path.push_back(canonical(req.matches[i].str()));
    }
    for (const auto& [k, v] : req.params) r.query.emplace(k, canonical(v));  // first value wins
    r.body = req.body;
    reply = (handlers_->*method)(r);
  }
  if (!reply.ok()) {
    WriteError(res, reply.status());
    (res.status >= 500 ? server_errors_ : client_errors_).fetch_add(1, std::memory_order_relaxed);
    spdlog::debug("{} {} -> {} {}", req.method, req.path, res.status,
                  std::string(reply.status().message()));
    return;
  }
  res.status = reply->http_status;
  if (!reply->body.is_null()) res.set_content(DumpJson(reply->body), kJson);
  spdlog::debug("{} {} -> {}", req.method, req.path, res.status);
}

void RestServer::CreateToken(const httplib::Request& req, httplib::Response& res) {
  requests_.fetch_add(1, std::memory_order_relaxed);
  const std::string presented = req.get_header_value("X-Auth-Token");
  const bool admin = !options_.admin_token.empty() && SameSecret(presented, options_.admin_token);
  // A proxy on this host (the TLS proxy docs/controller.md suggests) connects from loopback
  // for every client it serves: a request it says it forwarded is not a local one.
  const bool forwarded = req.has_header("Forwarded") || req.has_header("X-Forwarded-For") ||
                         req.has_header("X-Real-IP");
  if (!admin && !(options_.loopback_token_create && IsLoopback(req.remote_addr) && !forwarded)) {
    client_errors_.fetch_add(1, std::memory_order_relaxed);
    return WriteError(
        res, AuthFailed(absl::StrCat("minting tokens needs the admin token (admin.token in the "
                                     "controller's --state_dir) or a loopback connection",
                                     forwarded ? " not forwarded by a proxy" : "")));
  }
  auto body = ParseJson(req.body, "request body");
  if (!body.ok()) return WriteError(res, body.status());
  const std::string project = StrOr(*body, "project_id");
  auto token = tokens_->Create(project);
  if (!token.ok()) return WriteError(res, token.status());
  spdlog::info("issued a token for project {} (expires {})", project,
               FormatApiTime(token->expires_at));
  Json out = {{"token", token->token},
              {"project_id", token->project_id},
              {"expires_at", FormatApiTime(token->expires_at)}};
  res.status = 201;
  res.set_content(DumpJson(out), kJson);
}

void RestServer::Metrics(httplib::Response& res) {
  res.set_content(
      absl::StrCat("# TYPE ems_controller_http_requests_total counter\n",
                   "ems_controller_http_requests_total ", requests_.load(std::memory_order_relaxed),
                   "\n# TYPE ems_controller_http_client_errors_total counter\n",
                   "ems_controller_http_client_errors_total ",
                   client_errors_.load(std::memory_order_relaxed),
                   "\n# TYPE ems_controller_http_server_errors_total counter\n",
                   "ems_controller_http_server_errors_total ",
                   server_errors_.load(std::memory_order_relaxed), "\n"),
      "text/plain; version=0.0.4");
}

absl::Status RestServer::Start() {
  const size_t colon = options_.listen.rfind(':');
  int port = -1;
  if (colon == std::string::npos || !absl::SimpleAtoi(options_.listen.substr(colon + 1), &port) ||
      port < 0 || port > 65535) {
    return absl::InvalidArgumentError(
        absl::StrCat("--listen must be HOST:PORT, got '", options_.listen, "'"));
  }
  std::string host = options_.listen.substr(0, colon);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  server_->set_payload_max_length(kMaxBody);
  // Order matters: httplib tries patterns in registration order, so the fixed
  // /v1/clusters/labels and /v1/clusters/enroll come before /v1/clusters/{cluster_id}.
  Route("GET", "/v1/releases", &Handlers::ListReleases);
  Route("GET", "/v1/features", &Handlers::ListFeatures);
  Route("GET", "/v1/clusters/labels", &Handlers::ListClustersLabels);
  Route("POST", "/v1/clusters/enroll", &Handlers::EnrollCluster);
  Route("POST", "/v1/clusters", &Handlers::CreateCluster);
  Route("GET", "/v1/clusters", &Handlers::ListClusters);
  Route("GET", R"(/v1/clusters/([^/]+))", &Handlers::ShowCluster);
  Route("DELETE", R"(/v1/clusters/([^/]+))", &Handlers::DeleteClusterById);
  Route("POST", R"(/v1/clusters/([^/]+)/authorization)", &Handlers::AuthorizeCluster);
  Route("POST", R"(/v1/clusters/([^/]+)/expand)", &Handlers::ExpandCluster);
  Route("POST", R"(/v1/clusters/([^/]+)/shrink)", &Handlers::ShrinkCluster);
  Route("POST", R"(/v1/ems/([^/]+)/credentials)", &Handlers::CreateCredentialInfo);
  Route("GET", R"(/v1/ems/([^/]+)/credentials)", &Handlers::ShowCredentialInfo);
  Route("POST", "/v1/jobs/cancel", &Handlers::CancelJobs);
  Route("GET", "/v1/jobs", &Handlers::ListJobs);
  Route("GET", R"(/v1/jobs/([^/]+))", &Handlers::ShowJob);
  server_->Post("/v1/tokens", [this](const httplib::Request& req, httplib::Response& res) {
    CreateToken(req, res);
  });
  server_->Get("/healthz", [](const httplib::Request&, httplib::Response& res) {
    res.set_content("ok\n", "text/plain");
  });
  server_->Get("/metrics",
               [this](const httplib::Request&, httplib::Response& res) { Metrics(res); });
  // Anything unrouted (and httplib's own 4xx such as 413) still answers in the API's format.
  server_->set_error_handler([](const httplib::Request& req, httplib::Response& res) {
    if (!res.body.empty()) return;
    const std::string msg = res.status == 404
                                ? absl::StrCat("no such API: ", req.method, " ", req.path)
                                : absl::StrCat("request rejected with HTTP ", res.status);
    Json body = {{"error_code", res.status == 404 ? kCodeNoSuchApi : kCodeInvalidParameter},
                 {"error_msg", msg}};
    res.set_content(DumpJson(body), kJson);
  });
  ListenExclusively(*server_);  // a second controller given this port fails, naming it
  if (port == 0) {
    port_ = server_->bind_to_any_port(host);
    if (port_ <= 0) return absl::UnavailableError(absl::StrCat("cannot bind ", options_.listen));
  } else {
    if (!server_->bind_to_port(host, port)) {
      return absl::UnavailableError(absl::StrCat("cannot bind ", options_.listen));
    }
    port_ = port;
  }
  thread_ = std::thread([this] { server_->listen_after_bind(); });
  // httplib's stop() is a no-op until the accept loop runs: wait for it, so Stop() after
  // Start() always ends the loop.
  while (!server_->is_running()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  return absl::OkStatus();
}

void RestServer::Stop() {
  if (!thread_.joinable()) return;
  server_->stop();
  thread_.join();
}

}  // namespace ems::controller::api
