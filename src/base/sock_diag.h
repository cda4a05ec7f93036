// How full each socket's queue is, from the kernel's sock_diag (NETLINK_SOCK_DIAG), in the
// calling thread's network namespace: what `status` shows as QUEUED.
#pragma once

#include <cstdint>
#include <map>

#include "base/error.h"

namespace steer {

struct SocketQueue {
  // TCP listener: connections in its accept queue now, and the most it holds (the backlog).
  // UDP socket: bytes waiting in its receive queue, and 0.
  uint32_t queued = 0;
  uint32_t limit = 0;
};

// Every listening TCP socket (IPPROTO_TCP) or every UDP socket (IPPROTO_UDP) of both
// families, by socket cookie.
Result<std::map<uint64_t, SocketQueue>> socket_queues(int protocol);

}  // namespace steer
