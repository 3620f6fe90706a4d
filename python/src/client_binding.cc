// ems.Client over ems::Client. Values are never copied on the Python side: put reads the
// caller's buffer in place and get writes into it, with the GIL released for the whole call so
// other Python threads run while bytes move.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "buffers.h"
#include "client/client.h"
#include "ems/v1/data.pb.h"
#include "errors.h"
#include "google/protobuf/descriptor.h"
#include "google/protobuf/message.h"
#include "module.h"

namespace ems::python {
namespace py = pybind11;
namespace {

// The Python object. `client_` is read and reset only with the GIL held; a call copies the
// shared_ptr before releasing the GIL, so close() in one thread never frees a client that
// another thread is using.
class PyClient {
 public:
  explicit PyClient(const ClientOptions& options) {
    absl::StatusOr<std::unique_ptr<Client>> c;
    {
      py::gil_scoped_release release;  // Connect waits up to the timeout for the node
      c = Client::Connect(options);
    }
    ThrowIfError(c.status());
    client_ = std::shared_ptr<Client>(*std::move(c));
  }

  std::shared_ptr<Client> Get() const {
    if (client_ == nullptr) {
      Raise(absl::FailedPreconditionError("the client is closed"));
    }
    return client_;
  }
  void Close() {
    std::shared_ptr<Client> last = std::move(client_);
    py::gil_scoped_release release;  // destroying a client joins its threads
    last.reset();
  }
  bool closed() const { return client_ == nullptr; }

