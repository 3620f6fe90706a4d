// BlockKey to and from its wire form, v1::Key: one place for what every client, node and
// migration path sends and parses.
#ifndef EMS_COMMON_KEY_PROTO_H_
#define EMS_COMMON_KEY_PROTO_H_

#include "absl/status/statusor.h"
#include "common/key.h"
#include "ems/v1/data.pb.h"

namespace ems {

void ToProto(const BlockKey& key, v1::Key* out);
// Validates like MakeKey: a clear error for a bad namespace or a digest of the wrong size.
absl::StatusOr<BlockKey> FromProto(const v1::Key& key);

}  // namespace ems

#endif  // EMS_COMMON_KEY_PROTO_H_
