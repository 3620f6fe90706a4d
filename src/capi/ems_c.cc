// The C API over ems::Client and ems::PrefixHasher. Everything that can fail becomes an
// absl::Status first and crosses into C in exactly one place (Fail). No exception may unwind
// into a C caller (that terminates the host process): every fallible entry point runs its body
// in Guard, which turns one into an error code.
#include "capi/ems_c.h"

#include <cstdlib>
#include <cstring>
#include <exception>
#include <memory>
#include <new>
#include <stdexcept>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "client/client.h"
#include "common/key.h"
#include "common/mutex_checks.h"
#include "common/prefix_hash.h"

struct ems_client {
  std::unique_ptr<ems::Client> impl;
};

namespace {

static_assert(EMS_DIGEST_BYTES == ems::kDigestBytes);
static_assert(static_cast<int>(absl::StatusCode::kUnauthenticated) == EMS_UNAUTHENTICATED);
static_assert(static_cast<int>(absl::StatusCode::kDataLoss) == EMS_DATA_LOSS);

// Sets *errmsg (when errmsg is not NULL) to a malloc'd copy of `msg`; never throws.
void SetMessage(absl::string_view msg, char** errmsg) noexcept {
  if (errmsg == nullptr) return;
  char* copy = static_cast<char*>(std::malloc(msg.size() + 1));
  if (copy == nullptr) return;
  std::memcpy(copy, msg.data(), msg.size());
  copy[msg.size()] = '\0';
  *errmsg = copy;
}

ems_code Fail(const absl::Status& status, char** errmsg) noexcept {
  if (status.ok()) return EMS_OK;
  SetMessage(status.message(), errmsg);
  return static_cast<ems_code>(status.code());
}

// Runs `body` (which returns an ems_code) and turns an exception it throws into an error.
// The messages are built without allocating: memory may be what ran out.
template <typename Body>
ems_code Guard(char** errmsg, Body&& body) noexcept {
  try {
    return body();
  } catch (const std::bad_alloc&) {
    SetMessage("out of memory", errmsg);
    return EMS_RESOURCE_EXHAUSTED;
  } catch (const std::length_error& e) {  // a size no container can hold
    SetMessage(e.what(), errmsg);
    return EMS_RESOURCE_EXHAUSTED;
  } catch (const std::exception& e) {
    SetMessage(e.what(), errmsg);
    return EMS_INTERNAL;
  } catch (...) {
    SetMessage("unknown exception", errmsg);
    return EMS_INTERNAL;
  }
}

absl::Status NullArgument(const char* name) {
  return absl::InvalidArgumentError(absl::StrCat("argument `", name, "` is NULL"));
}

absl::StatusOr<ems::BlockKey> ToKey(const ems_key* key, const char* what) {
  if (key == nullptr) return NullArgument(what);
  if (key->ns == nullptr) return NullArgument(absl::StrCat(what, ".ns").c_str());
  // The length is checked before anything is read or copied: ns_len is the caller's word, and
  // a wrong one must be an error, not a read past `ns` or an exception (std::string throws
  // length_error for SIZE_MAX; absl::string_view traps on it).
  if (key->ns_len > ems::kMaxNamespaceBytes) {
    return absl::InvalidArgumentError(absl::StrCat(what, ": key namespace is ", key->ns_len,
                                                   " bytes; the maximum is ",
                                                   ems::kMaxNamespaceBytes));
  }
  const absl::string_view ns(key->ns, key->ns_len);
  if (absl::Status s = ems::ValidateNamespace(ns); !s.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(what, ": ", s.message()));
  }
  ems::BlockKey out;
  out.ns.assign(ns.data(), ns.size());
  std::memcpy(out.digest.bytes.data(), key->digest, EMS_DIGEST_BYTES);
  return out;
}

absl::StatusOr<std::vector<ems::BlockKey>> ToKeys(const ems_key* keys, size_t n) {
  if (keys == nullptr && n > 0) return NullArgument("keys");
  std::vector<ems::BlockKey> out;
  out.reserve(n);
  for (size_t i = 0; i < n; ++i) {
    auto k = ToKey(&keys[i], absl::StrCat("keys[", i, "]").c_str());
    if (!k.ok()) return k.status();
    out.push_back(*std::move(k));
  }
  return out;
}

// `status` of items[i], the item named in its message.
absl::Status Named(const absl::Status& status, size_t i) {
  return absl::Status(status.code(), absl::StrCat("items[", i, "]: ", status.message()));
}

