#include "controller/model.h"

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "controller/ids.h"

namespace ems::controller {
namespace {

void PutTime(Json& j, const char* key, absl::Time t) {
  if (t != absl::InfinitePast()) j[key] = absl::ToUnixNanos(t);
}
absl::Time GetTime(const Json& j, const char* key) {
  if (!j.contains(key) || !j[key].is_number_integer()) return absl::InfinitePast();
  return absl::FromUnixNanos(j[key].get<int64_t>());
}
void PutApiTime(Json& j, const char* key, absl::Time t) {
  if (t != absl::InfinitePast()) j[key] = FormatApiTime(t);
}

ClusterSpec SpecFromJson(const Json& j) {
  ClusterSpec s;
  s.name = StrOr(j, "name");
  s.description = StrOr(j, "description");
  s.charge_mode = static_cast<int>(IntOr(j, "charge_mode", 0));
  const Json k = j.is_object() && j.contains("k8s_cluster_specification")
                     ? j["k8s_cluster_specification"]
                     : Json::object();
  s.k8s.k8s_cluster_id = StrOr(k, "k8s_cluster_id");
  s.k8s.ns = StrOr(k, "namespace");
  if (k.contains("label")) {
    s.k8s.label.key = StrOr(k["label"], "key", "ems");
    s.k8s.label.value = StrOr(k["label"], "value", "true");
  }
  s.k8s.node_count = static_cast<int>(IntOr(k, "node_count", 0));
  s.k8s.flavor = StrOr(k, "flavor");
  s.k8s.version = StrOr(k, "version");
  s.k8s.lts_enable = BoolOr(k, "lts_enable", true);
  s.k8s.lts_connect_type = static_cast<int>(IntOr(k, "lts_connect_type", 0));
  s.k8s.monitor_enable = BoolOr(k, "monitor_enable", true);
  s.k8s.node_type = static_cast<int>(IntOr(k, "node_type", 0));
  const Json m =
      j.is_object() && j.contains("memory_specification") ? j["memory_specification"] : Json();
  s.memory.huge_page_num = IntOr(m, "huge_page_num", 131072);
  s.memory.huge_page_flavor = IntOr(m, "huge_page_flavor", 2);
  return s;
}

Json TaskToRecord(const Task& t) {
  Json j = {{"id", t.id}, {"status", t.status}, {"message", t.message}};
  PutTime(j, "created_at", t.created_at);
  PutTime(j, "begin_at", t.begin_at);
  PutTime(j, "end_at", t.end_at);
  return j;
}

}  // namespace

const char* JobKindName(JobKind kind) {
  switch (kind) {
    case JobKind::kCreate:
      return "CreateCluster";
    case JobKind::kEnroll:
      return "EnrollCluster";
    case JobKind::kDelete:
      return "DeleteCluster";
    case JobKind::kExpand:
      return "ExpandCluster";
    case JobKind::kShrink:
      return "ShrinkCluster";
  }
  return "?";
}

std::vector<std::string> TaskPlan(JobKind kind) {
  switch (kind) {
    case JobKind::kCreate:
      return {"plan nodes", "prepare cluster resources", "start nodes", "wait for nodes ready",
              "publish cluster"};
    case JobKind::kEnroll:
      return {"discover nodes", "wait for nodes ready", "publish cluster"};
    case JobKind::kDelete:
      return {"stop nodes", "release cluster resources", "mark cluster deleted"};
    case JobKind::kExpand:
      return {"start nodes", "wait for nodes ready", "add nodes to the ring"};
    case JobKind::kShrink:
      return {"drain nodes", "stop nodes", "remove nodes from the ring"};
  }
  return {};
}

bool IsTerminal(const std::string& s) {
  return s == kJobCompleted || s == kJobFailed || s == kJobStopped;
}

bool IsLongJob(const Job& job) { return absl::StartsWith(job.id, "long-"); }

Json ClusterSpecToApi(const ClusterSpec& s) {
  Json k = {{"k8s_cluster_id", s.k8s.k8s_cluster_id},
            {"namespace", s.k8s.ns},
            {"label", {{"key", s.k8s.label.key}, {"value", s.k8s.label.value}}},
            {"node_count", s.k8s.node_count},
            {"flavor", s.k8s.flavor},
            {"version", s.k8s.version},
            {"lts_enable", s.k8s.lts_enable},
            {"lts_connect_type", s.k8s.lts_connect_type},
            {"monitor_enable", s.k8s.monitor_enable},
            {"node_type", s.k8s.node_type}};
  return {{"name", s.name},
          {"description", s.description},
          {"charge_mode", s.charge_mode},
          {"k8s_cluster_specification", std::move(k)},
          {"memory_specification",
           {{"huge_page_num", s.memory.huge_page_num},
            {"huge_page_flavor", s.memory.huge_page_flavor}}}};
}

Json ClusterToRecord(const Cluster& c) {
  Json j = {{"id", c.id},
            {"project_id", c.project_id},
            {"status", c.status},
            {"reason", c.reason},
            {"k8s_name", c.k8s_name},
            {"available_node_count", c.available_node_count},
            {"spec", ClusterSpecToApi(c.spec)},
            {"nodes", c.nodes},
            {"authorized", c.authorized},
            {"enroll", c.enroll},
            {"seq", c.seq}};
  PutTime(j, "created_at", c.created_at);
  PutTime(j, "updated_at", c.updated_at);
  return j;
}

absl::StatusOr<Cluster> ClusterFromRecord(const std::string& blob) {
  auto j = ParseJson(blob, "cluster record");
  if (!j.ok() || !j->is_object()) return absl::DataLossError("cluster record is corrupt");
  Cluster c;
  c.id = StrOr(*j, "id");
  c.project_id = StrOr(*j, "project_id");
  c.status = StrOr(*j, "status", kCreating);
  c.reason = StrOr(*j, "reason");
  c.k8s_name = StrOr(*j, "k8s_name");
  c.available_node_count = static_cast<int>(IntOr(*j, "available_node_count", 0));
  c.spec = SpecFromJson(j->contains("spec") ? (*j)["spec"] : Json::object());
  c.nodes = StrListOr(*j, "nodes");
  c.authorized = BoolOr(*j, "authorized", false);
  c.seq = IntOr(*j, "seq", 0);
  if (j->contains("enroll")) c.enroll = (*j)["enroll"];
  c.created_at = GetTime(*j, "created_at");
  c.updated_at = GetTime(*j, "updated_at");
  if (c.id.empty()) return absl::DataLossError("cluster record has no id");
  return c;
}

Json JobToRecord(const Job& job) {
  Json tasks = Json::array();
  for (const Task& t : job.tasks) tasks.push_back(TaskToRecord(t));
  Json j = {{"id", job.id},
            {"cluster_id", job.cluster_id},
            {"project_id", job.project_id},
            {"kind", static_cast<int>(job.kind)},
            {"status", job.status},
            {"progress", job.progress},
            {"message", job.message},
            {"tasks", std::move(tasks)},
            {"node_names", job.node_names},
            {"cancel_requested", job.cancel_requested},
            {"step", job.step},
            {"seq", job.seq}};
  PutTime(j, "created_at", job.created_at);
  PutTime(j, "begin_at", job.begin_at);
  PutTime(j, "end_at", job.end_at);
  return j;
}

absl::StatusOr<Job> JobFromRecord(const std::string& blob) {
  auto j = ParseJson(blob, "job record");
  if (!j.ok() || !j->is_object()) return absl::DataLossError("job record is corrupt");
  Job job;
  job.id = StrOr(*j, "id");
  job.cluster_id = StrOr(*j, "cluster_id");
  job.project_id = StrOr(*j, "project_id");
  const int64_t kind = IntOr(*j, "kind", -1);
  if (kind < 0 || kind > static_cast<int>(JobKind::kShrink) || job.id.empty()) {
    return absl::DataLossError(absl::StrCat("job record ", job.id, " is corrupt"));
  }
  job.kind = static_cast<JobKind>(kind);
  job.status = StrOr(*j, "status", kJobInit);
  job.progress = DoubleOr(*j, "progress", 0);
  job.message = StrOr(*j, "message");
  if (j->contains("tasks") && (*j)["tasks"].is_array()) {
    for (const Json& t : (*j)["tasks"]) {
      Task task;
      task.id = StrOr(t, "id");
      task.status = StrOr(t, "status", kJobInit);
      task.message = StrOr(t, "message");
      task.created_at = GetTime(t, "created_at");
      task.begin_at = GetTime(t, "begin_at");
      task.end_at = GetTime(t, "end_at");
      job.tasks.push_back(std::move(task));
    }
  }
  job.node_names = StrListOr(*j, "node_names");
  job.cancel_requested = BoolOr(*j, "cancel_requested", false);
  job.step = static_cast<int>(IntOr(*j, "step", 0));
  job.seq = IntOr(*j, "seq", 0);
  job.created_at = GetTime(*j, "created_at");
  job.begin_at = GetTime(*j, "begin_at");
  job.end_at = GetTime(*j, "end_at");
  return job;
}

Json ClusterToApi(const Cluster& c) {
  Json meta = {{"id", c.id},
               {"status", c.status},
               {"project_id", c.project_id},
               {"k8s_name", c.k8s_name},
               {"available_node_count", c.available_node_count}};
  if (!c.reason.empty()) meta["reason"] = c.reason;
  PutApiTime(meta, "created_at", c.created_at);
  PutApiTime(meta, "updated_at", c.updated_at);
  return {{"cluster_metadata", std::move(meta)},
          {"cluster_specification", ClusterSpecToApi(c.spec)}};
}

Json JobToApi(const Job& job) {
  Json tasks = Json::array();
  for (const Task& t : job.tasks) {
    Json tj = {{"id", t.id}, {"status", t.status}, {"message", t.message}};
    PutApiTime(tj, "created_at", t.created_at);
    PutApiTime(tj, "begin_at", t.begin_at);
    PutApiTime(tj, "end_at", t.end_at);
    tasks.push_back(std::move(tj));
  }
  Json j = {
      {"id", job.id},         {"cluster_id", job.cluster_id}, {"name", JobKindName(job.kind)},
      {"status", job.status}, {"progress", job.progress},     {"task_list", std::move(tasks)}};
  if (!job.message.empty()) j["message"] = job.message;
  PutApiTime(j, "created_at", job.created_at);
  PutApiTime(j, "begin_at", job.begin_at);
  PutApiTime(j, "end_at", job.end_at);
  return j;
}

}  // namespace ems::controller
