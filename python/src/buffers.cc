#include "buffers.h"

#include <cstring>
#include <memory>
#include <type_traits>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "errors.h"

namespace ems::python {
namespace py = pybind11;
namespace {

// Format codes of one native integer, e.g. "I", "<q", "=H".
bool IntegerFormat(const char* format, char* code) {
  if (format == nullptr) return false;
  if (*format == '@' || *format == '=' || *format == '<') ++format;
  if (format[0] == '\0' || format[1] != '\0') return false;
  *code = format[0];
  return std::strchr("bBhHiIlLqQnN", *code) != nullptr;
}

template <typename T>
void Convert(const void* data, size_t n, std::vector<uint32_t>& out) {
  const T* v = static_cast<const T*>(data);
  out.resize(n);
  for (size_t i = 0; i < n; ++i) {
    T t;
    std::memcpy(&t, v + i, sizeof(T));
    bool bad = static_cast<uint64_t>(t) > UINT32_MAX;
    if constexpr (std::is_signed_v<T>) bad = bad || t < 0;
    if (bad) {
      Raise(absl::InvalidArgumentError(
          absl::StrCat("tokens[", i, "] = ", t, " is not a 32-bit unsigned token id")));
    }
    out[i] = static_cast<uint32_t>(t);
  }
}

// Releases a Py_buffer that GetBuffer filled when the scope ends. REQUIRES: the GIL.
class ReleaseOnExit {
 public:
  explicit ReleaseOnExit(Py_buffer* buffer) : buffer_(buffer) {}
  ReleaseOnExit(const ReleaseOnExit&) = delete;
  ReleaseOnExit& operator=(const ReleaseOnExit&) = delete;
  ~ReleaseOnExit() { PyBuffer_Release(buffer_); }

 private:
  Py_buffer* const buffer_;
};

}  // namespace

BufferView::BufferView(py::handle obj, bool writable, const std::string& what) {
  if (!PyObject_CheckBuffer(obj.ptr())) {
    throw py::type_error(absl::StrCat(what, ": a ", Py_TYPE(obj.ptr())->tp_name,
                                      " has no buffer protocol (pass bytes, bytearray, "
                                      "memoryview or a numpy array)"));
  }
  // FORMAT is asked for so exporters that insist on it (some numpy dtypes) still answer.
  const int flags = PyBUF_C_CONTIGUOUS | PyBUF_FORMAT | (writable ? PyBUF_WRITABLE : 0);
  if (PyObject_GetBuffer(obj.ptr(), &view_, flags) != 0) {
    PyErr_Clear();
    // Ask again without the requirements to tell the caller which one failed.
    Py_buffer probe{};
    std::string why = "cannot export a buffer";
    if (PyObject_GetBuffer(obj.ptr(), &probe, PyBUF_FULL_RO) == 0) {
      why = writable && probe.readonly
                ? "is read-only (pass a bytearray, memoryview of one or "
                  "a writable numpy array)"
                : "is not C-contiguous (copy it with numpy.ascontiguousarray)";
      PyBuffer_Release(&probe);
    } else {
      PyErr_Clear();
    }
    Raise(absl::InvalidArgumentError(
        absl::StrCat(what, ": ", Py_TYPE(obj.ptr())->tp_name, " ", why)));
  }
  held_ = true;
}

BufferView::BufferView(BufferView&& other) noexcept : view_(other.view_), held_(other.held_) {
  other.held_ = false;
}

BufferView::~BufferView() {
  if (held_) PyBuffer_Release(&view_);
}

Tokens::Tokens(py::handle obj) {
  if (PyObject_CheckBuffer(obj.ptr())) {
    Py_buffer probe{};
    if (PyObject_GetBuffer(obj.ptr(), &probe, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT) != 0) {
      PyErr_Clear();
      Raise(absl::InvalidArgumentError("tokens: the buffer is not C-contiguous"));
    }
    // Released on every path, the throwing ones too (a bad token raises): an export never
    // released pins the object for good (a bytearray or array.array then refuses to resize).
    const ReleaseOnExit release(&probe);
    char code = 0;
    const bool integer = IntegerFormat(probe.format, &code);
    const size_t n = probe.itemsize > 0 ? static_cast<size_t>(probe.len / probe.itemsize) : 0;
    if (!integer) {
      Raise(absl::InvalidArgumentError(absl::StrCat("tokens: buffer of format '",
                                                    probe.format != nullptr ? probe.format : "B",
                                                    "' is not an integer array")));
    }
    if ((code == 'I' || code == 'L' || code == 'N') && probe.itemsize == 4) {
      view_ = std::make_unique<BufferView>(obj, false, "tokens");
      span_ = {reinterpret_cast<const uint32_t*>(view_->bytes().data()), n};
      return;
    }
    const bool is_signed = std::strchr("bhilqn", code) != nullptr;
    switch (probe.itemsize * (is_signed ? -1 : 1)) {
      case 1:
        Convert<uint8_t>(probe.buf, n, owned_);
        break;
      case -1:
        Convert<int8_t>(probe.buf, n, owned_);
        break;
      case 2:
        Convert<uint16_t>(probe.buf, n, owned_);
        break;
      case -2:
        Convert<int16_t>(probe.buf, n, owned_);
        break;
      case -4:
        Convert<int32_t>(probe.buf, n, owned_);
        break;
      case 8:
        Convert<uint64_t>(probe.buf, n, owned_);
        break;
      case -8:
        Convert<int64_t>(probe.buf, n, owned_);
        break;
      default:
        break;
    }
    span_ = owned_;
    return;
  }
  if (!PySequence_Check(obj.ptr()) || PyUnicode_Check(obj.ptr())) {
    throw py::type_error(
        absl::StrCat("tokens: expected a sequence of ints or an integer array, "
                     "got ",
                     Py_TYPE(obj.ptr())->tp_name));
  }
  py::sequence seq = py::reinterpret_borrow<py::sequence>(obj);
  owned_.resize(seq.size());
  for (size_t i = 0; i < owned_.size(); ++i) {
    py::object item = seq[i];
    if (!PyIndex_Check(item.ptr())) {
      throw py::type_error(
          absl::StrCat("tokens[", i, "]: expected an int, got ", Py_TYPE(item.ptr())->tp_name));
    }
    py::object index = py::reinterpret_steal<py::object>(PyNumber_Index(item.ptr()));
    if (!index) throw py::error_already_set();
    int overflow = 0;
    const long long v = PyLong_AsLongLongAndOverflow(index.ptr(), &overflow);
    if (overflow != 0 || v < 0 || v > static_cast<long long>(UINT32_MAX)) {
      Raise(absl::InvalidArgumentError(absl::StrCat(
          "tokens[", i, "] = ", std::string(py::str(item)), " is not a 32-bit unsigned token id")));
    }
    owned_[i] = static_cast<uint32_t>(v);
  }
  span_ = owned_;
}

}  // namespace ems::python
