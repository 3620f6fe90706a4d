// emsctl: drives the EMS REST API (see `emsctl help`).
#include <iostream>
#include <string>
#include <vector>

#include "controller/emsctl/cli.h"

int main(int argc, char** argv) {
  return ems::emsctl::Run(std::vector<std::string>(argv + 1, argv + argc), std::cout, std::cerr);
}
