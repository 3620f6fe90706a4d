/* Compiled as strict C11: proves ems_c.h holds no C++ and that libems_c.so links from C. Checks
 * the published hash vectors (docs/hashing.md) and error reporting without a node; the
 * round trips through a real node are in ems_c_test.cc. */
#include "capi/ems_c.h"

#include <stdio.h>
#include <string.h>

static int failures = 0;

#define EXPECT(cond)                                                     \
  do {                                                                   \
    if (!(cond)) {                                                       \
      fprintf(stderr, "%s:%d: FAILED: %s\n", __FILE__, __LINE__, #cond); \
      ++failures;                                                        \
    }                                                                    \
  } while (0)

static void ToHex(const uint8_t* d, char out[33]) {
  for (int i = 0; i < 16; ++i) sprintf(out + 2 * i, "%02x", d[i]);
}

static void CheckVectors(ems_hash_algorithm algo, const char* b0, const char* b1, const char* lora,
                         const char* big) {
  uint32_t tokens[16];
  uint8_t digests[2 * EMS_DIGEST_BYTES];
  size_t n = 0;
  char hex[33];
  for (uint32_t i = 0; i < 8; ++i) tokens[i] = i;
  EXPECT(ems_prefix_hash(algo, 4, NULL, tokens, 8, NULL, 0, digests, 2, &n, NULL) == EMS_OK);
  EXPECT(n == 2);
  ToHex(digests, hex);
  EXPECT(strcmp(hex, b0) == 0);
  ToHex(digests + EMS_DIGEST_BYTES, hex);
  EXPECT(strcmp(hex, b1) == 0);
  /* Continuing from block 0 gives block 1. */
  EXPECT(ems_prefix_hash(algo, 4, digests, tokens + 4, 4, NULL, 0, digests + 16, 1, &n, NULL) ==
         EMS_OK);
  ToHex(digests + EMS_DIGEST_BYTES, hex);
  EXPECT(strcmp(hex, b1) == 0);
  EXPECT(ems_prefix_hash(algo, 4, NULL, tokens, 4, "lora:7", 6, digests, 1, &n, NULL) == EMS_OK);
  ToHex(digests, hex);
  EXPECT(strcmp(hex, lora) == 0);
  for (uint32_t i = 0; i < 16; ++i) tokens[i] = 100000 + i;
  EXPECT(ems_prefix_hash(algo, 16, NULL, tokens, 16, NULL, 0, digests, 1, &n, NULL) == EMS_OK);
  ToHex(digests, hex);
  EXPECT(strcmp(hex, big) == 0);
}

int main(void) {
  CheckVectors(EMS_HASH_XXH3_128, "1aa8129ad491cc9cf217621c76a973c9",
               "912daf48f0d1780cf55f8884bd59037c", "b5efe061c425f013147e850296b44fe7",
               "2a13ffb106a2af52b0ceef64e045cdac");
  CheckVectors(EMS_HASH_SHA256, "2284f9b2b8f60c51cedaec6132552e2c",
               "b7b5b0fe229213be9339bfdf8a5fbc5a", "e7d9ab80cfdc4150cfadbdd3a68c29a1",
               "1c9e405837eecbb795dfeb12282ff227");

  uint8_t root[EMS_DIGEST_BYTES];
  ems_root_digest(root);
  EXPECT(memcmp(root, "ems.prefix.v1\0\0\0", 16) == 0);

  /* Errors carry a code and a message naming what was wrong. */
  uint32_t tokens[8] = {0};
  uint8_t one[EMS_DIGEST_BYTES];
  size_t n = 0;
  char* err = NULL;
  EXPECT(ems_prefix_hash(EMS_HASH_XXH3_128, 0, NULL, tokens, 8, NULL, 0, one, 1, &n, &err) ==
         EMS_INVALID_ARGUMENT);
  EXPECT(err != NULL && strstr(err, "block_tokens") != NULL);
  ems_free(err);
  err = NULL;
  EXPECT(ems_prefix_hash(EMS_HASH_XXH3_128, 4, NULL, tokens, 8, NULL, 0, one, 1, &n, &err) ==
         EMS_OUT_OF_RANGE);
  EXPECT(n == 2 && err != NULL && strstr(err, "holds 1") != NULL);
  ems_free(err);
  EXPECT(strcmp(ems_code_name(EMS_NOT_FOUND), "NOT_FOUND") == 0);

  ems_client_options options;
  ems_client_options_init(&options);
  EXPECT(options.use_local == 1 && options.verify_checksums == 1);
  ems_client* client = NULL;
  err = NULL;
  EXPECT(ems_client_connect(&options, &client, &err) == EMS_INVALID_ARGUMENT);
  EXPECT(client == NULL && err != NULL && strstr(err, "neither an address") != NULL);
  ems_free(err);
  err = NULL;
  options.address = "127.0.0.1:1"; /* nothing listens on port 1 */
  options.timeout_ms = 500;
  EXPECT(ems_client_connect(&options, &client, &err) == EMS_UNAVAILABLE);
  EXPECT(client == NULL && err != NULL && strstr(err, "127.0.0.1:1") != NULL);
  ems_free(err);

  if (failures == 0) printf("capi_c_test: all checks passed\n");
  return failures == 0 ? 0 : 1;
}
