#include "pool/eviction_policy.h"

#include "absl/strings/str_cat.h"
#include "pool/internal/lru_policy.h"
#include "pool/internal/prefix_policy.h"
#include "pool/internal/s3fifo_policy.h"

namespace ems::pool {

absl::StatusOr<std::unique_ptr<EvictionPolicy>> MakeEvictionPolicy(absl::string_view name) {
  if (name == "lru") return std::make_unique<internal::LruPolicy>();
  if (name == "s3fifo") return std::make_unique<internal::S3FifoPolicy>();
  if (name == "prefix") return std::make_unique<internal::PrefixPolicy>();
  return absl::InvalidArgumentError(
      absl::StrCat("unknown eviction policy '", name, "'; expected lru, s3fifo or prefix"));
}

}  // namespace ems::pool
