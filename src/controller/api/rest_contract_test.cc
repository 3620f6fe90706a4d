// Contract tests of the cluster, release, feature and label APIs over real HTTP: happy paths,
// every documented error code, and the boundaries of issue 5.
#include <string>

#include "absl/strings/ascii.h"
#include "controller/api/test_env.h"

namespace ems::controller::testing {
namespace {

constexpr char kK8sId[] = "0b0e7e4a-4a9e-4c1e-9a57-1c2d3e4f5a6b";

class ContractTest : public ControlPlaneTest {
 protected:
  void SetUp() override {
    ControlPlaneTest::SetUp();
    token_ = Token("proj-a");
  }

  // POSTs a CreateCluster body built from `j` and returns the reply.
  Reply Create(const Json& j) { return Call("POST", "/v1/clusters", token_, j.dump()); }

  static Json Body(int node_count = 3) { return Json::parse(CreateBody("alpha", node_count)); }

  static void ExpectError(const Reply& r, int status, const std::string& code,
                          const std::string& mentions = "") {
    EXPECT_EQ(r.status, status) << r.raw;
    EXPECT_EQ(r.body.value("error_code", ""), code) << r.raw;
    if (!mentions.empty()) {
      EXPECT_NE(r.body.value("error_msg", "").find(mentions), std::string::npos)
          << "error_msg should name '" << mentions << "': " << r.raw;
    }
  }

