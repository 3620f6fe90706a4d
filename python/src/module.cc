// ems._ems: the extension module under the `ems` package (python/ems/__init__.py re-exports it).
#include "module.h"

#include <pybind11/pybind11.h>

#include "absl/strings/str_cat.h"
#include "buffers.h"
#include "common/mutex_checks.h"
#include "errors.h"

namespace ems::python {
namespace py = pybind11;

Digest DigestFrom(py::handle obj, const std::string& what) {
  BufferView view(obj, false, what);
  auto d = Digest::FromBytes(
      absl::string_view(reinterpret_cast<const char*>(view.bytes().data()), view.bytes().size()));
  if (!d.ok()) Raise(absl::InvalidArgumentError(absl::StrCat(what, ": ", d.status().message())));
  return *d;
}

void RegisterKey(py::module_& m) {
  py::class_<BlockKey>(m, "Key",
                       "A block key: namespace (model, dtype, layout, tenant) and a 16-byte "
                       "prefix digest. Immutable and hashable.")
      .def(py::init([](const std::string& ns, py::handle digest) {
             if (absl::Status s = ValidateNamespace(ns); !s.ok()) {
               Raise(absl::InvalidArgumentError(absl::StrCat("ns: ", s.message())));
             }
             return BlockKey{ns, DigestFrom(digest, "digest")};
           }),
           py::arg("ns"), py::arg("digest"))
      .def_static(
          "from_hex",
          [](const std::string& ns, const std::string& hex) {
            auto d = Digest::FromHex(hex);
            if (!d.ok()) Raise(d.status());
            if (absl::Status s = ValidateNamespace(ns); !s.ok()) Raise(s);
            return BlockKey{ns, *d};
          },
          py::arg("ns"), py::arg("hex"))
      .def_property_readonly("ns", [](const BlockKey& k) { return k.ns; })
      .def_property_readonly("digest",
                             [](const BlockKey& k) {
                               return py::bytes(
                                   reinterpret_cast<const char*>(k.digest.bytes.data()),
                                   k.digest.bytes.size());
                             })
      .def("hex", [](const BlockKey& k) { return k.digest.ToHex(); })
      .def(
          "__eq__", [](const BlockKey& a, const BlockKey& b) { return a == b; }, py::is_operator())
      .def("__hash__", [](const BlockKey& k) { return absl::Hash<BlockKey>{}(k); })
      .def("__str__", &BlockKey::ToString)
      .def("__repr__",
           [](const BlockKey& k) {
             return absl::StrCat("Key('", k.ns, "', bytes.fromhex('", k.digest.ToHex(), "'))");
           })
      .def(py::pickle(
          [](const BlockKey& k) {
            return py::make_tuple(k.ns, py::bytes(k.digest.AsBytes().data(), kDigestBytes));
          },
          [](const py::tuple& t) {
            // A pickle is input like any other: a key built from it is checked as Key() checks.
            if (t.size() != 2) {
              Raise(absl::InvalidArgumentError(
                  absl::StrCat("Key state: expected (ns, digest), got ", t.size(), " items")));
            }
            std::string ns = t[0].cast<std::string>();
            if (absl::Status s = ValidateNamespace(ns); !s.ok()) {
              Raise(absl::InvalidArgumentError(absl::StrCat("ns: ", s.message())));
            }
            return BlockKey{std::move(ns), DigestFrom(t[1], "digest")};
          }));
}

}  // namespace ems::python

PYBIND11_MODULE(_ems, m) {
  m.doc() = "EMS client, prefix hashing and errors (C++ extension; import `ems` instead).";
  // Debian's Abseil runs absl::Mutex's deadlock detector on every lock, under one global spin
  // lock: the client's threads would queue on it (common/mutex_checks.h).
  ems::DisableMutexDeadlockDetection();
  ems::python::RegisterErrors(m);
  ems::python::RegisterKey(m);
  ems::python::RegisterHashing(m);
  ems::python::RegisterClient(m);
}
