// Comparing secrets (cdKeys, the admin token) a peer presents.
#ifndef EMS_COMMON_SECRET_H_
#define EMS_COMMON_SECRET_H_

#include "absl/strings/string_view.h"

namespace ems {

// True if `a` and `b` are the same bytes, in a time that does not depend on where they first
// differ: a byte-by-byte compare that stops there would let a peer who can time many refusals
// find a key a byte at a time. (The length can still be told apart; keys' lengths are not
// secret.)
bool SameSecret(absl::string_view a, absl::string_view b);

}  // namespace ems

#endif  // EMS_COMMON_SECRET_H_