  std::string token_;
};

TEST_F(ContractTest, EveryApiNeedsAValidToken) {
  const std::vector<std::pair<std::string, std::string>> apis = {
      {"GET", "/v1/releases"},
      {"GET", "/v1/features"},
      {"GET", std::string("/v1/clusters/labels?k8s_cluster_id=") + kK8sId},
      {"POST", "/v1/clusters"},
      {"GET", "/v1/clusters"},
      {"GET", std::string("/v1/clusters/") + kK8sId},
      {"DELETE", std::string("/v1/clusters/") + kK8sId},
      {"POST", std::string("/v1/clusters/") + kK8sId + "/authorization"},
      {"POST", "/v1/clusters/enroll"},
      {"POST", std::string("/v1/clusters/") + kK8sId + "/expand"},
      {"POST", std::string("/v1/clusters/") + kK8sId + "/shrink"},
      {"POST", "/v1/ems/proj-a/credentials"},
      {"GET", "/v1/ems/proj-a/credentials"},
      {"GET", "/v1/jobs"},
      {"GET", "/v1/jobs/short-x"},
      {"POST", "/v1/jobs/cancel"}};
  ASSERT_EQ(apis.size(), 16u);
  for (const auto& [method, path] : apis) {
    SCOPED_TRACE(method + " " + path);
    ExpectError(Call(method, path, ""), 401, "common.01010018", "missing");
    ExpectError(Call(method, path, "emst-not-a-token"), 401, "common.01010018", "invalid");
  }
}

TEST_F(ContractTest, TokensExpireAfter24Hours) {
  clock_.Advance(absl::Hours(24) - absl::Seconds(1));
  EXPECT_EQ(Call("GET", "/v1/clusters", token_).status, 200);
  clock_.Advance(absl::Seconds(1));
  ExpectError(Call("GET", "/v1/clusters", token_), 401, "common.01010018", "expired");
}

TEST_F(ContractTest, TokenEndpointMintsProjectTokens) {
  Reply r = Call("POST", "/v1/tokens", "", R"({"project_id":"proj-b"})");
  ASSERT_EQ(r.status, 201) << r.raw;
  EXPECT_EQ(r.body["project_id"], "proj-b");
  Reply f = Call("GET", "/v1/features", r.body["token"].get<std::string>());
  EXPECT_EQ(f.status, 200);
  EXPECT_EQ(f.body["project_id"], "proj-b");
  ExpectError(Call("POST", "/v1/tokens", "", R"({"project_id":"Bad_Project"})"), 400,
              "EMS.00004000", "project_id");
  ExpectError(Call("POST", "/v1/tokens", "", R"({})"), 400, "EMS.00004000", "project_id");
}

TEST_F(ContractTest, TokenEndpointWithoutLoopbackTrustNeedsTheAdminToken) {
  api::RestServer strict(
      handlers_.get(), tokens_.get(),
      {.listen = "127.0.0.1:0", .admin_token = "admin-secret", .loopback_token_create = false});
  ASSERT_TRUE(strict.Start().ok());
  httplib::Client c("127.0.0.1", strict.port());
  auto denied = c.Post("/v1/tokens", R"({"project_id":"p"})", "application/json");
  ASSERT_TRUE(denied);
  EXPECT_EQ(denied->status, 401);
  auto wrong = c.Post("/v1/tokens", {{"X-Auth-Token", "admin-secreT"}}, R"({"project_id":"p"})",
                      "application/json");
  ASSERT_TRUE(wrong);
  EXPECT_EQ(wrong->status, 401);
  auto ok = c.Post("/v1/tokens", {{"X-Auth-Token", "admin-secret"}}, R"({"project_id":"p"})",
                   "application/json");
  ASSERT_TRUE(ok);
  EXPECT_EQ(ok->status, 201) << ok->body;
}

// A proxy on the controller's host (a TLS terminator) connects from loopback for every client:
// a request it marks as forwarded must not mint tokens as if it were local.
TEST_F(ContractTest, AForwardedLoopbackRequestMintsNoToken) {
  httplib::Client c("127.0.0.1", server_->port());
  for (const char* header : {"X-Forwarded-For", "Forwarded", "X-Real-IP"}) {
    SCOPED_TRACE(header);
    auto r = c.Post("/v1/tokens", {{header, "203.0.113.7"}}, R"({"project_id":"p"})",
                    "application/json");
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 401) << r->body;
    EXPECT_NE(r->body.find("forwarded"), std::string::npos) << r->body;
  }
  auto local = c.Post("/v1/tokens", R"({"project_id":"p"})", "application/json");
  ASSERT_TRUE(local);
  EXPECT_EQ(local->status, 201) << local->body;
}

TEST_F(ContractTest, ListReleasesAndPagination) {
  Reply r = Call("GET", "/v1/releases", token_);
  ASSERT_EQ(r.status, 200) << r.raw;
  EXPECT_EQ(r.body["total"], 1);
  ASSERT_EQ(r.body["releases"].size(), 1u);
  EXPECT_EQ(r.body["releases"][0]["tag"], "PREFERRED_VERSION");
  EXPECT_EQ(Call("GET", "/v1/releases?offset=1", token_).body["releases"].size(), 0u);
  EXPECT_EQ(Call("GET", "/v1/releases?limit=1&offset=0", token_).status, 200);
  ExpectError(Call("GET", "/v1/releases?limit=0", token_), 400, "common.00000400",
              "[ListReleases].[limit]: must be greater than or equal to [1]");
  ExpectError(Call("GET", "/v1/releases?offset=-1", token_), 400, "common.00000400",
              "[offset]: must be greater than or equal to [0]");
  ExpectError(Call("GET", "/v1/releases?limit=ten", token_), 400, "EMS.00004000", "limit");
  ExpectError(Call("GET", "/v1/releases?limit=2147483648", token_), 400, "common.00000400",
              "[limit]: must be less than or equal to [2147483647]");
  ExpectError(Call("GET", "/v1/releases?offset=99999999999999999999999", token_), 400,
              "common.00000400", "offset");
}

TEST_F(ContractTest, ListFeaturesNamesTheProject) {
  Reply r = Call("GET", "/v1/features", token_);
  ASSERT_EQ(r.status, 200) << r.raw;
  EXPECT_EQ(r.body["project_id"], "proj-a");
  EXPECT_EQ(r.body["total"].get<size_t>(), r.body["features"].size());
  for (const Json& f : r.body["features"]) {
    EXPECT_TRUE(f["switch"].is_boolean());
    EXPECT_TRUE(f["feature"].is_string());
  }
  ExpectError(Call("GET", "/v1/features?limit=-5", token_), 400, "common.00000400", "limit");
}

TEST_F(ContractTest, ListClustersLabelsBoundaries) {
  std::vector<NodeLabel> labels;
  for (int i = 0; i < 5; ++i) labels.push_back({"zone", "z" + std::to_string(i)});
  backend_.SetLabels(kK8sId, labels);
  const std::string base = std::string("/v1/clusters/labels?k8s_cluster_id=") + kK8sId;
  Reply r = Call("GET", base, token_);
  ASSERT_EQ(r.status, 200) << r.raw;
  EXPECT_EQ(r.body["total"], 5);
  ASSERT_EQ(r.body["labels"].size(), 5u);
  EXPECT_EQ(r.body["labels"][4]["value"], "z4");
  Reply page = Call("GET", base + "&limit=2&offset=3", token_);
  ASSERT_EQ(page.body["labels"].size(), 2u);
  EXPECT_EQ(page.body["labels"][0]["value"], "z3");
  EXPECT_EQ(page.body["total"], 5);
  EXPECT_EQ(Call("GET", base + "&limit=2000&offset=2000", token_).status, 200);
  ExpectError(Call("GET", base + "&limit=2001", token_), 400, "common.00000400",
              "[ListClustersLabels].[limit]: must be less than or equal to [2000]");
  ExpectError(Call("GET", base + "&limit=0", token_), 400, "common.00000400", "limit");
  ExpectError(Call("GET", base + "&offset=2001", token_), 400, "common.00000400",
              "[ListClustersLabels].[offset]: must be less than or equal to [2000]");
  ExpectError(Call("GET", "/v1/clusters/labels", token_), 400, "EMS.00004000", "k8s_cluster_id");
  ExpectError(Call("GET", "/v1/clusters/labels?k8s_cluster_id=abc", token_), 400, "EMS.00004000",
              "k8s_cluster_id");
}

TEST_F(ContractTest, CreateClusterAcceptsAndFillsDefaults) {
  Reply r = Create(Body());
  ASSERT_EQ(r.status, 202) << r.raw;
  const std::string job = r.body["job_id"], id = r.body["cluster_id"];
  EXPECT_EQ(job.rfind("short-", 0), 0u) << job;
  EXPECT_LE(job.size(), 48u);
  EXPECT_EQ(id.size(), 36u);
  Reply show = Call("GET", "/v1/clusters/" + id, token_);
  ASSERT_EQ(show.status, 200) << show.raw;
  const Json& meta = show.body["cluster_metadata"];
  EXPECT_EQ(meta["id"], id);
  EXPECT_EQ(meta["project_id"], "proj-a");
  EXPECT_TRUE(meta["status"] == "CREATING" || meta["status"] == "RUNNING") << meta;
  EXPECT_EQ(meta["created_at"].get<std::string>().size(), 20u) << "yyyy-MM-ddTHH:mm:ssZ";
  const Json& spec = show.body["cluster_specification"];
  EXPECT_EQ(spec["name"], "alpha");
  EXPECT_EQ(spec["charge_mode"], 0);
  const Json& k8s = spec["k8s_cluster_specification"];
  EXPECT_EQ(k8s["k8s_cluster_id"], kK8sId);
  EXPECT_EQ(k8s["node_count"], 3);
  EXPECT_EQ(k8s["label"]["key"], "ems");
  EXPECT_EQ(k8s["label"]["value"], "true");
  EXPECT_EQ(k8s["lts_enable"], true);
  EXPECT_EQ(k8s["monitor_enable"], true);
  EXPECT_EQ(k8s["lts_connect_type"], 0);
  EXPECT_EQ(k8s["node_type"], 0);
  EXPECT_EQ(spec["memory_specification"]["huge_page_num"], 131072);
  EXPECT_EQ(spec["memory_specification"]["huge_page_flavor"], 2);
}

TEST_F(ContractTest, CreateClusterNodeCountBoundaries) {
  ExpectError(Create(Body(2)), 400, "common.00000400",
              "[k8s_cluster_specification].[node_count]: must be greater than or equal to [3]");
  ExpectError(Create(Body(513)), 400, "common.00000400",
              "[k8s_cluster_specification].[node_count]: must be less than or equal to [512]");
  Json three = Body(3);
  three["name"] = "three";
  EXPECT_EQ(Create(three).status, 202);
  Json max = Body(512);
  max["name"] = "five-twelve";
  EXPECT_EQ(Create(max).status, 202);
  Json str = Body();
  str["k8s_cluster_specification"]["node_count"] = "3";
  ExpectError(Create(str), 400, "EMS.00004000", "node_count");
  Json missing = Body();
  missing["k8s_cluster_specification"].erase("node_count");
  ExpectError(Create(missing), 400, "EMS.00004000", "node_count");
}

TEST_F(ContractTest, CreateClusterHugePageBoundaries) {
  Json low = Body();
  low["memory_specification"] = {{"huge_page_num", 131071}};
  ExpectError(Create(low), 400, "common.00000400",
              "[memory_specification].[huge_page_num]: must be greater than or equal to [131072]");
  Json high = Body();
  high["memory_specification"] = {{"huge_page_num", 2147483648LL}};
  ExpectError(Create(high), 400, "common.00000400", "huge_page_num");
  Json ok = Body();
  ok["memory_specification"] = {{"huge_page_num", 131072}, {"huge_page_flavor", 1024}};
  EXPECT_EQ(Create(ok).status, 202);
  Json flavor = Body();
  flavor["name"] = "other";
  flavor["memory_specification"] = {{"huge_page_flavor", 3}};
  ExpectError(Create(flavor), 400, "EMS.00004000", "huge_page_flavor");
}

// ems-node's arena takes 2 MB or 1 GB pages only ("huge_page_flavor must be 2 or 1024 (MB)").
// The API took any power of two up to 1024: a create with 4, 32 or 512 was accepted (202),
// and its job failed minutes later (ready_timeout), its nodes having refused to start.
TEST_F(ContractTest, CreateClusterTakesOnlyPageSizesNodesRun) {
  for (const int mb : {4, 32, 512}) {
    Json b = Body();
    b["name"] = "flavor-" + std::to_string(mb);
    b["memory_specification"] = {{"huge_page_flavor", mb}};
    ExpectError(Create(b), 400, "EMS.00004000", "huge_page_flavor");
  }
  Json two = Body();
  two["name"] = "flavor-two";
  two["memory_specification"] = {{"huge_page_flavor", 2}};
  EXPECT_EQ(Create(two).status, 202);
}

TEST_F(ContractTest, CreateClusterNameRules) {
  auto with_name = [&](const Json& name) {
    Json b = Body();
    b["name"] = name;
    return Create(b);
  };
  ExpectError(with_name("abc"), 400, "EMS.00004000", "name");    // 3 chars
  ExpectError(with_name("Abcd"), 400, "EMS.00004000", "name");   // upper first
  ExpectError(with_name("1abc"), 400, "EMS.00004000", "name");   // digit first
  ExpectError(with_name("abcd-"), 400, "EMS.00004000", "name");  // trailing '-'
  ExpectError(with_name("ab_cd"), 400, "EMS.00004000", "name");  // '_'
  ExpectError(with_name(std::string(129, 'a')), 400, "common.00000400", "name");
  ExpectError(with_name(7), 400, "EMS.00004000", "name");
  EXPECT_EQ(with_name("abcd").status, 202);
  EXPECT_EQ(with_name("aB-9").status, 202);
  EXPECT_EQ(with_name(std::string(128, 'z')).status, 202);
  // Same name in the same project: ems.00030033; another project may use it.
  ExpectError(with_name("abcd"), 400, "ems.00030033", "[abcd]");
  Json b = Body();
  b["name"] = "abcd";
  EXPECT_EQ(Call("POST", "/v1/clusters", Token("proj-b"), b.dump()).status, 202);
  // No name: one is generated.
  Json unnamed = Body();
  unnamed.erase("name");
  Reply r = Create(unnamed);
  ASSERT_EQ(r.status, 202);
  Reply show = Call("GET", "/v1/clusters/" + r.body["cluster_id"].get<std::string>(), token_);
  EXPECT_EQ(show.body["cluster_specification"]["name"].get<std::string>().rfind("ems-", 0), 0u);
}

TEST_F(ContractTest, CreateClusterLabelRules) {
  auto with_label = [&](const std::string& key, const std::string& value) {
    Json b = Body();
    b["name"] = "l" + std::to_string(key.size()) + "-" + std::to_string(value.size()) + "x";
    b["k8s_cluster_specification"]["label"] = {{"key", key}, {"value", value}};
    return Create(b);
  };
  EXPECT_EQ(with_label("ems.io_role-x", "A.b_c-9").status, 202);
  EXPECT_EQ(with_label(std::string(63, 'k'), "v").status, 202);
  ExpectError(with_label(std::string(64, 'k'), "v"), 400, "common.00000400", "label");
  ExpectError(with_label("-ems", "true"), 400, "EMS.00004000", "label.key");
  ExpectError(with_label("ems.", "true"), 400, "EMS.00004000", "label.key");
  ExpectError(with_label("ems", "tr ue"), 400, "EMS.00004000", "label.value");
  ExpectError(with_label("ems", ""), 400, "EMS.00004000", "label.value");
}

// A specification the backend cannot run (a namespace Kubernetes refuses) is a 400 naming it,
// before any cluster or job exists; the same body with another namespace is accepted.
TEST_F(ContractTest, ASpecificationTheBackendCannotRunIsRefusedAtOnce) {
  backend_.RefuseNamespace("Upper-Case");
  Json b = Body();
  b["k8s_cluster_specification"]["namespace"] = "Upper-Case";
  ExpectError(Create(b), 400, "EMS.00004000", "namespace Upper-Case cannot run");
  Json enroll = {
      {"name", "legacy"},
      {"k8s_cluster_specification", {{"k8s_cluster_id", kK8sId}, {"namespace", "Upper-Case"}}}};
  ExpectError(Call("POST", "/v1/clusters/enroll", token_, enroll.dump()), 400, "EMS.00004000",
              "namespace Upper-Case cannot run");
  Reply list = Call("GET", "/v1/clusters", token_);
  ASSERT_EQ(list.status, 200) << list.raw;
  EXPECT_TRUE(list.body["clusters"].empty()) << list.raw;
  b["k8s_cluster_specification"]["namespace"] = "lower-case";
  EXPECT_EQ(Create(b).status, 202);
}

TEST_F(ContractTest, CreateClusterRejectsMalformedBodies) {
  ExpectError(Call("POST", "/v1/clusters", token_, "{not json"), 400, "EMS.00004000", "JSON");
  ExpectError(Call("POST", "/v1/clusters", token_, "[1,2]"), 400, "EMS.00004000", "object");
  ExpectError(Call("POST", "/v1/clusters", token_, R"({"name":"abcd"})"), 400, "EMS.00004000",
              "k8s_cluster_specification is required");
  Json bad_uuid = Body();
  bad_uuid["k8s_cluster_specification"]["k8s_cluster_id"] = "0b0e7e4a4a9e4c1e9a571c2d3e4f5a6b";
  ExpectError(Create(bad_uuid), 400, "EMS.00004000", "k8s_cluster_id");
  Json charge = Body();
  charge["charge_mode"] = 1;
  ExpectError(Create(charge), 400, "common.00000400", "charge_mode");
  Json flavor = Body();
  flavor["k8s_cluster_specification"]["flavor"] = "ems..large";
  ExpectError(Create(flavor), 400, "EMS.00004000", "flavor");
  Json node_type = Body();
  node_type["k8s_cluster_specification"]["node_type"] = 3;
  ExpectError(Create(node_type), 400, "common.00000400", "node_type");
  Json lts = Body();
  lts["k8s_cluster_specification"]["lts_enable"] = "yes";
  ExpectError(Create(lts), 400, "EMS.00004000", "lts_enable");
  std::string deep(100, '[');
  ExpectError(Call("POST", "/v1/clusters", token_, deep), 400, "EMS.00004000", "nests");
  Reply big = Call("POST", "/v1/clusters", token_, std::string(2 << 20, ' '));
  EXPECT_EQ(big.status, 413);
}

TEST_F(ContractTest, ListAndShowClustersAreProjectScoped) {
  Json a = Body();
  ASSERT_EQ(Create(a).status, 202);
  a["name"] = "bravo";
  Reply b = Create(a);
  ASSERT_EQ(b.status, 202);
  Reply list = Call("GET", "/v1/clusters", token_);
  ASSERT_EQ(list.status, 200);
  ASSERT_EQ(list.body["clusters"].size(), 2u);
  EXPECT_EQ(list.body["clusters"][0]["cluster_specification"]["name"], "alpha");
  Reply second = Call("GET", "/v1/clusters?limit=1&offset=1", token_);
  ASSERT_EQ(second.body["clusters"].size(), 1u);
  EXPECT_EQ(second.body["clusters"][0]["cluster_specification"]["name"], "bravo");
  ExpectError(Call("GET", "/v1/clusters?limit=0", token_), 400, "common.00000400", "limit");
  ExpectError(Call("GET", "/v1/clusters?offset=x", token_), 400, "EMS.00004000", "offset");

  const std::string id = b.body["cluster_id"], other = Token("proj-b");
  EXPECT_EQ(Call("GET", "/v1/clusters", other).body["clusters"].size(), 0u);
  ExpectError(Call("GET", "/v1/clusters/" + id, other), 404, "ems.00030005", id);
  ExpectError(Call("DELETE", "/v1/clusters/" + id, other), 404, "ems.00030005", id);
  ExpectError(Call("POST", "/v1/clusters/" + id + "/authorization", other), 404, "ems.00030005");
  ExpectError(Call("POST", "/v1/clusters/" + id + "/expand", other, R"({"node_name_list":["n"]})"),
              404, "ems.00030005");
  ExpectError(Call("POST", "/v1/clusters/" + id + "/shrink", other, R"({"node_name_list":["n"]})"),
              404, "ems.00030005");
  ExpectError(Call("GET", std::string("/v1/clusters/") + kK8sId, token_), 404, "ems.00030005");
  ExpectError(Call("GET", "/v1/clusters/not-a-uuid", token_), 400, "EMS.00004000", "cluster_id");
}

TEST_F(ContractTest, AuthorizeClusterAnswers204) {
  Reply c = Create(Body());
  const std::string id = c.body["cluster_id"];
  Reply r = Call("POST", "/v1/clusters/" + id + "/authorization", token_);
  EXPECT_EQ(r.status, 204);
  EXPECT_TRUE(r.raw.empty());
  ExpectError(Call("POST", "/v1/clusters/xyz/authorization", token_), 400, "EMS.00004000");
}

// RFC 4122 UUIDs may be given in either case (macOS uuidgen prints upper case). The controller
// keeps one spelling, lower case: Kubernetes object names built from a cluster id must be
// lower case, and the same cluster must not be enrolled twice under two spellings.
TEST_F(ContractTest, UuidsAreReadInEitherCaseAndKeptInLowerCase) {
  backend_.SetDiscoverable({"worker-1", "worker-2", "worker-3"});
  const std::string lower = "abcdef12-3456-4789-abcd-ef0123456789";
  const std::string upper = absl::AsciiStrToUpper(lower);
  Json body = {{"name", "upper"},
               {"cluster_id", upper},
               {"k8s_cluster_specification",
                {{"k8s_cluster_id", absl::AsciiStrToUpper(kK8sId)}, {"namespace", "ems-system"}}}};
  Reply r = Call("POST", "/v1/clusters/enroll", token_, body.dump());
  ASSERT_EQ(r.status, 202) << r.raw;
  EXPECT_EQ(r.body["cluster_id"], lower);
  EXPECT_EQ(WaitJob(token_, r.body["job_id"])["status"], "COMPLETED");
  for (const std::string& id : {upper, lower}) {
    Reply show = Call("GET", "/v1/clusters/" + id, token_);
    ASSERT_EQ(show.status, 200) << id << " " << show.raw;
    EXPECT_EQ(show.body["cluster_specification"]["k8s_cluster_specification"]["k8s_cluster_id"],
              kK8sId)
        << show.raw;
  }
  Reply labels =
      Call("GET", "/v1/clusters/labels?k8s_cluster_id=" + absl::AsciiStrToUpper(kK8sId), token_);
  EXPECT_EQ(labels.status, 200) << labels.raw;
  Json again = body;
  again["name"] = "upper-two";
  again["cluster_id"] = lower;
  ExpectError(Call("POST", "/v1/clusters/enroll", token_, again.dump()), 400, "EMS.00004000",
              "cluster_id");
}

TEST_F(ContractTest, EnrollClusterValidatesAndAdopts) {
  backend_.SetDiscoverable({"worker-1", "worker-2", "worker-3"});
  Json body = {
      {"name", "legacy"},
      {"description", "old-cluster"},
      {"vpc_endpoint_id", "11111111-2222-3333-4444-555555555555"},
      {"lts_streams", {"11111111-2222-3333-4444-555555555556"}},
      {"k8s_cluster_specification", {{"k8s_cluster_id", kK8sId}, {"namespace", "ems-system"}}}};
  Reply r = Call("POST", "/v1/clusters/enroll", token_, body.dump());
  ASSERT_EQ(r.status, 202) << r.raw;
  Json job = WaitJob(token_, r.body["job_id"]);
  EXPECT_EQ(job["status"], "COMPLETED") << job;
  EXPECT_EQ(job["name"], "EnrollCluster");
  Reply show = Call("GET", "/v1/clusters/" + r.body["cluster_id"].get<std::string>(), token_);
  EXPECT_EQ(show.body["cluster_metadata"]["status"], "RUNNING");
  EXPECT_EQ(show.body["cluster_metadata"]["available_node_count"], 3);
  EXPECT_EQ(show.body["cluster_specification"]["k8s_cluster_specification"]["version"], "v1");

  Json given_id = body;
  given_id["name"] = "legacy-two";
  given_id["cluster_id"] = "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee";
  Reply r2 = Call("POST", "/v1/clusters/enroll", token_, given_id.dump());
  ASSERT_EQ(r2.status, 202) << r2.raw;
  EXPECT_EQ(r2.body["cluster_id"], "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee");
  ExpectError(Call("POST", "/v1/clusters/enroll", token_, given_id.dump()), 400, "EMS.00004000",
              "cluster_id");
  // Backends name a cluster's objects (its DaemonSet, ConfigMap, Secret) after the first 8
  // characters of its id: an id sharing them would share, and on delete remove, those.
  Json lookalike = given_id;
  lookalike["name"] = "legacy-three";
  lookalike["cluster_id"] = "aaaaaaaa-0000-4000-8000-000000000000";
  ExpectError(Call("POST", "/v1/clusters/enroll", token_, lookalike.dump()), 400, "EMS.00004000",
              "same 8 characters");

  Json no_ns = body;
  no_ns["k8s_cluster_specification"].erase("namespace");
  ExpectError(Call("POST", "/v1/clusters/enroll", token_, no_ns.dump()), 400, "EMS.00004000",
              "namespace");
  Json no_name = body;
  no_name.erase("name");
  ExpectError(Call("POST", "/v1/clusters/enroll", token_, no_name.dump()), 400, "EMS.00004000",
              "name is required");
  Json bad_desc = body;
  bad_desc["description"] = "ends-with-";
  ExpectError(Call("POST", "/v1/clusters/enroll", token_, bad_desc.dump()), 400, "EMS.00004000",
              "description");
  Json bad_vpc = body;
  bad_vpc["vpc_endpoint_id"] = "nope";
  ExpectError(Call("POST", "/v1/clusters/enroll", token_, bad_vpc.dump()), 400, "EMS.00004000",
              "vpc_endpoint_id");
}

TEST_F(ContractTest, AnEnrollThatFindsFewerThanThreeNodesFails) {
  // A cluster has 3 to 512 nodes; an enrolled one of 2 could not even be shrunk or expanded
  // within the rules.
  backend_.SetDiscoverable({"worker-1", "worker-2"});
  Json body = {{"name", "tiny"},
               {"k8s_cluster_specification", {{"k8s_cluster_id", kK8sId}, {"namespace", "ems"}}}};
  Reply r = Call("POST", "/v1/clusters/enroll", token_, body.dump());
  ASSERT_EQ(r.status, 202) << r.raw;
  Json job = WaitJob(token_, r.body["job_id"]);
  EXPECT_EQ(job["status"], "FAILED") << job;
  EXPECT_NE(job.dump().find("2 nodes carry label ems=true; a cluster has 3 to 512"),
            std::string::npos)
      << job;
}

TEST_F(ContractTest, UnknownRoutesAnswerInTheApiFormat) {
  Reply r = Call("GET", "/v1/nothing", token_);
  EXPECT_EQ(r.status, 404);
  EXPECT_EQ(r.body.value("error_code", ""), "EMS.00004040");
  httplib::Client c("127.0.0.1", server_->port());
  auto health = c.Get("/healthz");
  ASSERT_TRUE(health);
  EXPECT_EQ(health->status, 200);
  auto metrics = c.Get("/metrics");
  ASSERT_TRUE(metrics);
  EXPECT_NE(metrics->body.find("ems_controller_http_requests_total"), std::string::npos);
}

}  // namespace
}  // namespace ems::controller::testing
