#include "controller/backend/fake_kube_api_server.h"

#include <httplib.h>

#include <regex>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace ems::controller {

FakeKubeApiServer::FakeKubeApiServer(std::string token)
    : token_(std::move(token)), server_(std::make_unique<httplib::Server>()) {}

FakeKubeApiServer::~FakeKubeApiServer() {
  if (thread_.joinable()) {
    server_->stop();
    thread_.join();
  }
}

void FakeKubeApiServer::Start() {
  auto h = [this](const httplib::Request& req, httplib::Response& res) { Handle(req, res); };
  server_->Get(".*", h);
  server_->Post(".*", h);
  server_->Put(".*", h);
  server_->Patch(".*", h);
  server_->Delete(".*", h);
  port_ = server_->bind_to_any_port("127.0.0.1");
  thread_ = std::thread([this] { server_->listen_after_bind(); });
  while (!server_->is_running()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
}

std::string FakeKubeApiServer::url() const { return absl::StrCat("http://127.0.0.1:", port_); }

bool FakeKubeApiServer::Matches(const Json& labels, const std::string& selector) {
  for (absl::string_view term : absl::StrSplit(selector, ',', absl::SkipEmpty())) {
    std::string t(term);
    auto value_of = [&](const std::string& k) -> const Json* {
      return labels.is_object() && labels.contains(k) ? &labels[k] : nullptr;
    };
    size_t pos;
    if ((pos = t.find("!=")) != std::string::npos) {
      const Json* v = value_of(t.substr(0, pos));
      if (v != nullptr && *v == t.substr(pos + 2)) return false;
    } else if ((pos = t.find('=')) != std::string::npos) {
      const size_t vpos = t.compare(pos, 2, "==") == 0 ? pos + 2 : pos + 1;
      const Json* v = value_of(t.substr(0, pos));
      if (v == nullptr || *v != t.substr(vpos)) return false;
    } else if (!t.empty() && t[0] == '!') {
      if (value_of(t.substr(1)) != nullptr) return false;
    } else if (value_of(t) == nullptr) {
      return false;
    }
  }
  return true;
}

void FakeKubeApiServer::Reply(httplib::Response& res, int code, const Json& body) {
  res.status = code;
  res.set_content(DumpJson(body), "application/json");
}

void FakeKubeApiServer::Error(httplib::Response& res, int code, const std::string& reason,
                              const std::string& msg) {
  Reply(res, code,
        {{"kind", "Status"},
         {"apiVersion", "v1"},
         {"metadata", Json::object()},
         {"status", "Failure"},
         {"message", msg},
         {"reason", reason},
         {"code", code}});
}

std::string FakeKubeApiServer::NextVersionLocked() { return std::to_string(++version_); }

Json FakeKubeApiServer::PodsLocked(const std::string& ns, const std::string& selector) {
  Json items = Json::array();
  int ip = 1;
  for (const auto& [key, ds] : objects_) {
    if (key.rfind("daemonsets/" + ns + "/", 0) != 0) continue;
    const Json& tmpl = ds["spec"]["template"];
    const Json labels = tmpl["metadata"].value("labels", Json::object());
    const Json node_selector = tmpl["spec"].value("nodeSelector", Json::object());
    // The kubelet starts no container until every non-optional Secret volume can be mounted.
    bool mountable = true;
    for (const Json& v : tmpl["spec"].value("volumes", Json::array())) {
      if (!v.contains("secret") || v["secret"].value("optional", false)) continue;
      mountable &=
          objects_.contains(absl::StrCat("secrets/", ns, "/", StrOr(v["secret"], "secretName")));
    }
    for (const auto& [name, node] : nodes_) {
      ++ip;
      const Json node_labels = node["metadata"].value("labels", Json::object());
      bool scheduled = true;
      for (const auto& [k, v] : node_selector.items()) {
        scheduled &= node_labels.contains(k) && node_labels[k] == v;
      }
      if (!scheduled || !Matches(labels, selector)) continue;
      items.push_back(
          {{"metadata",
            {{"name", absl::StrCat(ds["metadata"]["name"].get<std::string>(), "-", name)},
             {"namespace", ns},
             {"labels", labels}}},
           {"spec", {{"nodeName", name}}},
           {"status",
            {{"podIP", absl::StrCat("10.0.0.", ip)},
             {"conditions",
              {{{"type", "Ready"}, {"status", pods_ready_ && mountable ? "True" : "False"}}}}}}});
    }
  }
  return {{"kind", "PodList"},
          {"apiVersion", "v1"},
          {"metadata", {{"resourceVersion", std::to_string(version_)}}},
          {"items", items}};
}

void FakeKubeApiServer::Handle(const httplib::Request& req, httplib::Response& res) {
  if (req.get_header_value("Authorization") != "Bearer " + token_) {
    return Error(res, 401, "Unauthorized", "Unauthorized");
  }
  absl::MutexLock lock(&mu_);
  const std::string& m = req.method;
  std::smatch match;
  static const std::regex kNodes(R"(/api/v1/nodes)");
  static const std::regex kNode(R"(/api/v1/nodes/([^/]+))");
  static const std::regex kPods(R"(/api/v1/namespaces/([^/]+)/pods)");
  // Namespaced objects: ConfigMaps and Secrets in the core group, DaemonSets in apps/v1 (a
  // kind under the other group is a 404, as on the real server).
  static const std::regex kObjects(
      R"(/(api/v1|apis/apps/v1)/namespaces/([^/]+)/(configmaps|secrets|daemonsets)(?:/([^/]+))?)");
  const std::string selector = req.get_param_value("labelSelector");
  Json body;
  if (m == "POST" || m == "PUT" || m == "PATCH") {
    auto parsed = ParseJson(req.body, "body");
    if (!parsed.ok() || !parsed->is_object() || !parsed->contains("metadata")) {
      return Error(res, 400, "BadRequest", "body must be an object with metadata");
    }
    body = *parsed;
  }
  if (m == "GET" && std::regex_match(req.path, kNodes)) {
    Json items = Json::array();
    for (const auto& [name, node] : nodes_) {
      if (Matches(node["metadata"].value("labels", Json::object()), selector)) {
        items.push_back(node);
      }
    }
    return Reply(res, 200,
                 {{"kind", "NodeList"},
                  {"apiVersion", "v1"},
                  {"metadata", {{"resourceVersion", std::to_string(version_)}}},
                  {"items", items}});
  }
  if (std::regex_match(req.path, match, kNode)) {
    const std::string name = match[1];
    auto it = nodes_.find(name);
    if (it == nodes_.end()) return Error(res, 404, "NotFound", "nodes \"" + name + "\" not found");
    if (m == "GET") return Reply(res, 200, it->second);
    // deploy/k8s's ClusterRole grants nodes get/list/watch/patch: an update is refused the way
    // RBAC refuses it.
    if (m == "PUT") {
      return Error(res, 403, "Forbidden",
                   "nodes \"" + name + "\" is forbidden: cannot update resource \"nodes\"");
    }
    if (m != "PATCH") return Error(res, 405, "MethodNotAllowed", "method not allowed");
    if (req.get_header_value("Content-Type") != "application/merge-patch+json") {
      return Error(res, 415, "UnsupportedMediaType", "this fake serves merge patches only");
    }
    if (inject_conflicts_ > 0) {  // another writer got there first
      --inject_conflicts_;
      it->second["metadata"]["resourceVersion"] = NextVersionLocked();
    }
    // A resourceVersion in a patch is a precondition, as on the real API server.
    const std::string rv = StrOr(body["metadata"], "resourceVersion");
    if (!rv.empty() && rv != it->second["metadata"]["resourceVersion"]) {
      ++conflicts_served_;
      return Error(res, 409, "Conflict",
                   "Operation cannot be fulfilled on nodes \"" + name +
                       "\": the object has been modified; please apply your changes to the "
                       "latest version and try again");
    }
    if (body["metadata"].contains("name") && StrOr(body["metadata"], "name") != name) {
      return Error(res, 400, "BadRequest", "the name of the object does not match the URL");
    }
    it->second.merge_patch(body);
    it->second["metadata"]["resourceVersion"] = NextVersionLocked();
    return Reply(res, 200, it->second);
  }
  if (m == "GET" && std::regex_match(req.path, match, kPods)) {
    return Reply(res, 200, PodsLocked(match[1], selector));
  }
  if (std::regex_match(req.path, match, kObjects) &&
      (match[1] == "apis/apps/v1") == (match[3] == "daemonsets")) {
    const std::string ns = match[2];
    const std::string kind = match[3];
    if (kind == "secrets" && (m == "POST" || m == "PUT")) {
      // The API server stores Secret data as given and refuses values that are not base64.
      const Json data = body.value("data", Json::object());
      for (const auto& [k, v] : data.items()) {
        std::string decoded;
        if (!v.is_string() || !absl::Base64Unescape(v.get<std::string>(), &decoded)) {
          return Error(res, 400, "BadRequest",
                       "Secret in version \"v1\" cannot be handled as a Secret: illegal base64 "
                       "data at data." +
                           k);
        }
      }
    }
    if (!match[4].matched) {
      if (m != "POST") {
        return Error(res, 405, "MethodNotAllowed", "this fake does not list " + kind);
      }
      const std::string name = StrOr(body["metadata"], "name");
      // Object names are lower-case RFC 1123 subdomains; the real server refuses others.
      static const std::regex kSubdomain(
          R"([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*)");
      if (name.size() > 253 || !std::regex_match(name, kSubdomain)) {
        return Error(
            res, 422, "Invalid",
            absl::StrCat(kind, " \"", name, "\" is invalid: metadata.name: Invalid value: \"", name,
                         "\": a lowercase RFC 1123 subdomain must consist of lower case "
                         "alphanumeric characters, '-' or '.', and must start and end "
                         "with an alphanumeric character"));
      }
      const std::string key = absl::StrCat(kind, "/", ns, "/", name);
      if (objects_.contains(key)) return Error(res, 409, "AlreadyExists", key + " already exists");
      body["metadata"]["namespace"] = ns;
      body["metadata"]["resourceVersion"] = NextVersionLocked();
      objects_[key] = body;
      return Reply(res, 201, body);
    }
    const std::string key = absl::StrCat(kind, "/", ns, "/", std::string(match[4]));
    auto it = objects_.find(key);
    if (it == objects_.end()) return Error(res, 404, "NotFound", key + " not found");
    if (m == "GET") return Reply(res, 200, it->second);
    if (m == "DELETE") {
      objects_.erase(it);
      return Reply(res, 200, {{"kind", "Status"}, {"status", "Success"}});
    }
    if (m == "PUT") {
      const std::string rv = StrOr(body["metadata"], "resourceVersion");
      if (!rv.empty() && rv != it->second["metadata"]["resourceVersion"]) {
        ++conflicts_served_;
        return Error(res, 409, "Conflict", key + ": the object has been modified");
      }
      body["metadata"]["resourceVersion"] = NextVersionLocked();
      it->second = body;
      return Reply(res, 200, body);
    }
  }
  Error(res, 404, "NotFound", "the server could not find the requested resource");
}

void FakeKubeApiServer::AddNode(const std::string& name,
                                const std::map<std::string, std::string>& labels, bool ready) {
  absl::MutexLock lock(&mu_);
  Json l = Json::object();
  for (const auto& [k, v] : labels) l[k] = v;
  nodes_[name] = {
      {"kind", "Node"},
      {"apiVersion", "v1"},
      {"metadata", {{"name", name}, {"labels", l}, {"resourceVersion", NextVersionLocked()}}},
      {"status", {{"conditions", {{{"type", "Ready"}, {"status", ready ? "True" : "False"}}}}}}};
}

void FakeKubeApiServer::InjectNodeConflicts(int n) {
  absl::MutexLock lock(&mu_);
  inject_conflicts_ = n;
}

void FakeKubeApiServer::SetPodsReady(bool ready) {
  absl::MutexLock lock(&mu_);
  pods_ready_ = ready;
}

std::map<std::string, std::string> FakeKubeApiServer::NodeLabels(const std::string& name) {
  absl::MutexLock lock(&mu_);
  std::map<std::string, std::string> out;
  for (const auto& [k, v] : nodes_[name]["metadata"]["labels"].items()) out[k] = v;
  return out;
}

Json FakeKubeApiServer::Object(const std::string& kind, const std::string& ns,
                               const std::string& name) {
  absl::MutexLock lock(&mu_);
  auto it = objects_.find(absl::StrCat(kind, "/", ns, "/", name));
  return it == objects_.end() ? Json() : it->second;
}

int FakeKubeApiServer::conflicts_served() {
  absl::MutexLock lock(&mu_);
  return conflicts_served_;
}

}  // namespace ems::controller
