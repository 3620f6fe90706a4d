#include "controller/api/errors.h"

#include "absl/strings/cord.h"
#include "absl/strings/str_cat.h"
#include "controller/api/json_util.h"

namespace ems::controller::api {
namespace {

constexpr char kPayloadUrl[] = "type.ems/error_code";

int HttpStatusOf(absl::StatusCode code) {
  switch (code) {
    case absl::StatusCode::kInvalidArgument:
    case absl::StatusCode::kOutOfRange:
    case absl::StatusCode::kFailedPrecondition:
    case absl::StatusCode::kAlreadyExists:
      return 400;
    case absl::StatusCode::kUnauthenticated:
      return 401;
    case absl::StatusCode::kPermissionDenied:
      return 403;
    case absl::StatusCode::kNotFound:
      return 404;
    case absl::StatusCode::kUnavailable:
      return 503;
    default:
      return 500;
  }
}

}  // namespace

absl::Status ApiError(absl::StatusCode code, absl::string_view error_code, absl::string_view msg) {
  absl::Status s(code, msg);
  s.SetPayload(kPayloadUrl, absl::Cord(error_code));
  return s;
}

absl::Status InvalidParameter(absl::string_view msg) {
  return ApiError(absl::StatusCode::kInvalidArgument, kCodeInvalidParameter,
                  absl::StrCat("invalid parameter: ", msg));
}

absl::Status RangeError(absl::string_view object, absl::string_view field, bool greater,
                        absl::string_view bound) {
  return ApiError(absl::StatusCode::kOutOfRange, kCodeRange,
                  absl::StrCat("[", object, "].[", field, "]: must be ",
                               greater ? "greater" : "less", " than or equal to [", bound, "]"));
}

absl::Status InvalidPagination(absl::string_view msg) {
  return ApiError(absl::StatusCode::kInvalidArgument, kCodeInvalidParameter,
                  absl::StrCat("invalid pagination parameters: ", msg));
}

absl::Status AuthFailed(absl::string_view reason) {
  return ApiError(absl::StatusCode::kUnauthenticated, kCodeAuth,
                  absl::StrCat("Auth token failed, reason is:{", reason, "}"));
}

absl::Status ClusterNotFound(absl::string_view id) {
  return ApiError(absl::StatusCode::kNotFound, kCodeClusterNotFound,
                  absl::StrCat("Cluster not found: [", id, "]."));
}

absl::Status JobNotFound(absl::string_view id) {
  return ApiError(absl::StatusCode::kNotFound, kCodeJobNotFound,
                  absl::StrCat("Job not found: [", id, "]."));
}

std::string ErrorCodeOf(const absl::Status& status) {
  auto payload = status.GetPayload(kPayloadUrl);
  return payload ? std::string(*payload) : std::string();
}

HttpError ToHttp(const absl::Status& status) {
  HttpError e{HttpStatusOf(status.code()), ""};
  std::string code = ErrorCodeOf(status);
  if (code.empty()) {
    switch (e.http_status) {
      case 400:
        code = kCodeInvalidParameter;
        break;
      case 401:
        code = kCodeAuth;
        break;
      case 404:
        code = kCodeNoSuchApi;
        break;
      default:
        code = "EMS.00005000";
        break;
    }
  }
  Json body = {{"error_code", code}, {"error_msg", std::string(status.message())}};
  e.body = DumpJson(body);
  return e;
}

}  // namespace ems::controller::api
