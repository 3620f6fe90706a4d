// Pieces of the ems._ems extension module, registered in order by module.cc.
#ifndef EMS_PYTHON_SRC_MODULE_H_
#define EMS_PYTHON_SRC_MODULE_H_

#include <pybind11/pybind11.h>

#include <string>

#include "common/key.h"

namespace ems::python {

// ems.Key (a BlockKey). Registered before anything that takes or returns keys.
void RegisterKey(pybind11::module_& m);
void RegisterHashing(pybind11::module_& m);
void RegisterClient(pybind11::module_& m);

// A digest from a 16-byte bytes-like object; InvalidArgumentError naming `what` otherwise.
Digest DigestFrom(pybind11::handle obj, const std::string& what);

}  // namespace ems::python

#endif  // EMS_PYTHON_SRC_MODULE_H_
