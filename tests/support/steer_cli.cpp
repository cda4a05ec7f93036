#include "support/steer_cli.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <stdexcept>
#include <utility>

extern char** environ;

namespace steer::testing {

CommandResult run_steer(const std::string& bpffs, const std::vector<std::string>& args,
                        const std::vector<PassedFd>& passed) {
  std::vector<std::string> argv{steer_binary(), "--bpffs", bpffs};
  argv.insert(argv.end(), args.begin(), args.end());
  return run_command(argv, passed);
}

std::string state_snapshot(const std::string& bpffs) {
  std::string snapshot;
  for (const char* verb : {"status", "bindings"}) {
    auto result = run_steer(bpffs, {"--json", verb});
    snapshot += "== steer --json " + std::string(verb) + " (exit " +
                std::to_string(result.exit_code) + ")\n" + result.out + result.err;
  }
  return snapshot;
}

FdHolder::FdHolder(const std::vector<std::string>& argv, const std::vector<PassedFd>& passed) {
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0);
  posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0);
  int spawned = 0;
  {
    PassedFds fds(&actions, passed);
    auto args = c_argv(argv);
    spawned = ::posix_spawnp(&pid_, args[0], &actions, nullptr, args.data(), environ);
  }
  posix_spawn_file_actions_destroy(&actions);
  if (spawned != 0) {
    pid_ = -1;
    throw std::runtime_error("cannot start " + argv[0]);
  }
}

FdHolder::FdHolder(FdHolder&& other) noexcept : pid_(std::exchange(other.pid_, -1)) {}

FdHolder::~FdHolder() {
  if (pid_ <= 0) return;
  ::kill(pid_, SIGKILL);
  int status = 0;
  while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
  }
}

}  // namespace steer::testing
