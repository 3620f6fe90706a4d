// Output helpers of emsctl: aligned tables for people and a job progress bar.
#ifndef EMS_CONTROLLER_EMSCTL_FORMAT_H_
#define EMS_CONTROLLER_EMSCTL_FORMAT_H_

#include <ostream>
#include <string>
#include <vector>

namespace ems::emsctl {

// Columns padded to their widest cell; the header in capitals.
class Table {
 public:
  explicit Table(std::vector<std::string> header) : header_(std::move(header)) {}
  void Add(std::vector<std::string> row) { rows_.push_back(std::move(row)); }
  void Print(std::ostream& out) const;

 private:
  std::vector<std::string> header_;
  std::vector<std::vector<std::string>> rows_;
};

// "[##########----------]  50.0%" with `width` cells.
std::string ProgressBar(double percent, int width = 30);

}  // namespace ems::emsctl

#endif  // EMS_CONTROLLER_EMSCTL_FORMAT_H_
