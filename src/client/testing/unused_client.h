// A Client for tests of code that takes one: every call fails with UNIMPLEMENTED (a batch,
// with an error per item) until a test overrides the ones it means to use, so a fake names
// only what it fakes and a call it did not expect shows up as an error.
#ifndef EMS_CLIENT_TESTING_UNUSED_CLIENT_H_
#define EMS_CLIENT_TESTING_UNUSED_CLIENT_H_

#include <vector>

#include "absl/strings/str_cat.h"
#include "client/client.h"
#include "ems/v1/data.pb.h"

namespace ems::testing {

class UnusedClient : public Client {
 public:
  absl::Status Put(const BlockKey&, absl::Span<const uint8_t>, const BlockKey*) override {
    return Unused("Put");
  }
  absl::StatusOr<size_t> Get(const BlockKey&, absl::Span<uint8_t>) override {
    return Unused("Get");
  }
  std::vector<absl::Status> BatchPut(absl::Span<const PutItem> items) override {
    return std::vector<absl::Status>(items.size(), Unused("BatchPut"));
  }
  std::vector<absl::StatusOr<size_t>> BatchGet(absl::Span<const GetItem> items) override {
    return std::vector<absl::StatusOr<size_t>>(items.size(), Unused("BatchGet"));
  }
  absl::StatusOr<size_t> MatchPrefix(absl::Span<const BlockKey>) override {
    return Unused("MatchPrefix");
  }
  absl::StatusOr<std::vector<bool>> Exists(absl::Span<const BlockKey>) override {
    return Unused("Exists");
  }
  absl::StatusOr<size_t> Remove(absl::Span<const BlockKey>) override { return Unused("Remove"); }
  absl::StatusOr<v1::StatsResponse> Stats() override { return Unused("Stats"); }
  ClientCounters counters() const override { return {}; }
  uint64_t epoch() const override { return 0; }

 private:
  static absl::Status Unused(const char* call) {
    return absl::UnimplementedError(absl::StrCat(call, " is not faked by this test"));
  }
};

}  // namespace ems::testing

#endif  // EMS_CLIENT_TESTING_UNUSED_CLIENT_H_