 private:
  std::shared_ptr<Client> client_;
};

// A copy: keys[i] may be the only reference to the Key (a sequence that makes its items on
// demand), and the item dies with this call.
BlockKey KeyAt(const py::sequence& keys, size_t i, const char* what) {
  const py::object item = keys[i];
  try {
    return item.cast<BlockKey>();
  } catch (const py::cast_error&) {
    throw py::type_error(
        absl::StrCat(what, "[", i, "]: expected ems.Key, got ", Py_TYPE(item.ptr())->tp_name));
  }
}

std::vector<BlockKey> KeyList(const py::sequence& keys) {
  std::vector<BlockKey> out;
  out.reserve(keys.size());
  for (size_t i = 0; i < keys.size(); ++i) out.push_back(KeyAt(keys, i, "keys"));
  return out;
}

py::dict MessageToDict(const google::protobuf::Message& msg) {
  using google::protobuf::FieldDescriptor;
  py::dict out;
  const auto* d = msg.GetDescriptor();
  const auto* r = msg.GetReflection();
  for (int i = 0; i < d->field_count(); ++i) {
    const FieldDescriptor* f = d->field(i);
    if (f->is_repeated()) continue;
    switch (f->cpp_type()) {
      case FieldDescriptor::CPPTYPE_UINT64:
        out[f->name().c_str()] = r->GetUInt64(msg, f);
        break;
      case FieldDescriptor::CPPTYPE_INT64:
        out[f->name().c_str()] = r->GetInt64(msg, f);
        break;
      case FieldDescriptor::CPPTYPE_UINT32:
        out[f->name().c_str()] = r->GetUInt32(msg, f);
        break;
      case FieldDescriptor::CPPTYPE_INT32:
        out[f->name().c_str()] = r->GetInt32(msg, f);
        break;
      case FieldDescriptor::CPPTYPE_DOUBLE:
        out[f->name().c_str()] = r->GetDouble(msg, f);
        break;
      case FieldDescriptor::CPPTYPE_BOOL:
        out[f->name().c_str()] = r->GetBool(msg, f);
        break;
      case FieldDescriptor::CPPTYPE_STRING:
        out[f->name().c_str()] = r->GetString(msg, f);
        break;
      default:
        break;
    }
  }
  return out;
}

void Put(PyClient& self, const BlockKey& key, py::handle value, std::optional<BlockKey> parent) {
  std::shared_ptr<Client> c = self.Get();
  BufferView view(value, false, "value");
  absl::Status s;
  {
    py::gil_scoped_release release;
    s = c->Put(key, view.bytes(), parent ? &*parent : nullptr);
  }
  ThrowIfError(s);
}

size_t GetInto(PyClient& self, const BlockKey& key, py::handle out) {
  std::shared_ptr<Client> c = self.Get();
  BufferView view(out, true, "out");
  absl::StatusOr<size_t> n;
  {
    py::gil_scoped_release release;
    n = c->Get(key, view.writable_bytes());
  }
  ThrowIfError(n.status());
  return *n;
}

py::list BatchPut(PyClient& self, const py::sequence& keys, const py::sequence& values,
                  const py::object& parents) {
  std::shared_ptr<Client> c = self.Get();
  const size_t n = keys.size();
  if (values.size() != n) {
    Raise(absl::InvalidArgumentError(
        absl::StrCat("batch_put: ", n, " keys but ", values.size(), " values")));
  }
  std::vector<std::optional<BlockKey>> parent_keys(n);
  if (!parents.is_none()) {
    py::sequence ps = parents.cast<py::sequence>();
    if (ps.size() != n) {
      Raise(absl::InvalidArgumentError(
          absl::StrCat("batch_put: ", n, " keys but ", ps.size(), " parents")));
    }
    for (size_t i = 0; i < n; ++i) {
      if (!py::object(ps[i]).is_none()) parent_keys[i] = KeyAt(ps, i, "parents");
    }
  }
  std::vector<BufferView> views;
  std::vector<PutItem> items(n);
  views.reserve(n);
  for (size_t i = 0; i < n; ++i) {
    views.emplace_back(values[i], false, absl::StrCat("values[", i, "]"));
    items[i].key = KeyAt(keys, i, "keys");
    items[i].value = views.back().bytes();
    items[i].parent = parent_keys[i] ? &*parent_keys[i] : nullptr;
  }
  std::vector<absl::Status> results;
  {
    py::gil_scoped_release release;
    results = c->BatchPut(items);
  }
  py::list out(n);
  for (size_t i = 0; i < n; ++i) out[i] = results[i].ok() ? py::none() : ErrorFor(results[i]);
  return out;
}

py::list BatchGet(PyClient& self, const py::sequence& keys, const py::sequence& outs) {
  std::shared_ptr<Client> c = self.Get();
  const size_t n = keys.size();
  if (outs.size() != n) {
    Raise(absl::InvalidArgumentError(
        absl::StrCat("batch_get: ", n, " keys but ", outs.size(), " buffers")));
  }
  std::vector<BufferView> views;
  std::vector<GetItem> items(n);
  views.reserve(n);
  for (size_t i = 0; i < n; ++i) {
    views.emplace_back(outs[i], true, absl::StrCat("outs[", i, "]"));
    items[i].key = KeyAt(keys, i, "keys");
    items[i].buffer = views.back().writable_bytes();
  }
  std::vector<absl::StatusOr<size_t>> results;
  {
    py::gil_scoped_release release;
    results = c->BatchGet(items);
  }
  py::list out(n);
  for (size_t i = 0; i < n; ++i) {
    out[i] = results[i].ok() ? py::int_(*results[i]) : ErrorFor(results[i].status());
  }
  return out;
}

// Runs a key-list call with the GIL released and raises on failure.
template <typename Call>
auto OnKeys(PyClient& self, const py::sequence& keys, Call call) {
  std::shared_ptr<Client> c = self.Get();
  std::vector<BlockKey> k = KeyList(keys);
  decltype(call(*c, absl::Span<const BlockKey>(k))) r;
  {
    py::gil_scoped_release release;
    r = call(*c, k);
  }
  ThrowIfError(r.status());
  return *std::move(r);
}

}  // namespace

void RegisterClient(py::module_& m) {
  py::class_<PyClient>(m, "Client",
                       "A connection to one ems-node (address) or a cluster (controller). "
                       "Thread-safe; every call releases the GIL while it waits.")
      .def(py::init([](const std::string& address, const std::string& controller,
                       const std::string& cluster, double timeout, const std::string& cd_key,
                       bool use_local, const std::string& local_socket, bool verify_checksums,
                       bool mirror_remote_keys) {
             if (!(timeout > 0)) {
               Raise(absl::InvalidArgumentError(
                   absl::StrCat("timeout must be positive seconds, got ", timeout)));
             }
             ClientOptions o;
             o.address = address;
             o.controller = controller;
             o.cluster = cluster;
             o.timeout = absl::Seconds(timeout);
             o.cd_key = cd_key;
             o.use_local = use_local;
             o.local_socket = local_socket;
             o.verify_checksums = verify_checksums;
             o.mirror_remote_keys = mirror_remote_keys;
             return std::make_unique<PyClient>(o);
           }),
           py::arg("address") = "", py::kw_only(), py::arg("controller") = "",
           py::arg("cluster") = "default", py::arg("timeout") = 10.0, py::arg("cd_key") = "",
           py::arg("use_local") = true, py::arg("local_socket") = "",
           py::arg("verify_checksums") = true, py::arg("mirror_remote_keys") = false)
      .def("put", &Put, py::arg("key"), py::arg("value"), py::arg("parent") = py::none(),
           "Stores the bytes of `value` (any C-contiguous buffer) under `key`.")
      .def("get", &GetInto, py::arg("key"), py::arg("out"),
           "Copies the block into the writable buffer `out`; returns its size. "
           "NotFoundError on a miss, OutOfRangeError if `out` is too small.")
      .def("batch_put", &BatchPut, py::arg("keys"), py::arg("values"),
           py::arg("parents") = py::none(),
           "One entry per key: None if stored, else the error (not raised).")
      .def("batch_get", &BatchGet, py::arg("keys"), py::arg("outs"),
           "One entry per key: the size read into outs[i], or the error (NotFoundError for a "
           "miss; not raised).")
      .def(
          "match_prefix",
          [](PyClient& self, const py::sequence& keys) {
            return OnKeys(self, keys,
                          [](Client& c, absl::Span<const BlockKey> k) { return c.MatchPrefix(k); });
          },
          py::arg("keys"), "How many leading keys (in prompt order) are stored.")
      .def(
          "exists",
          [](PyClient& self, const py::sequence& keys) {
            return OnKeys(self, keys,
                          [](Client& c, absl::Span<const BlockKey> k) { return c.Exists(k); });
          },
          py::arg("keys"))
      .def(
          "remove",
          [](PyClient& self, const py::sequence& keys) {
            return OnKeys(self, keys,
                          [](Client& c, absl::Span<const BlockKey> k) { return c.Remove(k); });
          },
          py::arg("keys"), "Removes the keys; returns how many were stored.")
      .def("stats",
           [](PyClient& self) {
             std::shared_ptr<Client> c = self.Get();
             absl::StatusOr<v1::StatsResponse> s;
             {
               py::gil_scoped_release release;
               s = c->Stats();
             }
             ThrowIfError(s.status());
             return MessageToDict(*s);
           })
      .def("counters",
           [](PyClient& self) {
             const ClientCounters k = self.Get()->counters();
             py::dict d;
             d["get_timeouts"] = k.get_timeouts;
             d["put_drops"] = k.put_drops;
             d["map_refreshes"] = k.map_refreshes;
             d["lookups_without_round_trip"] = k.lookups_without_round_trip;
             d["retries"] = k.retries;
             return d;
           })
      .def_property_readonly("epoch", [](PyClient& self) { return self.Get()->epoch(); })
      .def_property_readonly("closed", &PyClient::closed)
      .def("close", &PyClient::Close, "Releases the connection; later calls raise.")
      .def("__enter__", [](py::object self) { return self; })
      .def("__exit__", [](PyClient& self, py::args) { self.Close(); });
}

}  // namespace ems::python
