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

namespace {

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

std::vector<char*> c_argv(const std::vector<std::string>& argv) {
  std::vector<char*> args;
  for (const auto& arg : argv) args.push_back(const_cast<char*>(arg.c_str()));
  args.push_back(nullptr);
  return args;
}

}  // namespace

CommandResult run_command_with_fds(const std::vector<std::string>& argv,
                                   const std::vector<PassedFd>& passed) {
  int out_pipe[2], err_pipe[2];
  if (::pipe2(out_pipe, O_CLOEXEC) != 0 || ::pipe2(err_pipe, O_CLOEXEC) != 0)
    throw std::runtime_error("pipe2 failed");
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_adddup2(&actions, out_pipe[1], 1);
  posix_spawn_file_actions_adddup2(&actions, err_pipe[1], 2);
  pid_t pid = 0;
  int spawned = 0;
  {
    PassedFds fds(&actions, passed);
    auto args = c_argv(argv);
    spawned = ::posix_spawnp(&pid, args[0], &actions, nullptr, args.data(), environ);
  }
  posix_spawn_file_actions_destroy(&actions);
  ::close(out_pipe[1]);
  ::close(err_pipe[1]);
  CommandResult result;
  if (spawned != 0) {
    ::close(out_pipe[0]);
    ::close(err_pipe[0]);
    result.err = "cannot start " + argv[0];
    return result;
  }
  std::array<pollfd, 2> fds{pollfd{out_pipe[0], POLLIN, 0}, pollfd{err_pipe[0], POLLIN, 0}};
  std::array<std::string*, 2> sinks{&result.out, &result.err};
  int open_pipes = 2;
  while (open_pipes > 0) {
    if (::poll(fds.data(), fds.size(), -1) < 0) {
      if (errno == EINTR) continue;
      break;
    }
    for (size_t i = 0; i < fds.size(); ++i) {
      if (fds[i].fd < 0 || !(fds[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
      char buffer[4096];
      ssize_t n = ::read(fds[i].fd, buffer, sizeof(buffer));
      if (n > 0) {
        sinks[i]->append(buffer, static_cast<size_t>(n));
      } else {
        ::close(fds[i].fd);
        fds[i].fd = -1;
        --open_pipes;
      }
    }
  }
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return result;
}

CommandResult run_steer(const std::string& bpffs, const std::vector<std::string>& args,
                        const std::vector<PassedFd>& passed) {
  std::vector<std::string> argv{steer_binary(), "--bpffs", bpffs};
  argv.insert(argv.end(), args.begin(), args.end());
  return run_command_with_fds(argv, passed);
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
