// Running the steer CLI from tests with extra fds handed to it, processes that hold sockets
// for a test, and a snapshot of steer's state to compare before and after a command.
#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

#include "support/process.h"

namespace steer::testing {

// `steer --bpffs BPFFS ARGS...`, with `passed` fds.
CommandResult run_steer(const std::string& bpffs, const std::vector<std::string>& args,
                        const std::vector<PassedFd>& passed = {});

// What steer shows of its state: `steer --json status` then `steer --json bindings` (each
// with its exit code and any error), as one string to compare byte for byte.
std::string state_snapshot(const std::string& bpffs);

// A background process (e.g. `sleep`) that holds fds for a test: a registered socket stays
// registered while some process keeps it open. Killed and reaped on destruction.
class FdHolder {
 public:
  // Starts `argv` with `passed` fds (stdin, stdout and stderr on /dev/null). posix_spawn
  // returns once the exec happened, so the fds are the holder's on return. Throws on failure.
  FdHolder(const std::vector<std::string>& argv, const std::vector<PassedFd>& passed);
  ~FdHolder();
  FdHolder(FdHolder&& other) noexcept;
  FdHolder(const FdHolder&) = delete;
  FdHolder& operator=(const FdHolder&) = delete;
  FdHolder& operator=(FdHolder&&) = delete;

  pid_t pid() const { return pid_; }

 private:
  pid_t pid_ = -1;
};

}  // namespace steer::testing
