#include "controller/backend/kube_client.h"

#include <httplib.h>

#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"

namespace ems::controller {
namespace {

absl::Status StatusFromHttp(int code, const std::string& method, const std::string& path,
                            const std::string& body) {
  auto j = ParseJson(body, "API server answer");
  std::string msg = j.ok() ? StrOr(*j, "message", body) : body.substr(0, 200);
  msg = absl::StrCat(method, " ", path, ": HTTP ", code, ": ", msg);
  switch (code) {
    case 404:
      return absl::NotFoundError(msg);
    case 409:
      return method == "POST" ? absl::AlreadyExistsError(msg) : absl::AbortedError(msg);
    case 401:
    case 403:
      return absl::PermissionDeniedError(msg);
    case 400:
    case 422:
      return absl::InvalidArgumentError(msg);
    default:
      return absl::UnavailableError(msg);
  }
}

}  // namespace

std::string KubeClient::Escape(const std::string& s) {
  static const char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~' || c == '/') {
      out.push_back(static_cast<char>(c));
    } else {
      out += {'%', kHex[c >> 4], kHex[c & 15]};
    }
  }
  return out;
}

absl::StatusOr<Json> KubeClient::Call(const std::string& method, const std::string& path,
                                      const Json* body) {
  httplib::Client client(options_.api_server);
  if (!client.is_valid()) {
    return absl::InvalidArgumentError(absl::StrCat("bad API server URL ", options_.api_server));
  }
  client.set_connection_timeout(options_.timeout_seconds);
  client.set_read_timeout(options_.timeout_seconds);
  client.set_write_timeout(options_.timeout_seconds);
  if (!options_.ca_file.empty()) client.set_ca_cert_path(options_.ca_file.c_str());
  httplib::Headers headers = {{"Accept", "application/json"}};
  if (!options_.token_file.empty()) {
    std::ifstream in(options_.token_file);
    std::stringstream ss;
    ss << in.rdbuf();
    const std::string token(absl::StripAsciiWhitespace(ss.str()));
    if (token.empty()) {
      return absl::PermissionDeniedError(
          absl::StrCat("no service-account token in ", options_.token_file));
    }
    headers.emplace("Authorization", "Bearer " + token);
  }
  const std::string payload = body ? DumpJson(*body) : "";
  httplib::Result r =
      method == "GET"    ? client.Get(path.c_str(), headers)
      : method == "POST" ? client.Post(path.c_str(), headers, payload, "application/json")
      : method == "PUT"  ? client.Put(path.c_str(), headers, payload, "application/json")
      : method == "PATCH"
          ? client.Patch(path.c_str(), headers, payload, "application/merge-patch+json")
          : client.Delete(path.c_str(), headers);
  if (!r) {
    return absl::UnavailableError(
        absl::StrCat(method, " ", path, ": ", httplib::to_string(r.error())));
  }
  if (r->status < 200 || r->status >= 300) {
    return StatusFromHttp(r->status, method, path, r->body);
  }
  if (r->body.empty()) return Json::object();
  auto j = ParseJson(r->body, "API server answer");
  if (!j.ok() || !j->is_object()) {
    return absl::UnavailableError(absl::StrCat(method, " ", path, ": not a JSON object"));
  }
  // Callers index metadata freely: make sure it is an object when present.
  if (j->contains("metadata") && !(*j)["metadata"].is_object()) {
    return absl::UnavailableError(absl::StrCat(method, " ", path, ": metadata is not an object"));
  }
  return j;
}

absl::StatusOr<Json> KubeClient::Get(const std::string& path) { return Call("GET", path, nullptr); }

absl::StatusOr<Json> KubeClient::Create(const std::string& collection_path, const Json& object) {
  return Call("POST", collection_path, &object);
}

absl::StatusOr<Json> KubeClient::Replace(const std::string& path, const Json& object) {
  return Call("PUT", path, &object);
}

absl::StatusOr<Json> KubeClient::MergePatch(const std::string& path, const Json& patch) {
  return Call("PATCH", path, &patch);
}

absl::Status KubeClient::Delete(const std::string& path) {
  return Call("DELETE", path, nullptr).status();
}

}  // namespace ems::controller
