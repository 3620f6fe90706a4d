#include "controller/emsctl/cli.h"

#include <httplib.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <map>
#include <sstream>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "controller/api/json_util.h"
#include "controller/emsctl/args.h"
#include "controller/emsctl/format.h"

namespace ems::emsctl {
namespace {

using controller::DumpJson;
using controller::Json;

// j[key] when j is an object holding key, else null: server answers are read without throwing
// or asserting, whatever their shape.
const Json& Field(const Json& j, const char* key) {
  static const Json kNull;
  if (!j.is_object()) return kNull;
  auto it = j.find(key);
  return it == j.end() ? kNull : *it;
}

// The array at j[key], or an empty one.
Json Items(const Json& j, const char* key) {
  const Json& v = Field(j, key);
  return v.is_array() ? v : Json::array();
}

// "k: v" lines of an object's string members (202 answers).
void PrintFields(const Json& j, std::ostream& out) {
  if (!j.is_object()) return;
  for (const auto& [k, v] : j.items()) {
    if (v.is_string()) out << k << ": " << v.get<std::string>() << "\n";
  }
}

// The API ignores k8s_cluster_id on the local backend but requires a UUID.
constexpr char kLocalK8sId[] = "00000000-0000-4000-8000-000000000000";

class Cli {
 public:
  Cli(Args args, std::ostream& out, std::ostream& err) : a_(std::move(args)), out_(out), err_(err) {
    const char* env_endpoint = std::getenv("EMS_ENDPOINT");
    const char* env_token = std::getenv("EMS_TOKEN");
    endpoint_ = a_.Get("endpoint", env_endpoint ? env_endpoint : "http://127.0.0.1:8080");
    token_ = a_.Get("token", env_token ? env_token : "");
    json_ = a_.Get("o", "table") == "json";
  }

  int Main();

 private:
  struct Reply {
    int status = 0;  // 0: no answer
    Json body;
  };

  Reply Call(const std::string& method, const std::string& path, const Json* body,
             const std::string& token);
  Reply Call(const std::string& method, const std::string& path, const Json* body = nullptr) {
    return Call(method, path, body, token_);
  }
  // GET of a paginated list, every page: {key: [all items]} on success, else the failed page.
  Reply ListAll(const std::string& path, const char* key);
  // Prints the API error; returns the exit code for it.
  int Fail(const Reply& r);
  int Usage(const std::string& why) {
    err_ << "emsctl: " << why << "\nRun 'emsctl help' for usage.\n";
    return kExitUsage;
  }
  int PrintJsonOr(const Reply& r, int (Cli::*table)(const Json&));

  int TokenCreate();
  int ClusterCreate();
  int ClusterList();
  int ClusterShow();
  int ClusterDelete();
  int ClusterResize(const char* verb);
  int JobList();
  int JobShow();
  int JobCancel();
  int JobWait(const std::string& id);
  int Credential(bool create);
  // After an accepted job: waits for it when --wait is given.
  int Accepted(const Reply& r);

  int PrintClusters(const Json& body);
  int PrintCluster(const Json& body);
  int PrintJob(const Json& job);

