#include "controller/api/validation.h"

#include "controller/api/errors.h"
#include "gtest/gtest.h"

namespace ems::controller::api {
namespace {

TEST(ValidationTest, Patterns) {
  EXPECT_TRUE(IsClusterName("abcd"));
  EXPECT_FALSE(IsClusterName("abc"));
  EXPECT_FALSE(IsClusterName("abc-"));
  EXPECT_TRUE(IsLabelPart("a"));
  EXPECT_FALSE(IsLabelPart("a-"));
  EXPECT_TRUE(IsNodeName("local-0"));
  EXPECT_TRUE(IsNodeName("ip-10-0-0-1.ec2.internal"));
  EXPECT_FALSE(IsNodeName("Local-0"));
  EXPECT_TRUE(IsJobId("short-abc_D-1"));
  EXPECT_TRUE(IsJobId("long-ems-custom-0123456789abcdef0123456789abcdef"));
  EXPECT_FALSE(IsJobId("long-ems-custom-0123456789abcdef0123456789abcdef0"));  // 49
  EXPECT_FALSE(IsJobId("medium-1"));
  EXPECT_FALSE(IsJobId("short-a.b"));
  EXPECT_TRUE(IsProjectId("0c1503d710984bad92306faea3654dfd"));
  EXPECT_FALSE(IsProjectId("ABC"));
  EXPECT_FALSE(IsProjectId(""));
}

TEST(ValidationTest, PageDefaultsAndRanges) {
  auto p = ParsePage(std::nullopt, std::nullopt, {"X", 1000});
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(p->limit, 1000);
  EXPECT_EQ(p->offset, 0);
  p = ParsePage("10", "11", {"X", 1000});
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(p->limit, 10);
  EXPECT_EQ(p->offset, 11);
  EXPECT_EQ(ErrorCodeOf(ParsePage("", std::nullopt, {"X", 1}).status()), kCodeInvalidParameter);
  EXPECT_EQ(ErrorCodeOf(ParsePage("+5", std::nullopt, {"X", 1}).status()), kCodeInvalidParameter);
  EXPECT_EQ(ErrorCodeOf(ParsePage("1.5", std::nullopt, {"X", 1}).status()), kCodeInvalidParameter);
  EXPECT_EQ(ErrorCodeOf(ParsePage("-", std::nullopt, {"X", 1}).status()), kCodeInvalidParameter);
  EXPECT_EQ(ErrorCodeOf(ParsePage("-1", std::nullopt, {"X", 1}).status()), kCodeRange);
  EXPECT_EQ(ParsePage("-1", std::nullopt, {"X", 1}).status().message(),
            "[X].[limit]: must be greater than or equal to [1]");
}

TEST(ValidationTest, ErrorsMapToHttp) {
  HttpError e = ToHttp(RangeError("a", "b", true, "3"));
  EXPECT_EQ(e.http_status, 400);
  EXPECT_EQ(
      e.body,
      R"({"error_code":"common.00000400","error_msg":"[a].[b]: must be greater than or equal to [3]"})");
  EXPECT_EQ(ToHttp(AuthFailed("x")).http_status, 401);
  EXPECT_EQ(ToHttp(ClusterNotFound("c")).http_status, 404);
  EXPECT_EQ(ToHttp(absl::InternalError("boom")).http_status, 500);
  // Invalid UTF-8 in a message must not throw out of the JSON writer.
  EXPECT_EQ(ToHttp(InvalidParameter("\xff\xfe")).http_status, 400);
}

TEST(ValidationTest, CreateRequestKeepsGivenOptionalFields) {
  auto s = ParseCreateClusterRequest(R"({
    "name": "prod-cache", "description": "kv cache", "charge_mode": 0,
    "k8s_cluster_specification": {"k8s_cluster_id": "0B0E7E4A-4A9E-4C1E-9A57-1C2D3E4F5A6B",
      "namespace": "kv", "label": {"key": "pool", "value": "kv1"}, "node_count": 8,
      "flavor": "ems.large", "version": "25.12.0", "lts_enable": false, "lts_connect_type": 1,
      "monitor_enable": false, "node_type": 1},
    "memory_specification": {"huge_page_num": 200000, "huge_page_flavor": 2}})");
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(s->k8s.ns, "kv");
  EXPECT_EQ(s->k8s.label.key, "pool");
  EXPECT_EQ(s->k8s.node_count, 8);
  EXPECT_EQ(s->k8s.flavor, "ems.large");
  EXPECT_FALSE(s->k8s.lts_enable);
  EXPECT_EQ(s->k8s.lts_connect_type, 1);
  EXPECT_EQ(s->k8s.node_type, 1);
  EXPECT_EQ(s->memory.huge_page_num, 200000);
  auto bad = ParseCreateClusterRequest(R"({"k8s_cluster_specification": {
      "k8s_cluster_id": "0b0e7e4a-4a9e-4c1e-9a57-1c2d3e4f5a6b", "node_count": 3,
      "namespace": "Kv-"}})");
  EXPECT_EQ(ErrorCodeOf(bad.status()), kCodeInvalidParameter);
}

}  // namespace
}  // namespace ems::controller::api
