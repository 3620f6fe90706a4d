// emsctl's command line: positional words and --key value / --key=value / -o value options.
#ifndef EMS_CONTROLLER_EMSCTL_ARGS_H_
#define EMS_CONTROLLER_EMSCTL_ARGS_H_

#include <map>
#include <string>
#include <vector>

namespace ems::emsctl {

struct Args {
  std::vector<std::string> positional;
  std::map<std::string, std::string> options;

  bool Has(const std::string& k) const { return options.contains(k); }
  std::string Get(const std::string& k, const std::string& def = "") const {
    auto it = options.find(k);
    return it == options.end() ? def : it->second;
  }
};

// "--key=value", "--key value", "-o value"; --wait and --help take no value. False (with
// `error` set) when a flag lacks its value.
bool Parse(const std::vector<std::string>& in, Args* out, std::string* error);

}  // namespace ems::emsctl

#endif  // EMS_CONTROLLER_EMSCTL_ARGS_H_