// Checks items[i] and fills `put`; its parent goes to `parent`, which must outlive `put`.
absl::Status ToPutItem(const ems_put_item& item, size_t i, ems::PutItem& put,
                       ems::BlockKey& parent) {
  auto k = ToKey(&item.key, absl::StrCat("items[", i, "].key").c_str());
  if (!k.ok()) return k.status();
  if (item.value == nullptr && item.size > 0) {
    return NullArgument(absl::StrCat("items[", i, "].value").c_str());
  }
  put.key = *std::move(k);
  put.value = {static_cast<const uint8_t*>(item.value), item.size};
  if (item.parent != nullptr) {
    auto p = ToKey(item.parent, absl::StrCat("items[", i, "].parent").c_str());
    if (!p.ok()) return p.status();
    parent = *std::move(p);
    put.parent = &parent;
  }
  return absl::OkStatus();
}

absl::Status ToGetItem(const ems_get_item& item, size_t i, ems::GetItem& get) {
  auto k = ToKey(&item.key, absl::StrCat("items[", i, "].key").c_str());
  if (!k.ok()) return k.status();
  if (item.buffer == nullptr && item.capacity > 0) {
    return NullArgument(absl::StrCat("items[", i, "].buffer").c_str());
  }
  get.key = *std::move(k);
  get.buffer = {static_cast<uint8_t*>(item.buffer), item.capacity};
  return absl::OkStatus();
}

}  // namespace

