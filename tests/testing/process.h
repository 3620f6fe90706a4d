// Test helpers over common/subprocess.h: binaries come from this build's bin directory.
#ifndef EMS_TESTS_TESTING_PROCESS_H_
#define EMS_TESTS_TESTING_PROCESS_H_

#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/subprocess.h"

#ifndef EMS_BIN_DIR
#error "EMS_BIN_DIR must point at the build's bin directory"
#endif

namespace ems::testing {

using ::ems::Process;

inline std::string BinPath(const std::string& name) {
  return absl::StrCat(EMS_BIN_DIR, "/", name);
}

inline absl::StatusOr<std::unique_ptr<Process>> StartNode(const std::vector<std::string>& extra) {
  return ::ems::StartNode(BinPath("ems-node"), extra);
}

}  // namespace ems::testing

#endif  // EMS_TESTS_TESTING_PROCESS_H_
