#include "errors.h"

#include <array>
#include <string>

namespace ems::python {
namespace py = pybind11;
namespace {

constexpr int kCodes = 17;  // OK .. UNAUTHENTICATED

struct ErrorSpec {
  const char* name;   // class name
  const char* code;   // canonical code name
  PyObject* builtin;  // second base, or nullptr
};

// Classes by code; index 0 (OK) holds the EmsError base. Owned references, kept for the life
// of the interpreter (a module's exception classes are never unloaded).
std::array<PyObject*, kCodes> classes{};

ErrorSpec Spec(int code) {
  switch (static_cast<absl::StatusCode>(code)) {
    case absl::StatusCode::kCancelled:
      return {"CancelledError", "CANCELLED", nullptr};
    case absl::StatusCode::kUnknown:
      return {"UnknownError", "UNKNOWN", nullptr};
    case absl::StatusCode::kInvalidArgument:
      return {"InvalidArgumentError", "INVALID_ARGUMENT", PyExc_ValueError};
    case absl::StatusCode::kDeadlineExceeded:
      return {"DeadlineExceededError", "DEADLINE_EXCEEDED", PyExc_TimeoutError};
    case absl::StatusCode::kNotFound:
      return {"NotFoundError", "NOT_FOUND", PyExc_LookupError};
    case absl::StatusCode::kAlreadyExists:
      return {"AlreadyExistsError", "ALREADY_EXISTS", nullptr};
    case absl::StatusCode::kPermissionDenied:
      return {"PermissionDeniedError", "PERMISSION_DENIED", PyExc_PermissionError};
    case absl::StatusCode::kResourceExhausted:
      return {"ResourceExhaustedError", "RESOURCE_EXHAUSTED", nullptr};
    case absl::StatusCode::kFailedPrecondition:
      return {"FailedPreconditionError", "FAILED_PRECONDITION", nullptr};
    case absl::StatusCode::kAborted:
      return {"AbortedError", "ABORTED", nullptr};
    case absl::StatusCode::kOutOfRange:
      return {"OutOfRangeError", "OUT_OF_RANGE", PyExc_ValueError};
    case absl::StatusCode::kUnimplemented:
      return {"UnimplementedError", "UNIMPLEMENTED", PyExc_NotImplementedError};
    case absl::StatusCode::kInternal:
      return {"InternalError", "INTERNAL", nullptr};
    case absl::StatusCode::kUnavailable:
      return {"UnavailableError", "UNAVAILABLE", PyExc_ConnectionError};
    case absl::StatusCode::kDataLoss:
      return {"DataLossError", "DATA_LOSS", nullptr};
    case absl::StatusCode::kUnauthenticated:
      return {"UnauthenticatedError", "UNAUTHENTICATED", PyExc_PermissionError};
    default:
      return {"EmsError", "", nullptr};
  }
}

PyObject* ClassFor(absl::StatusCode code) {
  const int c = static_cast<int>(code);
  return c > 0 && c < kCodes ? classes[c] : classes[static_cast<int>(absl::StatusCode::kUnknown)];
}

}  // namespace

void RegisterErrors(py::module_& m) {
  py::dict base_attrs;
  base_attrs["code"] = py::none();
  base_attrs["code_name"] = py::none();
  classes[0] = PyErr_NewExceptionWithDoc(
      "ems.EmsError", "Base of every EMS error; `code` is the canonical status code.",
      PyExc_Exception, base_attrs.ptr());
  if (classes[0] == nullptr) throw py::error_already_set();
  m.attr("EmsError") = py::handle(classes[0]);
  for (int c = 1; c < kCodes; ++c) {
    const ErrorSpec spec = Spec(c);
    py::tuple bases = spec.builtin != nullptr
                          ? py::make_tuple(py::handle(classes[0]), py::handle(spec.builtin))
                          : py::make_tuple(py::handle(classes[0]));
    py::dict attrs;
    attrs["code"] = c;
    attrs["code_name"] = spec.code;
    const std::string qualified = std::string("ems.") + spec.name;
    classes[c] = PyErr_NewExceptionWithDoc(qualified.c_str(),
                                           ("EMS status " + std::string(spec.code) + ".").c_str(),
                                           bases.ptr(), attrs.ptr());
    if (classes[c] == nullptr) throw py::error_already_set();
    m.attr(spec.name) = py::handle(classes[c]);
  }
}

py::object ErrorFor(const absl::Status& status) {
  return py::reinterpret_borrow<py::object>(ClassFor(status.code()))(std::string(status.message()));
}

void Raise(const absl::Status& status) {
  PyErr_SetString(ClassFor(status.code()), std::string(status.message()).c_str());
  throw py::error_already_set();
}

}  // namespace ems::python
