// An in-memory Backend for tests: nodes become ready when started (or when the test says so).
// Thread-safe.
#ifndef EMS_CONTROLLER_BACKEND_FAKE_BACKEND_H_
#define EMS_CONTROLLER_BACKEND_FAKE_BACKEND_H_

#include <map>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "controller/backend/backend.h"

namespace ems::controller {

class FakeBackend : public Backend {
 public:
  const char* name() const override { return "fake"; }

  absl::StatusOr<std::vector<std::string>> PlanNodes(const Cluster& c) override {
    std::vector<std::string> out;
    for (int i = 0; i < c.spec.k8s.node_count; ++i) out.push_back(absl::StrCat("node-", i));
    return out;
  }
  absl::StatusOr<std::vector<std::string>> DiscoverNodes(const Cluster& c) override {
    absl::MutexLock lock(&mu_);
    for (const auto& n : discoverable_) running_[c.id].insert(n);  // they already run
    return discoverable_;
  }
  absl::Status Prepare(const Cluster& c) override {
    absl::MutexLock lock(&mu_);
    prepared_.insert(c.id);
    return absl::OkStatus();
  }
  absl::Status StartNodes(const Cluster& c, const std::vector<std::string>& names) override {
    absl::MutexLock lock(&mu_);
    for (const auto& n : names) {
      if (n == unstartable_) continue;  // as a node deleted from Kubernetes: the rest start
      if (!running_[c.id].contains(n)) ++starts_;
      running_[c.id].insert(n);
    }
    return absl::OkStatus();
  }
  absl::Status StopNodes(const Cluster& c, const std::vector<std::string>& names) override {
    absl::MutexLock lock(&mu_);
    for (const auto& n : names) running_[c.id].erase(n);
    return absl::OkStatus();
  }
  absl::StatusOr<std::vector<std::string>> StartedNodes(const Cluster& c) override {
    absl::MutexLock lock(&mu_);
    if (fail_started_nodes_) return absl::UnavailableError("fake: StartedNodes fails");
    return std::vector<std::string>(running_[c.id].begin(), running_[c.id].end());
  }
  absl::StatusOr<std::vector<NodeStatus>> Status(const Cluster& c,
                                                 const std::vector<std::string>& names) override {
    absl::MutexLock lock(&mu_);
    std::vector<NodeStatus> out;
    for (const auto& n : names) {
      const bool up = running_[c.id].contains(n) && !hold_ready_;
      out.push_back({n, up, up ? "127.0.0.1:1" : "", up ? "" : "not running"});
    }
    return out;
  }
  absl::Status Release(const Cluster& c) override {
    absl::MutexLock lock(&mu_);
    prepared_.erase(c.id);
    return absl::OkStatus();
  }
  absl::StatusOr<std::vector<NodeLabel>> ListLabels(const std::string& k8s_id) override {
    absl::MutexLock lock(&mu_);
    return labels_[k8s_id];
  }
  std::string Note(const Cluster& c) override { return "fake backend"; }
  absl::Status RefreshCredential(const Cluster& c) override {
    absl::MutexLock lock(&mu_);
    ++credential_refreshes_[c.id];
    return absl::OkStatus();
  }
  int credential_refreshes(const std::string& cluster_id) {
    absl::MutexLock lock(&mu_);
    return credential_refreshes_[cluster_id];
  }

  absl::Status CheckSpec(const ClusterSpec& spec) override {
    absl::MutexLock lock(&mu_);
    if (refuse_namespace_.empty() || spec.k8s.ns != refuse_namespace_) return absl::OkStatus();
    return absl::InvalidArgumentError("fake: namespace " + refuse_namespace_ + " cannot run");
  }

  // --- test controls ---
  // CheckSpec refuses specifications with this namespace.
  void RefuseNamespace(std::string ns) {
    absl::MutexLock lock(&mu_);
    refuse_namespace_ = std::move(ns);
  }
  // StartNodes skips this node (and reports success for the rest); WaitReady then times out.
  void SetUnstartable(std::string name) {
    absl::MutexLock lock(&mu_);
    unstartable_ = std::move(name);
  }
  void FailStartedNodes(bool fail) {
    absl::MutexLock lock(&mu_);
    fail_started_nodes_ = fail;
  }
  void HoldReady(bool hold) {
    absl::MutexLock lock(&mu_);
    hold_ready_ = hold;
  }
  void SetLabels(const std::string& k8s_id, std::vector<NodeLabel> labels) {
    absl::MutexLock lock(&mu_);
    labels_[k8s_id] = std::move(labels);
  }
  void SetDiscoverable(std::vector<std::string> names) {
    absl::MutexLock lock(&mu_);
    discoverable_ = std::move(names);
  }
  std::set<std::string> Running(const std::string& cluster_id) {
    absl::MutexLock lock(&mu_);
    return running_[cluster_id];
  }
  bool Prepared(const std::string& cluster_id) {
    absl::MutexLock lock(&mu_);
    return prepared_.contains(cluster_id);
  }
  void Kill(const std::string& cluster_id, const std::string& node) {
    absl::MutexLock lock(&mu_);
    running_[cluster_id].erase(node);
  }
  int starts() {
    absl::MutexLock lock(&mu_);
    return starts_;
  }

 private:
  absl::Mutex mu_;
  std::map<std::string, int> credential_refreshes_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, std::set<std::string>> running_ ABSL_GUARDED_BY(mu_);
  std::set<std::string> prepared_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, std::vector<NodeLabel>> labels_ ABSL_GUARDED_BY(mu_);
  std::vector<std::string> discoverable_ ABSL_GUARDED_BY(mu_);
  bool hold_ready_ ABSL_GUARDED_BY(mu_) = false;
  std::string unstartable_ ABSL_GUARDED_BY(mu_);
  std::string refuse_namespace_ ABSL_GUARDED_BY(mu_);
  bool fail_started_nodes_ ABSL_GUARDED_BY(mu_) = false;
  int starts_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace ems::controller

#endif  // EMS_CONTROLLER_BACKEND_FAKE_BACKEND_H_
