// gRPC metadata names of the wire contract, shared by clients, nodes and the controller.
#ifndef EMS_COMMON_METADATA_H_
#define EMS_COMMON_METADATA_H_

namespace ems {

// The project's cdKey: client → node, node → node (migration), node → controller (membership).
inline constexpr char kCdKeyHeader[] = "ems-cd-key";
// A cluster map epoch: client → node, and node → client (trailer of a stale-map refusal).
inline constexpr char kEpochHeader[] = "ems-epoch";
// Marks a BatchPut as a node's migration push (node → node, value "1"), not a client's put: a
// node refuses a push of a key a client removed from it lately (node/removed_keys.h). Nodes
// that do not know it take the push as a client's put, as before.
inline constexpr char kMigrationHeader[] = "ems-migration";

}  // namespace ems

#endif  // EMS_COMMON_METADATA_H_
