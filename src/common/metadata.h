// gRPC metadata names of the wire contract, shared by clients, nodes and the controller.
#ifndef EMS_COMMON_METADATA_H_
#define EMS_COMMON_METADATA_H_

namespace ems {

// The project's cdKey: client → node, node → node (migration), node → controller (membership).
inline constexpr char kCdKeyHeader[] = "ems-cd-key";
// A cluster map epoch: client → node, and node → client (trailer of a stale-map refusal).
inline constexpr char kEpochHeader[] = "ems-epoch";

}  // namespace ems

#endif  // EMS_COMMON_METADATA_H_
