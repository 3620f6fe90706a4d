// Python exceptions for absl::Status codes: ems.EmsError and one subclass per canonical code,
// each also deriving from the nearest built-in (NotFoundError is a LookupError,
// InvalidArgumentError a ValueError, UnavailableError a ConnectionError, ...).
#ifndef EMS_PYTHON_SRC_ERRORS_H_
#define EMS_PYTHON_SRC_ERRORS_H_

#include <pybind11/pybind11.h>

#include "absl/status/status.h"

namespace ems::python {

// Creates the classes and adds them to `m`. Called once, at import.
void RegisterErrors(pybind11::module_& m);

// An (unraised) exception object for a non-OK status.
pybind11::object ErrorFor(const absl::Status& status);

// Raises the exception for `status`. REQUIRES: !status.ok() and the GIL is held.
[[noreturn]] void Raise(const absl::Status& status);

// Raises if `status` is not OK.
inline void ThrowIfError(const absl::Status& status) {
  if (!status.ok()) Raise(status);
}

}  // namespace ems::python

#endif  // EMS_PYTHON_SRC_ERRORS_H_
