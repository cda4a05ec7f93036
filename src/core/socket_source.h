// Where registered sockets come from: another process (pidfd_getfd), systemd socket
// activation (LISTEN_FDS), or an fd the caller passes.
#pragma once

#include <sys/types.h>

#include <map>
#include <string>
#include <vector>

#include "base/error.h"
#include "base/fd.h"

namespace steer::core {

// Copies of every IPv4/IPv6 socket fd process `pid` has open (one per socket, even if the
// process holds it at several fds). ESRCH for a dead pid; EPERM without the right to.
Result<std::vector<Fd>> take_sockets_of_process(pid_t pid);

// Copies of the sockets with these cookies, each taken from the process named beside it
// (their registered owners). Sockets whose process has exited, or closed them, are missing
// from the answer: no error.
std::map<uint64_t, Fd> take_sockets_by_cookie(const std::map<uint64_t, pid_t>& owners);

struct ActivatedSocket {
  int fd;            // 3, 4, ... (owned by this process, inherited from the activator)
  std::string name;  // from LISTEN_FDNAMES; "unknown" when systemd gave none
};

// The sockets systemd (or systemd-socket-activate) passed to this process. Checks that
// LISTEN_PID names this process, as sd_listen_fds does; EINVAL with the reason otherwise.
Result<std::vector<ActivatedSocket>> sockets_from_systemd();

}  // namespace steer::core
