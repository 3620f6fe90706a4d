// Process-wide logging setup (spdlog). Libraries log through spdlog's default logger.
#ifndef EMS_COMMON_LOGGING_H_
#define EMS_COMMON_LOGGING_H_

#include "absl/strings/string_view.h"

namespace ems {

// Sets the default logger's level ("trace".."off") and a pattern with time and thread.
// Logs go to stderr so stdout stays free for a binary's own output (JSON lines, tables).
void InitLogging(absl::string_view level);

}  // namespace ems

#endif  // EMS_COMMON_LOGGING_H_
