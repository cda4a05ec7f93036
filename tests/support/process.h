// Running real binaries (the steer CLI, peers such as curl and socat) from tests.
#pragma once

#include <fcntl.h>
#include <spawn.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <stdexcept>
#include <string>
#include <vector>

namespace steer::testing {

struct CommandResult {
  int exit_code = -1;  // -1 when the process died of a signal (or could not start)
  int signal = 0;      // the signal that ended it, 0 when it exited
  bool timed_out = false;
  std::string out;
  std::string err;
};

// An fd of the test that a spawned process gets at number `as` (e.g. `register --fd 5`).
struct PassedFd {
  int fd;
  int as;
};

struct CommandOptions {
  std::vector<PassedFd> passed;
  // NAME=value entries set in the child's environment (over the test's own).
  std::vector<std::string> env;
  // Longer than this and the command (its whole process group) is killed: timed_out is set.
  // Zero: no limit.
  std::chrono::milliseconds timeout{0};
};

// Runs `argv` to completion and returns what it printed. The child's fds are stdin
// (/dev/null), stdout, stderr and `passed`: no other fd of the test reaches it. It runs in a
// process group of its own.
CommandResult run_command(const std::vector<std::string>& argv, const CommandOptions& options);
CommandResult run_command(const std::vector<std::string>& argv,
                          const std::vector<PassedFd>& passed = {});

// Spawn file actions that put each passed fd at its number. The sources are first copied
// above every target (close-on-exec), so a target never overwrites a source still needed.
class PassedFds {
 public:
  PassedFds(posix_spawn_file_actions_t* actions, const std::vector<PassedFd>& passed) {
    int highest = 2;
    for (const auto& fd : passed) {
      int copy = ::fcntl(fd.fd, F_DUPFD_CLOEXEC, 1000);
      if (copy < 0) throw std::runtime_error("cannot duplicate fd " + std::to_string(fd.fd));
      copies_.push_back(copy);
      posix_spawn_file_actions_adddup2(actions, copy, fd.as);
      highest = std::max(highest, fd.as);
    }
    // Nothing else the test process left open reaches the child: its fds are exactly these.
    posix_spawn_file_actions_addclosefrom_np(actions, highest + 1);
  }
  ~PassedFds() {
    for (int copy : copies_) ::close(copy);
  }

 private:
  std::vector<int> copies_;
};

// argv as posix_spawn wants it (pointers into `argv`, null-terminated).
std::vector<char*> c_argv(const std::vector<std::string>& argv);

// The test's environment with `overrides` (NAME=value) set; keep it alive while spawning.
std::vector<std::string> environment_with(const std::vector<std::string>& overrides);

// "a b 'c d'": a command line to show in failure messages.
std::string shell_words(const std::vector<std::string>& argv);

// The steer CLI built next to the tests.
std::string steer_binary();

}  // namespace steer::testing
