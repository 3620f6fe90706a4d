// EMS_CHECK / EMS_DCHECK: for our own bugs only, never for bad input or a failing peer.
// (Abseil 20220623 has no absl/log.)
#ifndef EMS_COMMON_CHECK_H_
#define EMS_COMMON_CHECK_H_

#include <cstdio>
#include <cstdlib>

#define EMS_CHECK(cond, msg)                                                        \
  do {                                                                              \
    if (!(cond)) {                                                                  \
      std::fprintf(stderr, "%s:%d: check failed: %s: %s\n", __FILE__, __LINE__, #cond, \
                   msg);                                                            \
      std::abort();                                                                 \
    }                                                                               \
  } while (0)

#ifdef NDEBUG
#define EMS_DCHECK(cond, msg) \
  do {                        \
  } while (0)
#else
#define EMS_DCHECK(cond, msg) EMS_CHECK(cond, msg)
#endif

#endif  // EMS_COMMON_CHECK_H_
