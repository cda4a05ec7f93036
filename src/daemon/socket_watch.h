// Hears when a TCP or UDP socket of the watched network namespace is destroyed (the kernel's
// sock_diag destroy broadcasts), so that steerd rebuilds a pool the moment one of its sockets
// closes rather than at the next change.
#pragma once

#include <cstdint>
#include <vector>

#include "base/error.h"
#include "base/fd.h"
#include "base/netns.h"

namespace steer::daemon {

class SocketWatch {
 public:
  // Subscribes in `netns` (the caller's own when none). Entering another netns needs
  // CAP_SYS_ADMIN; the subscription itself needs no capability.
  static Result<SocketWatch> open(const NetNamespace* netns);
  int fd() const { return socket_.get(); }
  // The cookies of the sockets destroyed since the last call (non-blocking). `overflowed`:
  // the kernel dropped notices (ENOBUFS): the caller checks every pool.
  struct Destroyed {
    std::vector<uint64_t> cookies;
    bool overflowed = false;
  };
  Result<Destroyed> read();

 private:
  explicit SocketWatch(Fd socket) : socket_(std::move(socket)) {}
  Fd socket_;
};

}  // namespace steer::daemon
