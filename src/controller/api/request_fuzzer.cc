// libFuzzer target over EMS API request parsing and validation, and over the controller's own
// record parsing (a corrupt state file must be an error, never a crash). The first byte picks
// the parser; the rest is its input. Built with -fsanitize=fuzzer when the compiler is clang,
// otherwise with fuzz_replay_main.cc (replays the corpus plus deterministic mutations).
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>

#include "controller/api/errors.h"
#include "controller/api/validation.h"
#include "controller/model.h"

namespace {

using namespace ems::controller;

// Every error must render as an API error body, whatever bytes its message holds.
void Render(const absl::Status& s) {
  if (!s.ok()) (void)api::ToHttp(s);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const std::string text(reinterpret_cast<const char*>(data) + 1, size - 1);
  switch (data[0] % 8) {
    case 0: {
      auto spec = api::ParseCreateClusterRequest(text);
      Render(spec.status());
      if (spec.ok()) (void)DumpJson(ClusterSpecToApi(*spec));
      break;
    }
    case 1: {
      auto r = api::ParseEnrollClusterRequest(text);
      Render(r.status());
      if (r.ok()) (void)DumpJson(r->extras);
      break;
    }
    case 2:
      Render(api::ParseNodeNameList(text).status());
      break;
    case 3:
      Render(api::ParseJobIds(text).status());
      break;
    case 4: {
      const size_t amp = text.find('&');
      std::optional<std::string> limit = text.substr(0, amp);
      std::optional<std::string> offset;
      if (amp != std::string::npos) offset = text.substr(amp + 1);
      Render(api::ParsePage(limit, offset, {"Fuzz", 100, 2000, 2000}).status());
      Render(api::ParseJobType(offset).status());
      break;
    }
    case 5:
      Render(api::ValidateUuid("cluster_id", text));
      Render(api::ValidateJobId("job_id", text));
      Render(api::ValidateProjectId(text));
      (void)api::IsClusterName(text);
      (void)api::IsLabelPart(text);
      (void)api::IsNodeName(text);
      break;
    case 6: {
      auto c = ClusterFromRecord(text);
      if (c.ok()) (void)DumpJson(ClusterToApi(*c));
      break;
    }
    case 7: {
      auto j = JobFromRecord(text);
      if (j.ok()) (void)DumpJson(JobToApi(*j));
      break;
    }
  }
  return 0;
}
