// What every data-plane entry point (gRPC and the bulk channel) checks before serving keys.
#ifndef EMS_NODE_ADMISSION_H_
#define EMS_NODE_ADMISSION_H_

#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "common/cluster_view.h"
#include "common/key.h"

namespace ems::node {

// UNAUTHENTICATED unless `given` equals `required` (an empty `required` admits everyone).
absl::Status CheckCdKey(const std::string& node_id, absl::string_view required,
                        absl::string_view given, absl::string_view where);

// When the caller's map (`client_epoch`, 0 = no map) is older than `view`'s, this node must own
// every key: FAILED_PRECONDITION naming the first it does not, so the caller refreshes its map.
// A null `view` (standalone node) owns everything.
absl::Status CheckOwnership(const ClusterView* view, const std::string& node_id,
                            uint64_t client_epoch, absl::Span<const BlockKey> keys);

}  // namespace ems::node

#endif  // EMS_NODE_ADMISSION_H_
