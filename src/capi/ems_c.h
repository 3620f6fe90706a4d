/* EMS C API: a plain-C face of ems::Client and the prefix hasher, for engines and language
 * bindings that cannot take C++ types.
 *
 * Conventions (borrowed from LevelDB's c.h):
 * - Every fallible call returns an ems_code (EMS_OK = 0; the other values are the canonical
 *   gRPC/Abseil status codes) and takes a trailing `char** errmsg`. On failure, if errmsg is
 *   not NULL, *errmsg receives a malloc'd message naming what was wrong; free it with ems_free.
 *   On success *errmsg is left untouched.
 * - Values move between EMS and the caller's memory: no call keeps a pointer after it returns.
 * - An ems_client is thread-safe: share one between threads.
 * - No call lets a C++ exception out: one (memory ran out, a size no container can hold)
 *   becomes EMS_RESOURCE_EXHAUSTED, or EMS_INTERNAL for anything else.
 */
#ifndef EMS_CAPI_EMS_C_H_
#define EMS_CAPI_EMS_C_H_

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__) || defined(__clang__)
#define EMS_C_EXPORT __attribute__((visibility("default")))
#else
#define EMS_C_EXPORT
#endif

#define EMS_DIGEST_BYTES 16

typedef enum ems_code {
  EMS_OK = 0,
  EMS_CANCELLED = 1,
  EMS_UNKNOWN = 2,
  EMS_INVALID_ARGUMENT = 3,
  EMS_DEADLINE_EXCEEDED = 4,
  EMS_NOT_FOUND = 5,
  EMS_ALREADY_EXISTS = 6,
  EMS_PERMISSION_DENIED = 7,
  EMS_RESOURCE_EXHAUSTED = 8,
  EMS_FAILED_PRECONDITION = 9,
  EMS_ABORTED = 10,
  EMS_OUT_OF_RANGE = 11,
  EMS_UNIMPLEMENTED = 12,
  EMS_INTERNAL = 13,
  EMS_UNAVAILABLE = 14,
  EMS_DATA_LOSS = 15,
  EMS_UNAUTHENTICATED = 16
} ems_code;

typedef enum ems_hash_algorithm { EMS_HASH_XXH3_128 = 0, EMS_HASH_SHA256 = 1 } ems_hash_algorithm;

/* A block key: namespace bytes (1..256 printable ASCII, 0x21..0x7e: no space; not
   NUL-terminated) and a digest. */
typedef struct ems_key {
  const char* ns;
  size_t ns_len;
  uint8_t digest[EMS_DIGEST_BYTES];
} ems_key;

typedef struct ems_client_options {
  const char* address;      /* host:port of one ems-node (standalone), or NULL */
  const char* controller;   /* host:port of ems-controller (cluster mode), or NULL */
  const char* cluster;      /* NULL = "default" */
  uint32_t timeout_ms;      /* deadline of each call; 0 = 10000 */
  const char* cd_key;       /* project credential, or NULL */
  int use_local;            /* nonzero: use the same-machine shared-memory path when offered */
  const char* local_socket; /* standalone: the node's --local_socket, or NULL */
  int verify_checksums;     /* nonzero: verify remote gets against the block checksum */
  int mirror_remote_keys;   /* nonzero: answer lookups from mirrors of remote nodes' keys */
} ems_client_options;

typedef struct ems_client ems_client;

typedef struct ems_put_item {
  ems_key key;
  const void* value;
  size_t size;
  const ems_key* parent; /* previous block of the prefix chain, or NULL */
} ems_put_item;

typedef struct ems_get_item {
  ems_key key;
  void* buffer;
  size_t capacity;
  size_t size;   /* out: bytes written (on EMS_OK) */
  ems_code code; /* out: EMS_OK, EMS_NOT_FOUND on a miss, or the failure */
} ems_get_item;

/* "OK", "NOT_FOUND", ... ; a static string. */
EMS_C_EXPORT const char* ems_code_name(ems_code code);
/* Frees a message returned through errmsg (or anything else the API documents). */
EMS_C_EXPORT void ems_free(void* ptr);

/* Fills `options` with the defaults (local path and checksum verification on). */
EMS_C_EXPORT void ems_client_options_init(ems_client_options* options);
/* On EMS_OK, *out is a client to release with ems_client_destroy. The first call turns off
 * absl::Mutex's deadlock detector for the process (Debian's Abseil runs it on every lock). */
EMS_C_EXPORT ems_code ems_client_connect(const ems_client_options* options, ems_client** out,
                                         char** errmsg);
EMS_C_EXPORT void ems_client_destroy(ems_client* client);

/* Stores `size` bytes at `value` under `key`. Same contract as ems::Client::Put. */
EMS_C_EXPORT ems_code ems_put(ems_client* client, const ems_key* key, const void* value,
                              size_t size, const ems_key* parent, char** errmsg);
/* Copies the block into buffer[0..capacity); *size receives its length. EMS_NOT_FOUND on a
 * miss; EMS_OUT_OF_RANGE if the buffer is too small. */
EMS_C_EXPORT ems_code ems_get(ems_client* client, const ems_key* key, void* buffer, size_t capacity,
                              size_t* size, char** errmsg);

/* Per-item results go to codes[i] (may be NULL); an item with a bad key or a NULL value fails
 * alone, the others are still stored. Returns EMS_OK if every item succeeded, otherwise the
 * code of the first failed item (its message in *errmsg). */
EMS_C_EXPORT ems_code ems_batch_put(ems_client* client, const ems_put_item* items, size_t n,
                                    ems_code* codes, char** errmsg);
/* Fills items[i].size and items[i].code of every item (a bad item fails alone). Misses are
 * not failures: returns EMS_OK unless an item failed with a code other than EMS_NOT_FOUND
 * (then that code, message in *errmsg). */
EMS_C_EXPORT ems_code ems_batch_get(ems_client* client, ems_get_item* items, size_t n,
                                    char** errmsg);

/* *matched receives how many leading keys (in prompt order) are stored. */
EMS_C_EXPORT ems_code ems_match_prefix(ems_client* client, const ems_key* keys, size_t n,
                                       size_t* matched, char** errmsg);
/* *removed receives how many of the keys were removed. */
EMS_C_EXPORT ems_code ems_remove(ems_client* client, const ems_key* keys, size_t n, size_t* removed,
                                 char** errmsg);

/* d_{-1}, the digest a chain starts from. */
EMS_C_EXPORT void ems_root_digest(uint8_t out[EMS_DIGEST_BYTES]);
/* Chained prefix hashing (docs/hashing.md): digests of each full block of `tokens`, continuing
 * from `parent` (NULL = the root). Writes min(n_tokens / block_tokens, max_digests) digests to
 * `digests` (16 bytes each, back to back) and the number of full blocks to *n_digests; a
 * `digests` array too small for them all is EMS_OUT_OF_RANGE. */
EMS_C_EXPORT ems_code ems_prefix_hash(ems_hash_algorithm algo, size_t block_tokens,
                                      const uint8_t* parent, const uint32_t* tokens,
                                      size_t n_tokens, const void* extra, size_t extra_len,
                                      uint8_t* digests, size_t max_digests, size_t* n_digests,
                                      char** errmsg);

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* EMS_CAPI_EMS_C_H_ */
