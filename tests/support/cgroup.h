// A temporary cgroup v2 directory, and a child process inside it that creates sockets for
// the test. Programs attached to a cgroup (sockops, cgroup/sock, ...) see the sockets
// created by the cgroup's processes: a socket belongs to the cgroup of the process that
// created it, for its whole life, whoever later binds, listens or connects it.
#pragma once

#include <sys/types.h>

#include <optional>
#include <string>

#include "base/error.h"
#include "base/fd.h"

namespace steer::testing {

// A fresh, empty cgroup under the cgroup2 mount (found in /proc/self/mountinfo; a private
// cgroup2 mount on a temporary directory when there is none), with a name unique in this
// process, unlike steer::TemporaryCgroup (base/cgroup.h). Removed on destruction: the
// processes moved into it must have exited (and been reaped) by then. Attach programs to
// fd(), never to the root cgroup: that would affect the whole machine.
class TestCgroup {
 public:
  static Result<TestCgroup> create();
  TestCgroup(TestCgroup&& other) noexcept;
  TestCgroup& operator=(TestCgroup&&) = delete;
  ~TestCgroup();

  const std::string& path() const { return path_; }
  // An O_DIRECTORY fd of the cgroup, for attaching programs.
  int fd() const { return fd_.get(); }
  // Moves the process `pid` (all its threads) into this cgroup.
  Result<void> add_process(pid_t pid) const;

 private:
  TestCgroup(std::string path, Fd fd, std::string private_mount)
      : path_(std::move(path)), fd_(std::move(fd)), private_mount_(std::move(private_mount)) {}
  std::string path_;
  Fd fd_;
  std::string private_mount_;  // non-empty when we mounted cgroup2 ourselves
};

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
