// The one way tests run the steer CLI: run_steer(SteerCall{...}). Everything else here
// (SteerCli, steer_json, state_snapshot) is a shorthand over it. Also: processes that hold
// sockets for a test.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>
#include <vector>

#include "support/process.h"

namespace steer::testing {

// One run of `steer`, as a user would type it:
//   [WRAPPER...] steer [--bpffs BPFFS] [--netns NETNS] [--json] ARGS...
struct SteerCall {
  // --bpffs: the test's private bpffs. Empty only for verbs that keep no state (doctor,
  // version, usage errors): a verb that reads or writes state refuses to run without it,
  // so no test ever reaches the machine's /sys/fs/bpf.
  std::string bpffs;
  std::string netns;              // --netns PATH; empty: the namespace the test is in
  std::vector<std::string> args;  // the verb and its words
  std::vector<PassedFd> fds;      // fds the command inherits (`register --fd N`)
  std::vector<std::string> env;   // NAME=value set for the command (LISTEN_FDS, ...)
  bool json = false;              // --json
  // Runs steer under this command (e.g. strace ... ): WRAPPER... steer ...
  std::vector<std::string> wrapper;
  std::chrono::milliseconds timeout{std::chrono::minutes(2)};  // then killed
};

// The command line of `call` (wrapper included).
std::vector<std::string> steer_argv(const SteerCall& call);
CommandResult run_steer(const SteerCall& call);
// Shorthand: `steer --bpffs BPFFS ARGS...`, with `passed` fds.
CommandResult run_steer(const std::string& bpffs, const std::vector<std::string>& args,
                        const std::vector<PassedFd>& passed = {});

// The command line and everything it printed, for failure messages.
std::string describe(const SteerCall& call, const CommandResult& result);

// A steer run that failed, or did not print JSON, where the test needed it to.
struct SteerFailed : std::runtime_error {
  using std::runtime_error::runtime_error;
};
// Runs `call` with --json; its parsed output. Throws SteerFailed (with describe()) when
// steer exits non-zero or prints no valid JSON.
nlohmann::json steer_json(SteerCall call);

// The steer CLI on one private bpffs (and --netns, if given): a SteerCall factory.
class SteerCli {
 public:
  explicit SteerCli(std::string bpffs, std::string netns = {})
      : bpffs_(std::move(bpffs)), netns_(std::move(netns)) {}
  SteerCall call(std::vector<std::string> args, std::vector<PassedFd> fds = {}) const {
    return SteerCall{.bpffs = bpffs_, .netns = netns_, .args = std::move(args),
                     .fds = std::move(fds)};
  }
  // The full command line: steer --bpffs DIR [--netns NS] ARGS...
  std::vector<std::string> argv(const std::vector<std::string>& args) const {
    return steer_argv(call(args));
  }
  CommandResult run(const std::vector<std::string>& args,
                    const std::vector<PassedFd>& fds = {}) const {
    return run_steer(call(args, fds));
  }
  // `steer --json ARGS`, parsed; throws SteerFailed (with steer's output) on failure.
  nlohmann::json json(const std::vector<std::string>& args) const {
    return steer_json(call(args));
  }
  nlohmann::json status() const { return json({"status"}); }
  const std::string& bpffs() const { return bpffs_; }

 private:
  std::string bpffs_;
  std::string netns_;
};

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
