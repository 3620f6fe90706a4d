// Zero-copy access to Python objects with the buffer protocol (bytes, bytearray, memoryview,
// numpy arrays, mmap, ...): the C++ client reads from and writes into the object's own memory.
#ifndef EMS_PYTHON_SRC_BUFFERS_H_
#define EMS_PYTHON_SRC_BUFFERS_H_

#include <pybind11/pybind11.h>

#include <cstdint>
#include <string>
#include <vector>

#include "absl/types/span.h"

namespace ems::python {

// A held PEP 3118 buffer. While it lives the exporter keeps the memory in place (a bytearray
// cannot resize, a numpy array cannot be freed), so the bytes stay valid with the GIL
// released. Construct and destroy with the GIL held. Move-only.
class BufferView {
 public:
  // TypeError if `obj` has no buffer protocol; ems.InvalidArgumentError if it is not
  // C-contiguous or, with `writable`, is read-only. `what` names the argument in messages.
  BufferView(pybind11::handle obj, bool writable, const std::string& what);
  BufferView(BufferView&& other) noexcept;
  BufferView(const BufferView&) = delete;
  BufferView& operator=(const BufferView&) = delete;
  BufferView& operator=(BufferView&&) = delete;
  ~BufferView();

  absl::Span<const uint8_t> bytes() const {
    return {static_cast<const uint8_t*>(view_.buf), static_cast<size_t>(view_.len)};
  }
  absl::Span<uint8_t> writable_bytes() const {
    return {static_cast<uint8_t*>(view_.buf), static_cast<size_t>(view_.len)};
  }

 private:
  Py_buffer view_{};
  bool held_ = false;
};

// Token ids as uint32. A C-contiguous uint32 buffer (numpy.uint32 array, array('I')) is used
// in place; any other integer buffer or sequence of ints is converted, each value checked to
// lie in [0, 2^32). InvalidArgumentError names the first bad token.
class Tokens {
 public:
  explicit Tokens(pybind11::handle obj);
  absl::Span<const uint32_t> span() const { return span_; }

 private:
  std::vector<uint32_t> owned_;
  std::unique_ptr<BufferView> view_;  // held when span_ points into the caller's buffer
  absl::Span<const uint32_t> span_;
};

}  // namespace ems::python

#endif  // EMS_PYTHON_SRC_BUFFERS_H_
