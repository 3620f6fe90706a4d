// The EMS API's error codes (EMS-API.md, "Error codes") carried inside absl::Status, and the one
// place where a Status becomes an HTTP status and {"error_code", "error_msg"} body.
#ifndef EMS_CONTROLLER_API_ERRORS_H_
#define EMS_CONTROLLER_API_ERRORS_H_

#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace ems::controller::api {

// Documented codes, verbatim.
inline constexpr char kCodeInvalidParameter[] = "EMS.00004000";
inline constexpr char kCodeRange[] = "common.00000400";
inline constexpr char kCodeAuth[] = "common.01010018";
inline constexpr char kCodeClusterNotFound[] = "ems.00030005";
inline constexpr char kCodeNameExists[] = "ems.00030033";
inline constexpr char kCodeCannotDelete[] = "ems.00030034";
inline constexpr char kCodeCreateFailed[] = "ems.00030002";
inline constexpr char kCodeProjectMismatch[] = "ems.00040003";
inline constexpr char kCodeDeletingFailed[] = "ems.00030003";
// Our additions, in the same families (docs/controller.md lists them).
inline constexpr char kCodeJobNotFound[] = "ems.00030006";
inline constexpr char kCodeNotCancellable[] = "ems.00030035";
inline constexpr char kCodeWrongState[] = "ems.00030036";
inline constexpr char kCodeNoSuchApi[] = "EMS.00004040";

// An error with an API error code. `code` picks the HTTP status (see ToHttp).
absl::Status ApiError(absl::StatusCode code, absl::string_view error_code, absl::string_view msg);

// 400 EMS.00004000 "invalid parameter: <msg>"; `msg` names the field.
absl::Status InvalidParameter(absl::string_view msg);
// 400 common.00000400 "[object].[field]: must be greater than or equal to [bound]" (or less).
absl::Status RangeError(absl::string_view object, absl::string_view field, bool greater,
                        absl::string_view bound);
// 400 EMS.00004000 "invalid pagination parameters: <msg>".
absl::Status InvalidPagination(absl::string_view msg);
// 401 common.01010018 "Auth token failed, reason is:{<reason>}".
absl::Status AuthFailed(absl::string_view reason);
// 404 ems.00030005 "Cluster not found: [<id>]."
absl::Status ClusterNotFound(absl::string_view id);
// 404 ems.00030006 "Job not found: [<id>]."
absl::Status JobNotFound(absl::string_view id);

struct HttpError {
  int http_status;
  std::string body;  // {"error_code": ..., "error_msg": ...}
};
// REQUIRES: !status.ok(). Statuses without an API code get a code of the family that matches
// their canonical code (400 EMS.00004000, 401, 404, 500 ...).
HttpError ToHttp(const absl::Status& status);
// The API error code of `status` ("" if it has none).
std::string ErrorCodeOf(const absl::Status& status);

}  // namespace ems::controller::api

#endif  // EMS_CONTROLLER_API_ERRORS_H_
