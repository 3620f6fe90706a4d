// Listening sockets that one process owns. gRPC and cpp-httplib set SO_REUSEPORT by default,
// so a second process given the same port (started by mistake, or beside a predecessor that
// hangs) binds it too and the kernel spreads new connections over both: two ems-nodes, each
// with its own arena, or two controllers. With these, that second process fails to start and
// names the port. SO_REUSEADDR stays, so a restart binds past its predecessor's TIME_WAIT.
#ifndef EMS_COMMON_EXCLUSIVE_PORT_H_
#define EMS_COMMON_EXCLUSIVE_PORT_H_

#include <grpcpp/grpcpp.h>
#include <httplib.h>
#include <sys/socket.h>

namespace ems {

inline void ListenExclusively(grpc::ServerBuilder& builder) {
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
}

inline void ListenExclusively(httplib::Server& server) {
  server.set_socket_options([](int sock) {
    const int one = 1;
    setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  });
}

}  // namespace ems

#endif  // EMS_COMMON_EXCLUSIVE_PORT_H_
