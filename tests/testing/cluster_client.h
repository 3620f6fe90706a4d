// Client-side helpers for tests against a testing::Cluster: a routed client, and bulk puts and
// verified reads of the deterministic blocks of testing/blocks.h.
#ifndef EMS_TESTS_TESTING_CLUSTER_CLIENT_H_
#define EMS_TESTS_TESTING_CLUSTER_CLIENT_H_

#include <memory>
#include <vector>

#include "client/client.h"
#include "gtest/gtest.h"
#include "testing/blocks.h"
#include "testing/cluster.h"

namespace ems::testing {

inline constexpr size_t kBlockBytes = 64 << 10;

// A client of the cluster with short timeouts, so a dead node costs a test little time.
inline std::unique_ptr<Client> ClusterClient(Cluster& cluster, ClientOptions options = {}) {
  options.controller = cluster.controller_address();
  options.cluster = "test";
  options.timeout = absl::Seconds(2);
  options.map_refresh = absl::Milliseconds(200);
  auto c = Client::Connect(options);
  EXPECT_TRUE(c.ok()) << c.status();
  return c.ok() ? *std::move(c) : nullptr;
}

// Reads blocks [0, n): how many come back intact; fails the test on any wrong byte.
inline int CountReadable(Client& client, int n) {
  int ok = 0;
  std::vector<uint8_t> out(kBlockBytes);
  for (int i = 0; i < n; ++i) {
    auto got = client.Get(TestKey(i), absl::MakeSpan(out));
    if (!got.ok()) {
      EXPECT_EQ(got.status().code(), absl::StatusCode::kNotFound) << got.status();
      continue;
    }
    EXPECT_EQ(out, TestValue(i, kBlockBytes)) << "block " << i << " has wrong bytes";
    ++ok;
  }
  return ok;
}

// Stores blocks [first, first + n) in one batch.
inline void PutAll(Client& client, int n, int first = 0) {
  std::vector<std::vector<uint8_t>> values;
  std::vector<BlockKey> keys;
  for (int i = first; i < first + n; ++i) {
    values.push_back(TestValue(i, kBlockBytes));
    keys.push_back(TestKey(i));
  }
  std::vector<PutItem> items;
  for (int i = 0; i < n; ++i) items.push_back({keys[i], values[i], nullptr});
  for (const absl::Status& s : client.BatchPut(items)) ASSERT_TRUE(s.ok()) << s;
}

}  // namespace ems::testing

#endif  // EMS_TESTS_TESTING_CLUSTER_CLIENT_H_
