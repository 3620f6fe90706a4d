#include "controller/emsctl/args.h"

#include "controller/emsctl/cli.h"

namespace ems::emsctl {
namespace {

bool IsBoolFlag(const std::string& k) { return k == "wait" || k == "help" || k == "h"; }

}  // namespace

bool Parse(const std::vector<std::string>& in, Args* out, std::string* error) {
  for (size_t i = 0; i < in.size(); ++i) {
    const std::string& a = in[i];
    if (a.size() < 2 || a[0] != '-' || a == "--") {
      out->positional.push_back(a);
      continue;
    }
    std::string key = a.substr(a[1] == '-' ? 2 : 1);
    const size_t eq = key.find('=');
    if (eq != std::string::npos) {
      out->options[key.substr(0, eq)] = key.substr(eq + 1);
    } else if (IsBoolFlag(key)) {
      out->options[key] = "true";
    } else if (i + 1 < in.size()) {
      out->options[key] = in[++i];
    } else {
      *error = "flag --" + key + " needs a value";
      return false;
    }
  }
  if (out->Has("output")) out->options["o"] = out->Get("output");
  return true;
}

std::string Usage() {
  return R"(emsctl: command line of the EMS REST API

usage: emsctl [--endpoint URL] [--token TOKEN] [-o table|json] COMMAND

  token create --project P [--admin_token T | --admin_token_file F]
                                  mint a 24 h project token; prints the token alone
  cluster create --nodes N [--name NAME] [--label key=value] [--huge_page_num N]
                 [--huge_page_flavor MB] [--k8s_cluster_id UUID] [--namespace NS] [--wait]
  cluster list
  cluster show CLUSTER_ID
  cluster delete CLUSTER_ID [--wait]
  cluster expand CLUSTER_ID NODE... [--wait]
  cluster shrink CLUSTER_ID NODE... [--wait]
  job list [--type short|long|all]
  job show JOB_ID
  job cancel JOB_ID...
  job wait JOB_ID [--timeout SECONDS]   progress bar on stderr, final status on stdout
  credential create [--project P]       a cdKey for the project (default: the token's)
  credential show [--project P]

Defaults: --endpoint $EMS_ENDPOINT or http://127.0.0.1:8080; --token $EMS_TOKEN;
--admin_token $EMS_ADMIN_TOKEN (token create from a loopback address needs none).
Exit codes: 0 ok, 1 usage, 2 request rejected (400/403), 3 auth (401), 4 not found (404),
5 unreachable or server error, 6 job FAILED or STOPPED, 7 job wait timed out.
)";
}

}  // namespace ems::emsctl
