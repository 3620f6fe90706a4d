#include "node/admission.h"

#include "absl/strings/str_cat.h"
#include "common/secret.h"

namespace ems::node {

absl::Status CheckCdKey(const std::string& node_id, absl::string_view required,
                        absl::string_view given, absl::string_view where) {
  if (required.empty() || SameSecret(given, required)) return absl::OkStatus();
  return absl::UnauthenticatedError(
      absl::StrCat("node ", node_id, " requires the project's cdKey in ", where));
}

absl::Status CheckOwnership(const ClusterView* view, const std::string& node_id,
                            uint64_t client_epoch, absl::Span<const BlockKey> keys) {
  if (view == nullptr || client_epoch == 0 || client_epoch >= view->epoch()) {
    return absl::OkStatus();
  }
  for (const BlockKey& key : keys) {
    if (!view->Owns(node_id, key)) {
      return absl::FailedPreconditionError(
          absl::StrCat("node ", node_id, " does not own ", key.ToString(), " under epoch ",
                       view->epoch(), " (caller has epoch ", client_epoch, ")"));
    }
  }
  return absl::OkStatus();
}

}  // namespace ems::node
