// Test fixture: a whole control plane (store, registry, tokens, REST server on a loopback
// port 0, reconciler over a FakeBackend) plus an HTTP client. Restart() tears it down and
// loads it again from the same state directory.
#ifndef EMS_CONTROLLER_API_TEST_ENV_H_
#define EMS_CONTROLLER_API_TEST_ENV_H_

#include <httplib.h>
#include <unistd.h>

#include <filesystem>
#include <memory>
#include <string>

#include "controller/api/rest_server.h"
#include "controller/backend/fake_backend.h"
#include "controller/jobs/reconciler.h"
#include "gtest/gtest.h"

namespace ems::controller::testing {

struct Reply {
  int status = 0;
  Json body;
  std::string raw;
};

class ControlPlaneTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("ems_cp_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
    Start();
  }
  void TearDown() override {
    StopAll();
    std::filesystem::remove_all(dir_);
  }

  // Set before Start() to run without a reconciler (jobs stay queued).
  bool run_reconciler_ = true;
  ReconcilerOptions reconciler_options_{.poll_interval = absl::Milliseconds(5),
                                        .ready_timeout = absl::Seconds(30),
                                        .drain_timeout = absl::Seconds(30),
                                        .resync_interval = absl::Milliseconds(20)};
  // Set before Start(); `.clock = &clock_` lets a test decide when nodes fall silent.
  MembershipOptions membership_options_;

  void Start() {
    auto store = StateStore::Open((dir_ / "controller.db").string());
    ASSERT_TRUE(store.ok()) << store.status();
    store_ = *std::move(store);
    auto registry = Registry::Load(store_.get(), &clock_);
    ASSERT_TRUE(registry.ok()) << registry.status();
    registry_ = *std::move(registry);
    auto membership = Membership::Create(store_.get(), membership_options_);
    ASSERT_TRUE(membership.ok()) << membership.status();
    membership_ = *std::move(membership);
    tokens_ = std::make_unique<TokenStore>(store_.get(), &clock_);
    credentials_ = std::make_unique<CredentialStore>(store_.get(), &clock_);
    handlers_ = std::make_unique<api::Handlers>(registry_.get(), credentials_.get(), &backend_);
    server_ = std::make_unique<api::RestServer>(
        handlers_.get(), tokens_.get(),
        api::RestServerOptions{.listen = "127.0.0.1:0", .admin_token = "admin-secret"});
    ASSERT_TRUE(server_->Start().ok());
    client_ = std::make_unique<httplib::Client>("127.0.0.1", server_->port());
    if (run_reconciler_) {
      reconciler_ = std::make_unique<Reconciler>(registry_.get(), &backend_, membership_.get(),
                                                 reconciler_options_);
      reconciler_->Start();
    }
  }

  void StopAll() {
    if (reconciler_) reconciler_->Stop();
    if (server_) server_->Stop();
    reconciler_.reset();
    client_.reset();
    server_.reset();
    handlers_.reset();
    credentials_.reset();
    tokens_.reset();
    membership_.reset();
    registry_.reset();
    store_.reset();
  }

  void Restart() {
    StopAll();
    Start();
  }

  std::string Token(const std::string& project) {
    auto t = tokens_->Create(project);
    EXPECT_TRUE(t.ok()) << t.status();
    return t.ok() ? t->token : "";
  }

  Reply Call(const std::string& method, const std::string& path, const std::string& token,
             const std::string& body = "") {
    httplib::Headers headers;
    if (!token.empty()) headers.emplace("X-Auth-Token", token);
    httplib::Result r = method == "GET" ? client_->Get(path.c_str(), headers)
                        : method == "POST"
                            ? client_->Post(path.c_str(), headers, body, "application/json")
                            : client_->Delete(path.c_str(), headers);
    Reply out;
    if (!r) {
      ADD_FAILURE() << method << " " << path << ": no response";
      return out;
    }
    out.status = r->status;
    out.raw = r->body;
    if (!r->body.empty()) {
      out.body = Json::parse(r->body, nullptr, /*allow_exceptions=*/false);
      EXPECT_FALSE(out.body.is_discarded()) << "not JSON: " << r->body;
    }
    return out;
  }

  // A valid CreateCluster body with `node_count` nodes.
  static std::string CreateBody(const std::string& name, int node_count = 3) {
    Json j = {
        {"name", name},
        {"k8s_cluster_specification",
         {{"k8s_cluster_id", "0b0e7e4a-4a9e-4c1e-9a57-1c2d3e4f5a6b"}, {"node_count", node_count}}}};
    return j.dump();
  }

  // Polls ShowJob until the job ends; returns its final JobDetail.
  Json WaitJob(const std::string& token, const std::string& job_id) {
    for (int i = 0; i < 6000; ++i) {
      Reply r = Call("GET", "/v1/jobs/" + job_id, token);
      if (r.status != 200) return r.body;
      const std::string s = r.body.value("status", "");
      if (s == "COMPLETED" || s == "FAILED" || s == "STOPPED") return r.body;
      absl::SleepFor(absl::Milliseconds(5));
    }
    ADD_FAILURE() << "job " << job_id << " did not finish";
    return Json();
  }

  std::filesystem::path dir_;
  FakeClock clock_{absl::FromUnixSeconds(1780000000)};
  FakeBackend backend_;
  std::unique_ptr<StateStore> store_;
  std::unique_ptr<Registry> registry_;
  std::unique_ptr<Membership> membership_;
  std::unique_ptr<TokenStore> tokens_;
  std::unique_ptr<CredentialStore> credentials_;
  std::unique_ptr<api::Handlers> handlers_;
  std::unique_ptr<api::RestServer> server_;
  std::unique_ptr<Reconciler> reconciler_;
  std::unique_ptr<httplib::Client> client_;
};

}  // namespace ems::controller::testing

#endif  // EMS_CONTROLLER_API_TEST_ENV_H_
