#include "common/key_proto.h"

namespace ems {

void ToProto(const BlockKey& key, v1::Key* out) {
  out->set_ns(key.ns);
  out->set_digest(key.digest.bytes.data(), key.digest.bytes.size());
}

absl::StatusOr<BlockKey> FromProto(const v1::Key& key) { return MakeKey(key.ns(), key.digest()); }

}  // namespace ems