  const Args a_;
  std::ostream& out_;
  std::ostream& err_;
  std::string endpoint_;
  std::string token_;
  bool json_ = false;
};

Cli::Reply Cli::Call(const std::string& method, const std::string& path, const Json* body,
                     const std::string& token) {
  httplib::Client client(endpoint_);
  client.set_connection_timeout(5);
  client.set_read_timeout(30);
  httplib::Headers headers;
  if (!token.empty()) headers.emplace("X-Auth-Token", token);
  const std::string payload = body ? DumpJson(*body) : "";
  auto r = method == "GET"    ? client.Get(path.c_str(), headers)
           : method == "POST" ? client.Post(path.c_str(), headers, payload, "application/json")
                              : client.Delete(path.c_str(), headers);
  Reply out;
  if (!r) {
    out.body = {{"error_code", "emsctl.unreachable"},
                {"error_msg",
                 absl::StrCat("cannot reach ", endpoint_, ": ", httplib::to_string(r.error()))}};
    return out;
  }
  out.status = r->status;
  if (!r->body.empty()) {
    out.body = Json::parse(r->body, nullptr, /*allow_exceptions=*/false);
    if (out.body.is_discarded()) out.body = {{"error_msg", r->body}};
  }
  return out;
}

Cli::Reply Cli::ListAll(const std::string& path, const char* key) {
  // The API answers at most 1000 clusters or jobs a call, oldest first, and finished ones stay
  // listed: one call would hide the newest once there are more.
  constexpr size_t kPage = 1000;
  const char sep = path.find('?') == std::string::npos ? '?' : '&';
  Json items = Json::array();
  for (size_t offset = 0;; offset += kPage) {
    Reply r =
        Call("GET", absl::StrCat(path, std::string(1, sep), "limit=", kPage, "&offset=", offset));
    if (r.status != 200) return r;
    const Json page = Items(r.body, key);
    for (const Json& item : page) items.push_back(item);
    if (page.size() < kPage) {
      r.body = Json{{key, std::move(items)}};
      return r;
    }
  }
}

int Cli::Fail(const Reply& r) {
  if (json_ && r.body.is_object()) {
    err_ << DumpJson(r.body, 2) << "\n";
  } else {
    const std::string code = controller::StrOr(r.body, "error_code");
    err_ << "emsctl: " << (code.empty() ? "" : code + ": ")
         << controller::StrOr(r.body, "error_msg", "error")
         << (r.status ? absl::StrCat(" (HTTP ", r.status, ")") : "") << "\n";
  }
  if (r.status == 0 || r.status >= 500) return kExitUnavailable;
  if (r.status == 401) return kExitAuth;
  if (r.status == 404) return kExitNotFound;
  return kExitApiError;
}

int Cli::PrintJsonOr(const Reply& r, int (Cli::*table)(const Json&)) {
  if (r.status < 200 || r.status >= 300) return Fail(r);
  if (json_) {
    out_ << DumpJson(r.body, 2) << "\n";
    return kExitOk;
  }
  return (this->*table)(r.body);
}

int Cli::TokenCreate() {
  const std::string project = a_.Get("project");
  if (project.empty()) return Usage("token create needs --project P");
  std::string admin = a_.Get("admin_token");
  if (admin.empty() && std::getenv("EMS_ADMIN_TOKEN")) admin = std::getenv("EMS_ADMIN_TOKEN");
  if (admin.empty() && a_.Has("admin_token_file")) {
    std::ifstream in(a_.Get("admin_token_file"));
    std::stringstream ss;
    ss << in.rdbuf();
    admin = std::string(absl::StripAsciiWhitespace(ss.str()));
    if (admin.empty()) return Usage("cannot read --admin_token_file " + a_.Get("admin_token_file"));
  }
  Json body = {{"project_id", project}};
  Reply r = Call("POST", "/v1/tokens", &body, admin);
  if (r.status != 201) return Fail(r);
  if (json_) {
    out_ << DumpJson(r.body, 2) << "\n";
  } else {
    out_ << controller::StrOr(r.body, "token") << "\n";  // the token alone, for $(...)
  }
  return kExitOk;
}

int Cli::ClusterCreate() {
  int64_t nodes = 0;
  if (!absl::SimpleAtoi(a_.Get("nodes"), &nodes)) return Usage("cluster create needs --nodes N");
  Json k8s = {{"k8s_cluster_id", a_.Get("k8s_cluster_id", kLocalK8sId)}, {"node_count", nodes}};
  if (a_.Has("namespace")) k8s["namespace"] = a_.Get("namespace");
  if (a_.Has("label")) {
    const std::string l = a_.Get("label");
    const size_t eq = l.find('=');
    if (eq == std::string::npos) return Usage("--label must be key=value");
    k8s["label"] = {{"key", l.substr(0, eq)}, {"value", l.substr(eq + 1)}};
  }
  Json body = {{"k8s_cluster_specification", k8s}};
  if (a_.Has("name")) body["name"] = a_.Get("name");
  if (a_.Has("description")) body["description"] = a_.Get("description");
  for (const char* f : {"huge_page_num", "huge_page_flavor"}) {
    if (!a_.Has(f)) continue;
    int64_t v = 0;
    if (!absl::SimpleAtoi(a_.Get(f), &v)) return Usage(absl::StrCat("--", f, " must be a number"));
    body["memory_specification"][f] = v;
  }
  return Accepted(Call("POST", "/v1/clusters", &body));
}

int Cli::Accepted(const Reply& r) {
  if (r.status != 202) return Fail(r);
  const std::string job = controller::StrOr(r.body, "job_id");
  if (a_.Has("wait")) {
    if (!json_) {
      PrintFields(r.body, out_);
    }
    return JobWait(job);
  }
  if (json_) {
    out_ << DumpJson(r.body, 2) << "\n";
  } else {
    PrintFields(r.body, out_);
  }
  return kExitOk;
}

int Cli::ClusterList() {
  return PrintJsonOr(ListAll("/v1/clusters", "clusters"), &Cli::PrintClusters);
}

int Cli::PrintClusters(const Json& body) {
  Table t({"ID", "NAME", "STATUS", "NODES", "CREATED", "REASON"});
  for (const Json& c : Items(body, "clusters")) {
    const Json& m = Field(c, "cluster_metadata");
    const Json& s = Field(c, "cluster_specification");
    t.Add({controller::StrOr(m, "id"), controller::StrOr(s, "name"), controller::StrOr(m, "status"),
           absl::StrCat(controller::IntOr(m, "available_node_count", 0), "/",
                        controller::IntOr(Field(s, "k8s_cluster_specification"), "node_count", 0)),
           controller::StrOr(m, "created_at"), controller::StrOr(m, "reason")});
  }
  t.Print(out_);
  return kExitOk;
}

int Cli::ClusterShow() {
  if (a_.positional.size() < 3) return Usage("cluster show needs a cluster id");
  return PrintJsonOr(Call("GET", "/v1/clusters/" + a_.positional[2]), &Cli::PrintCluster);
}

int Cli::PrintCluster(const Json& c) {
  const Json& m = Field(c, "cluster_metadata");
  const Json& s = Field(c, "cluster_specification");
  const Json& k = Field(s, "k8s_cluster_specification");
  const Json& mem = Field(s, "memory_specification");
  Table t({"FIELD", "VALUE"});
  t.Add({"id", controller::StrOr(m, "id")});
  t.Add({"name", controller::StrOr(s, "name")});
  t.Add({"status", controller::StrOr(m, "status")});
  t.Add({"reason", controller::StrOr(m, "reason")});
  t.Add({"nodes", absl::StrCat(controller::IntOr(m, "available_node_count", 0), " available of ",
                               controller::IntOr(k, "node_count", 0))});
  t.Add({"label", absl::StrCat(controller::StrOr(Field(k, "label"), "key"), "=",
                               controller::StrOr(Field(k, "label"), "value"))});
  t.Add({"memory", absl::StrCat(controller::IntOr(mem, "huge_page_num", 0), " pages x ",
                                controller::IntOr(mem, "huge_page_flavor", 0), " MB")});
  t.Add({"k8s_cluster_id", controller::StrOr(k, "k8s_cluster_id")});
  t.Add({"project_id", controller::StrOr(m, "project_id")});
  t.Add({"created_at", controller::StrOr(m, "created_at")});
  t.Add({"updated_at", controller::StrOr(m, "updated_at")});
  t.Print(out_);
  return kExitOk;
}

int Cli::ClusterDelete() {
  if (a_.positional.size() < 3) return Usage("cluster delete needs a cluster id");
  return Accepted(Call("DELETE", "/v1/clusters/" + a_.positional[2]));
}

int Cli::ClusterResize(const char* verb) {
  if (a_.positional.size() < 4) {
    return Usage(absl::StrCat("cluster ", verb, " needs a cluster id and node names"));
  }
  Json body = {
      {"node_name_list", std::vector<std::string>(a_.positional.begin() + 3, a_.positional.end())}};
  return Accepted(Call("POST", absl::StrCat("/v1/clusters/", a_.positional[2], "/", verb), &body));
}

int Cli::JobList() {
  const std::string type = a_.Get("type", "all");
  Json jobs = Json::array();
  for (const char* t : {"short", "long"}) {
    if (type != "all" && type != t) continue;
    Reply r = ListAll(absl::StrCat("/v1/jobs?job_type=", t), "jobs");
    if (r.status != 200) return Fail(r);
    for (const Json& j : Items(r.body, "jobs")) jobs.push_back(j);
  }
  std::stable_sort(jobs.begin(), jobs.end(), [](const Json& x, const Json& y) {
    return controller::StrOr(x, "created_at") < controller::StrOr(y, "created_at");
  });
  if (json_) {
    out_ << DumpJson(Json{{"jobs", jobs}}, 2) << "\n";
    return kExitOk;
  }
  Table t({"ID", "NAME", "CLUSTER", "STATUS", "PROGRESS", "CREATED"});
  for (const Json& j : jobs) {
    t.Add({controller::StrOr(j, "id"), controller::StrOr(j, "name"),
           controller::StrOr(j, "cluster_id"), controller::StrOr(j, "status"),
           absl::StrCat(static_cast<int>(controller::DoubleOr(j, "progress", 0)), "%"),
           controller::StrOr(j, "created_at")});
  }
  t.Print(out_);
  return kExitOk;
}

int Cli::JobShow() {
  if (a_.positional.size() < 3) return Usage("job show needs a job id");
  return PrintJsonOr(Call("GET", "/v1/jobs/" + a_.positional[2]), &Cli::PrintJob);
}

int Cli::PrintJob(const Json& j) {
  out_ << "id:       " << controller::StrOr(j, "id") << "\n"
       << "name:     " << controller::StrOr(j, "name") << "\n"
       << "cluster:  " << controller::StrOr(j, "cluster_id") << "\n"
       << "status:   " << controller::StrOr(j, "status")
       << (j.contains("message") ? " (" + controller::StrOr(j, "message") + ")" : "") << "\n"
       << "progress: " << ProgressBar(controller::DoubleOr(j, "progress", 0)) << "\n\n";
  Table t({"TASK", "STATUS", "MESSAGE"});
  for (const Json& task : Items(j, "task_list")) {
    t.Add({controller::StrOr(task, "id"), controller::StrOr(task, "status"),
           controller::StrOr(task, "message")});
  }
  t.Print(out_);
  return kExitOk;
}

int Cli::JobCancel() {
  if (a_.positional.size() < 3) return Usage("job cancel needs job ids");
  Json body = {
      {"job_ids", std::vector<std::string>(a_.positional.begin() + 2, a_.positional.end())}};
  Reply r = Call("POST", "/v1/jobs/cancel", &body);
  if (r.status != 200) return Fail(r);
  if (json_) {
    out_ << DumpJson(r.body, 2) << "\n";
  } else {
    out_ << "cancelled: " << controller::IntOr(r.body, "success_rows", 0)
         << ", not cancellable: " << controller::IntOr(r.body, "failed_rows", 0);
    const auto failed = controller::StrListOr(r.body, "failed_ids");
    if (!failed.empty()) out_ << " (" << absl::StrJoin(failed, ", ") << ")";
    out_ << "\n";
  }
  return controller::IntOr(r.body, "failed_rows", 0) == 0 ? kExitOk : kExitApiError;
}

int Cli::JobWait(const std::string& id) {
  int64_t timeout_s = 1800, interval_ms = 500;
  if (a_.Has("timeout") && !absl::SimpleAtoi(a_.Get("timeout"), &timeout_s)) {
    return Usage("--timeout must be seconds");
  }
  if (a_.Has("interval_ms") && !absl::SimpleAtoi(a_.Get("interval_ms"), &interval_ms)) {
    return Usage("--interval_ms must be a number");
  }
  const bool tty = &err_ == &std::cerr && isatty(STDERR_FILENO);
  const absl::Time deadline = absl::Now() + absl::Seconds(timeout_s);
  std::string last;
  while (true) {
    Reply r = Call("GET", "/v1/jobs/" + id);
    if (r.status != 200) return Fail(r);
    const std::string status = controller::StrOr(r.body, "status");
    std::string task;
    for (const Json& t : Items(r.body, "task_list")) {
      if (controller::StrOr(t, "status") == "RUNNING") task = controller::StrOr(t, "message");
    }
    const std::string line = absl::StrCat(ProgressBar(controller::DoubleOr(r.body, "progress", 0)),
                                          "  ", status, task.empty() ? "" : "  " + task);
    if (line != last) {
      err_ << (tty ? "\r\033[K" : "") << line << (tty ? "" : "\n") << std::flush;
      last = line;
    }
    const bool done = status == "COMPLETED" || status == "FAILED" || status == "STOPPED";
    if (done || absl::Now() >= deadline) {
      if (tty) err_ << "\n";
      if (json_) {
        out_ << DumpJson(r.body, 2) << "\n";
      } else {
        out_ << id << " " << (done ? status : "still " + status)
             << (r.body.contains("message") ? " " + controller::StrOr(r.body, "message") : "")
             << "\n";
      }
      if (!done) return kExitTimeout;
      return status == "COMPLETED" ? kExitOk : kExitJobFailed;
    }
    absl::SleepFor(absl::Milliseconds(interval_ms));
  }
}

int Cli::Credential(bool create) {
  std::string project = a_.Get("project");
  if (project.empty()) {  // the token's own project
    Reply f = Call("GET", "/v1/features?limit=1");
    if (f.status != 200) return Fail(f);
    project = controller::StrOr(f.body, "project_id");
  }
  const std::string path = "/v1/ems/" + project + "/credentials";
  Reply r = Call(create ? "POST" : "GET", path);
  if (r.status != 200) return Fail(r);
  if (json_) {
    out_ << DumpJson(r.body, 2) << "\n";
    return kExitOk;
  }
  Table t({"PROJECT", "CDKEY", "CREATED"});
  const Json list = r.body.is_array() ? r.body : Json::array({r.body});
  for (const Json& c : list) {
    t.Add({controller::StrOr(c, "projectId"), controller::StrOr(c, "cdKey"),
           absl::FormatTime("%Y-%m-%dT%H:%M:%SZ",
                            absl::FromUnixMillis(controller::IntOr(c, "createAt", 0)),
                            absl::UTCTimeZone())});
  }
  t.Print(out_);
  return kExitOk;
}

int Cli::Main() {
  const auto& p = a_.positional;
  if (p.empty() || p[0] == "help" || a_.Has("help") || a_.Has("h")) {
    out_ << emsctl::Usage();
    return p.empty() && !a_.Has("help") && !a_.Has("h") ? kExitUsage : kExitOk;
  }
  const std::string group = p[0], verb = p.size() > 1 ? p[1] : "";
  if (group == "token" && verb == "create") return TokenCreate();
  if (token_.empty()) return Usage("no token: pass --token or set EMS_TOKEN");
  if (group == "cluster") {
    if (verb == "create") return ClusterCreate();
    if (verb == "list") return ClusterList();
    if (verb == "show") return ClusterShow();
    if (verb == "delete") return ClusterDelete();
    if (verb == "expand" || verb == "shrink")
      return ClusterResize(verb == "expand" ? "expand" : "shrink");
  }
  if (group == "job") {
    if (verb == "list") return JobList();
    if (verb == "show") return JobShow();
    if (verb == "cancel") return JobCancel();
    if (verb == "wait") {
      if (p.size() < 3) return Usage("job wait needs a job id");
      return JobWait(p[2]);
    }
  }
  if (group == "credential" && (verb == "create" || verb == "show"))
    return Credential(verb == "create");
  return Usage("unknown command '" + absl::StrJoin(p, " ") + "'");
}

}  // namespace

int Run(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
  Args parsed;
  std::string error;
  if (!Parse(args, &parsed, &error)) {
    err << "emsctl: " << error << "\n";
    return kExitUsage;
  }
  return Cli(std::move(parsed), out, err).Main();
}

}  // namespace ems::emsctl
