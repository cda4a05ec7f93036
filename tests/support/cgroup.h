// A temporary cgroup v2 directory, and a child process inside it that creates sockets for
// the test. Programs attached to a cgroup (sockops, cgroup/sock, ...) see the sockets
// created by the cgroup's processes: a socket belongs to the cgroup of the process that
// created it, for its whole life, whoever later binds, listens or connects it.
#pragma once

#include <sys/types.h>

#include <optional>
#include <string>

#include "base/cgroup.h"
#include "base/error.h"
#include "base/fd.h"

namespace steer::testing {

// A fresh, empty cgroup for a test (base/cgroup.h). Attach programs to fd(), never to the
// root cgroup: that would affect the whole machine.
using TestCgroup = steer::TemporaryCgroup;

// A forked child process moved into `cgroup` that creates sockets on request and hands them
// to the test over SCM_RIGHTS, keeping no copy. It inherits the test's network namespace,
// and closes every other fd it inherited, so it never keeps the test's sockets alive.
// Destroy it before the cgroup (the child exits when its channel closes, and is reaped).
class SocketMakerInCgroup {
 public:
  static Result<SocketMakerInCgroup> start(const TestCgroup& cgroup);
  SocketMakerInCgroup(SocketMakerInCgroup&& other) noexcept;
  SocketMakerInCgroup& operator=(SocketMakerInCgroup&&) = delete;
  ~SocketMakerInCgroup();

  // socket(family, type | SOCK_CLOEXEC, 0) called in the child: the socket is the cgroup's.
  Result<Fd> make_socket(int family, int type) const;
  pid_t pid() const { return pid_; }

 private:
  SocketMakerInCgroup(pid_t pid, Fd channel) : pid_(pid), channel_(std::move(channel)) {}
  pid_t pid_ = -1;
  Fd channel_;
};

}  // namespace steer::testing