extern "C" {

const char* ems_code_name(ems_code code) {
  switch (code) {
    case EMS_OK:
      return "OK";
    case EMS_CANCELLED:
      return "CANCELLED";
    case EMS_UNKNOWN:
      return "UNKNOWN";
    case EMS_INVALID_ARGUMENT:
      return "INVALID_ARGUMENT";
    case EMS_DEADLINE_EXCEEDED:
      return "DEADLINE_EXCEEDED";
    case EMS_NOT_FOUND:
      return "NOT_FOUND";
    case EMS_ALREADY_EXISTS:
      return "ALREADY_EXISTS";
    case EMS_PERMISSION_DENIED:
      return "PERMISSION_DENIED";
    case EMS_RESOURCE_EXHAUSTED:
      return "RESOURCE_EXHAUSTED";
    case EMS_FAILED_PRECONDITION:
      return "FAILED_PRECONDITION";
    case EMS_ABORTED:
      return "ABORTED";
    case EMS_OUT_OF_RANGE:
      return "OUT_OF_RANGE";
    case EMS_UNIMPLEMENTED:
      return "UNIMPLEMENTED";
    case EMS_INTERNAL:
      return "INTERNAL";
    case EMS_UNAVAILABLE:
      return "UNAVAILABLE";
    case EMS_DATA_LOSS:
      return "DATA_LOSS";
    case EMS_UNAUTHENTICATED:
      return "UNAUTHENTICATED";
  }
  return "UNKNOWN_CODE";
}

void ems_free(void* ptr) { std::free(ptr); }

void ems_client_options_init(ems_client_options* options) {
  if (options == nullptr) return;
  *options = ems_client_options{};
  options->use_local = 1;
  options->verify_checksums = 1;
}

ems_code ems_client_connect(const ems_client_options* options, ems_client** out, char** errmsg) {
  return Guard(errmsg, [&]() -> ems_code {
    if (options == nullptr) return Fail(NullArgument("options"), errmsg);
    if (out == nullptr) return Fail(NullArgument("out"), errmsg);
    ems::ClientOptions o;
    if (options->address != nullptr) o.address = options->address;
    if (options->controller != nullptr) o.controller = options->controller;
    if (options->cluster != nullptr) o.cluster = options->cluster;
    if (options->timeout_ms != 0) o.timeout = absl::Milliseconds(options->timeout_ms);
    if (options->cd_key != nullptr) o.cd_key = options->cd_key;
    o.use_local = options->use_local != 0;
    if (options->local_socket != nullptr) o.local_socket = options->local_socket;
    o.verify_checksums = options->verify_checksums != 0;
    o.mirror_remote_keys = options->mirror_remote_keys != 0;
    // A C program is no Abseil user that could want the deadlock detector: it would only
    // serialise the client's threads (common/mutex_checks.h).
    ems::DisableMutexDeadlockDetection();
    auto client = ems::Client::Connect(o);
    if (!client.ok()) return Fail(client.status(), errmsg);
    *out = new (std::nothrow) ems_client{*std::move(client)};
    if (*out == nullptr) return Fail(absl::ResourceExhaustedError("out of memory"), errmsg);
    return EMS_OK;
  });
}

void ems_client_destroy(ems_client* client) { delete client; }

ems_code ems_put(ems_client* client, const ems_key* key, const void* value, size_t size,
                 const ems_key* parent, char** errmsg) {
  return Guard(errmsg, [&]() -> ems_code {
    if (client == nullptr) return Fail(NullArgument("client"), errmsg);
    if (value == nullptr && size > 0) return Fail(NullArgument("value"), errmsg);
    auto k = ToKey(key, "key");
    if (!k.ok()) return Fail(k.status(), errmsg);
    absl::StatusOr<ems::BlockKey> p;
    if (parent != nullptr) {
      p = ToKey(parent, "parent");
      if (!p.ok()) return Fail(p.status(), errmsg);
    }
    return Fail(client->impl->Put(*k, {static_cast<const uint8_t*>(value), size},
                                  parent != nullptr ? &*p : nullptr),
                errmsg);
  });
}

ems_code ems_get(ems_client* client, const ems_key* key, void* buffer, size_t capacity,
                 size_t* size, char** errmsg) {
  return Guard(errmsg, [&]() -> ems_code {
    if (client == nullptr) return Fail(NullArgument("client"), errmsg);
    if (buffer == nullptr && capacity > 0) return Fail(NullArgument("buffer"), errmsg);
    auto k = ToKey(key, "key");
    if (!k.ok()) return Fail(k.status(), errmsg);
    auto n = client->impl->Get(*k, {static_cast<uint8_t*>(buffer), capacity});
    if (!n.ok()) return Fail(n.status(), errmsg);
    if (size != nullptr) *size = *n;
    return EMS_OK;
  });
}

ems_code ems_batch_put(ems_client* client, const ems_put_item* items, size_t n, ems_code* codes,
                       char** errmsg) {
  return Guard(errmsg, [&]() -> ems_code {
    if (client == nullptr) return Fail(NullArgument("client"), errmsg);
    if (items == nullptr && n > 0) return Fail(NullArgument("items"), errmsg);
    // An item that fails its checks gets its own code and the others are still stored, so
    // codes[i] always says what became of items[i]. Parents point into `parents`, which
    // does not reallocate.
    std::vector<absl::Status> results(n);
    std::vector<ems::BlockKey> parents(n);
    std::vector<ems::PutItem> puts;
    std::vector<size_t> sent;  // puts[j] is items[sent[j]]
    puts.reserve(n);
    sent.reserve(n);
    for (size_t i = 0; i < n; ++i) {
      ems::PutItem put;
      results[i] = ToPutItem(items[i], i, put, parents[i]);
      if (!results[i].ok()) continue;
      puts.push_back(std::move(put));
      sent.push_back(i);
    }
    std::vector<absl::Status> stored = client->impl->BatchPut(puts);
    for (size_t j = 0; j < sent.size(); ++j) {
      const absl::Status& s = stored[j];
      if (!s.ok()) results[sent[j]] = Named(s, sent[j]);
    }
    ems_code first = EMS_OK;
    for (size_t i = 0; i < n; ++i) {
      if (codes != nullptr) codes[i] = static_cast<ems_code>(results[i].code());
      if (first == EMS_OK && !results[i].ok()) first = Fail(results[i], errmsg);
    }
    return first;
  });
}

ems_code ems_batch_get(ems_client* client, ems_get_item* items, size_t n, char** errmsg) {
  return Guard(errmsg, [&]() -> ems_code {
    if (client == nullptr) return Fail(NullArgument("client"), errmsg);
    if (items == nullptr && n > 0) return Fail(NullArgument("items"), errmsg);
    // As in ems_batch_put: an item that fails its checks is one failed item, not the batch.
    std::vector<absl::StatusOr<size_t>> results(n);
    std::vector<ems::GetItem> gets;
    std::vector<size_t> sent;  // gets[j] is items[sent[j]]
    gets.reserve(n);
    sent.reserve(n);
    for (size_t i = 0; i < n; ++i) {
      ems::GetItem get;
      if (absl::Status s = ToGetItem(items[i], i, get); !s.ok()) {
        results[i] = std::move(s);
        continue;
      }
      gets.push_back(std::move(get));
      sent.push_back(i);
    }
    std::vector<absl::StatusOr<size_t>> got = client->impl->BatchGet(gets);
    for (size_t j = 0; j < sent.size(); ++j) {
      const size_t i = sent[j];
      results[i] = got[j].ok() || absl::IsNotFound(got[j].status())
                       ? std::move(got[j])
                       : absl::StatusOr<size_t>(Named(got[j].status(), i));
    }
    ems_code first = EMS_OK;
    for (size_t i = 0; i < n; ++i) {
      items[i].code = static_cast<ems_code>(results[i].status().code());
      items[i].size = results[i].ok() ? *results[i] : 0;
      if (first == EMS_OK && !results[i].ok() && !absl::IsNotFound(results[i].status())) {
        first = Fail(results[i].status(), errmsg);
      }
    }
    return first;
  });
}

ems_code ems_match_prefix(ems_client* client, const ems_key* keys, size_t n, size_t* matched,
                          char** errmsg) {
  return Guard(errmsg, [&]() -> ems_code {
    if (client == nullptr) return Fail(NullArgument("client"), errmsg);
    if (matched == nullptr) return Fail(NullArgument("matched"), errmsg);
    auto k = ToKeys(keys, n);
    if (!k.ok()) return Fail(k.status(), errmsg);
    auto m = client->impl->MatchPrefix(*k);
    if (!m.ok()) return Fail(m.status(), errmsg);
    *matched = *m;
    return EMS_OK;
  });
}

ems_code ems_remove(ems_client* client, const ems_key* keys, size_t n, size_t* removed,
                    char** errmsg) {
  return Guard(errmsg, [&]() -> ems_code {
    if (client == nullptr) return Fail(NullArgument("client"), errmsg);
    auto k = ToKeys(keys, n);
    if (!k.ok()) return Fail(k.status(), errmsg);
    auto r = client->impl->Remove(*k);
    if (!r.ok()) return Fail(r.status(), errmsg);
    if (removed != nullptr) *removed = *r;
    return EMS_OK;
  });
}

void ems_root_digest(uint8_t out[EMS_DIGEST_BYTES]) {
  std::memcpy(out, ems::kRootDigest.bytes.data(), EMS_DIGEST_BYTES);
}

ems_code ems_prefix_hash(ems_hash_algorithm algo, size_t block_tokens, const uint8_t* parent,
                         const uint32_t* tokens, size_t n_tokens, const void* extra,
                         size_t extra_len, uint8_t* digests, size_t max_digests, size_t* n_digests,
                         char** errmsg) {
  return Guard(errmsg, [&]() -> ems_code {
    if (algo != EMS_HASH_XXH3_128 && algo != EMS_HASH_SHA256) {
      return Fail(
          absl::InvalidArgumentError(absl::StrCat("unknown hash algorithm ", static_cast<int>(algo),
                                                  " (EMS_HASH_XXH3_128 or EMS_HASH_SHA256)")),
          errmsg);
    }
    if (block_tokens == 0) {
      return Fail(absl::InvalidArgumentError("block_tokens must be positive"), errmsg);
    }
    if (tokens == nullptr && n_tokens > 0) return Fail(NullArgument("tokens"), errmsg);
    if (extra == nullptr && extra_len > 0) return Fail(NullArgument("extra"), errmsg);
    if (digests == nullptr && max_digests > 0) return Fail(NullArgument("digests"), errmsg);
    const size_t full = n_tokens / block_tokens;
    if (n_digests != nullptr) *n_digests = full;
    const ems::HashAlgorithm a =
        algo == EMS_HASH_SHA256 ? ems::HashAlgorithm::kSha256 : ems::HashAlgorithm::kXxh3_128;
    ems::Digest d = ems::kRootDigest;
    if (parent != nullptr) std::memcpy(d.bytes.data(), parent, EMS_DIGEST_BYTES);
    const absl::string_view extra_view(static_cast<const char*>(extra), extra_len);
    // Hashing link by link writes straight into the caller's array (no vector of digests).
    const size_t out = full < max_digests ? full : max_digests;
    for (size_t i = 0; i < out; ++i) {
      d = ems::ChainDigest(a, d, {tokens + i * block_tokens, block_tokens}, extra_view);
      std::memcpy(digests + i * EMS_DIGEST_BYTES, d.bytes.data(), EMS_DIGEST_BYTES);
    }
    if (full > max_digests) {
      return Fail(
          absl::OutOfRangeError(absl::StrCat(n_tokens, " tokens make ", full, " blocks of ",
                                             block_tokens, " but `digests` holds ", max_digests)),
          errmsg);
    }
    return EMS_OK;
  });
}

}  // extern "C"
