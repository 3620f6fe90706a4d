// ems.PrefixHasher, ems.chain_digest, ems.ROOT_DIGEST, ems.checksum: the same chained digests
// as src/common/prefix_hash.h (it is the same code), so Python and C++ name blocks alike.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "buffers.h"
#include "common/prefix_hash.h"
#include "errors.h"
#include "module.h"

namespace ems::python {
namespace py = pybind11;
namespace {

HashAlgorithm ParseAlgorithm(const std::string& name) {
  auto algo = ParseHashAlgorithm(name);
  if (!algo.ok()) Raise(algo.status());
  return *algo;
}

// `extra` may be str (UTF-8) or any bytes-like object.
std::string ExtraBytes(py::handle extra) {
  if (extra.is_none()) return "";
  if (PyUnicode_Check(extra.ptr())) return extra.cast<std::string>();
  BufferView view(extra, false, "extra");
  return std::string(reinterpret_cast<const char*>(view.bytes().data()), view.bytes().size());
}

py::bytes ToBytes(const Digest& d) {
  return py::bytes(reinterpret_cast<const char*>(d.bytes.data()), d.bytes.size());
}

py::list ToList(const std::vector<Digest>& digests) {
  py::list out(digests.size());
  for (size_t i = 0; i < digests.size(); ++i) out[i] = ToBytes(digests[i]);
  return out;
}

std::vector<Digest> HashChain(const PrefixHasher& h, const Digest& parent, py::handle tokens,
                              py::handle extra) {
  Tokens t(tokens);
  const std::string x = ExtraBytes(extra);
  py::gil_scoped_release release;  // long prompts hash for a while: let other threads run
  return h.HashFrom(parent, t.span(), x);
}

}  // namespace

void RegisterHashing(py::module_& m) {
  m.attr("ROOT_DIGEST") = ToBytes(kRootDigest);
  m.def(
      "checksum",
      [](py::handle data) {
        BufferView view(data, false, "data");
        return Checksum(view.bytes().data(), view.bytes().size());
      },
      py::arg("data"), "XXH3-64 of the bytes: the per-block checksum EMS stores.");
  m.def(
      "chain_digest",
      [](py::handle parent, py::handle tokens, py::handle extra, const std::string& algorithm) {
        const Digest p = DigestFrom(parent, "parent");
        Tokens t(tokens);
        return ToBytes(ChainDigest(ParseAlgorithm(algorithm), p, t.span(), ExtraBytes(extra)));
      },
      py::arg("parent"), py::arg("tokens"), py::arg("extra") = py::bytes(),
      py::arg("algorithm") = "xxh3", "One link of the chain: H(parent || tokens || extra).");

  py::class_<PrefixHasher>(m, "PrefixHasher",
                           "Hashes token ids into per-block chained digests. Immutable.")
      .def(py::init([](size_t block_tokens, const std::string& algorithm) {
             if (block_tokens == 0) {
               Raise(absl::InvalidArgumentError("block_tokens must be positive"));
             }
             return PrefixHasher(block_tokens, ParseAlgorithm(algorithm));
           }),
           py::arg("block_tokens"), py::arg("algorithm") = "xxh3")
      .def_property_readonly("block_tokens", &PrefixHasher::block_tokens)
      .def_property_readonly(
          "algorithm",
          [](const PrefixHasher& h) { return std::string(HashAlgorithmName(h.algorithm())); })
      .def(
          "hash",
          [](const PrefixHasher& h, py::handle tokens, py::handle extra) {
            return ToList(HashChain(h, kRootDigest, tokens, extra));
          },
          py::arg("tokens"), py::arg("extra") = py::bytes(),
          "Digests (16 bytes each) of every full block of `tokens`.")
      .def(
          "hash_from",
          [](const PrefixHasher& h, py::handle parent, py::handle tokens, py::handle extra) {
            return ToList(HashChain(h, DigestFrom(parent, "parent"), tokens, extra));
          },
          py::arg("parent"), py::arg("tokens"), py::arg("extra") = py::bytes(),
          "Like hash(), continuing the chain after the block whose digest is `parent`.")
      .def(
          "keys",
          [](const PrefixHasher& h, const std::string& ns, py::handle tokens, py::handle extra) {
            if (absl::Status s = ValidateNamespace(ns); !s.ok()) Raise(s);
            std::vector<Digest> digests = HashChain(h, kRootDigest, tokens, extra);
            std::vector<BlockKey> keys;
            keys.reserve(digests.size());
            for (const Digest& d : digests) keys.push_back(BlockKey{ns, d});
            return keys;
          },
          py::arg("ns"), py::arg("tokens"), py::arg("extra") = py::bytes(),
          "Keys (ns, digest) of every full block of `tokens`.")
      .def("__repr__", [](const PrefixHasher& h) {
        return absl::StrCat("PrefixHasher(block_tokens=", h.block_tokens(), ", algorithm='",
                            std::string(HashAlgorithmName(h.algorithm())), "')");
      });
}

}  // namespace ems::python
