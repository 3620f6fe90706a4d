#include "controller/emsctl/format.h"

#include <algorithm>
#include <cstdio>

namespace ems::emsctl {

void Table::Print(std::ostream& out) const {
  std::vector<size_t> widths(header_.size(), 0);
  auto measure = [&](const std::vector<std::string>& row) {
    for (size_t i = 0; i < row.size() && i < widths.size(); ++i) {
      widths[i] = std::max(widths[i], row[i].size());
    }
  };
  measure(header_);
  for (const auto& r : rows_) measure(r);
  auto print = [&](const std::vector<std::string>& row) {
    for (size_t i = 0; i < widths.size(); ++i) {
      const std::string cell = i < row.size() ? row[i] : "";
      out << cell;
      if (i + 1 < widths.size()) out << std::string(widths[i] - cell.size() + 2, ' ');
    }
    out << "\n";
  };
  print(header_);
  for (const auto& r : rows_) print(r);
}

std::string ProgressBar(double percent, int width) {
  percent = std::clamp(percent, 0.0, 100.0);
  const int filled = static_cast<int>(percent / 100.0 * width + 0.5);
  char pct[16];
  std::snprintf(pct, sizeof(pct), "%5.1f%%", percent);
  return "[" + std::string(filled, '#') + std::string(width - filled, '-') + "] " + pct;
}

}  // namespace ems::emsctl
