// The one place absl::Status and grpc::Status convert into each other.
#ifndef EMS_COMMON_GRPC_STATUS_H_
#define EMS_COMMON_GRPC_STATUS_H_

#include <grpcpp/support/status.h>

#include "absl/status/status.h"

namespace ems {

grpc::Status ToGrpcStatus(const absl::Status& status);
absl::Status FromGrpcStatus(const grpc::Status& status);

}  // namespace ems

#endif  // EMS_COMMON_GRPC_STATUS_H_
