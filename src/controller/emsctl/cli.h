// emsctl: the command line of the EMS REST API. Run() is the whole program minus main(), so
// tests drive it in-process. Tables for people, `-o json` for scripts; exit codes below.
#ifndef EMS_CONTROLLER_EMSCTL_CLI_H_
#define EMS_CONTROLLER_EMSCTL_CLI_H_

#include <ostream>
#include <string>
#include <vector>

namespace ems::emsctl {

enum ExitCode {
  kExitOk = 0,
  kExitUsage = 1,        // bad command line
  kExitApiError = 2,     // the API rejected the request (400, 403)
  kExitAuth = 3,         // 401: missing, invalid or expired token
  kExitNotFound = 4,     // 404
  kExitUnavailable = 5,  // no answer, or a 5xx
  kExitJobFailed = 6,    // job wait: the job ended FAILED or STOPPED
  kExitTimeout = 7,      // job wait: still running at --timeout
};

// `args` excludes the program name. Reads EMS_ENDPOINT, EMS_TOKEN and EMS_ADMIN_TOKEN from the
// environment when the flags are absent.
int Run(const std::vector<std::string>& args, std::ostream& out, std::ostream& err);

// The usage text (also printed by `emsctl help`).
std::string Usage();

}  // namespace ems::emsctl

#endif  // EMS_CONTROLLER_EMSCTL_CLI_H_
