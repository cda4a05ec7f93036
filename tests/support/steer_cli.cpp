#include "support/steer_cli.h"

#include <fcntl.h>
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

// The verbs that read or write pinned state: never without a test's own bpffs.
bool needs_state(const std::vector<std::string>& args) {
  static constexpr std::array kStateVerbs{"load",     "unload",       "upgrade",  "bind",
                                          "unbind",   "load-bindings", "bindings", "register",
                                          "register-pid", "unregister", "status",  "explain"};
  for (const auto& word : args)
    if (std::ranges::find(kStateVerbs, word) != kStateVerbs.end()) return true;
  return false;
}

}  // namespace

std::vector<std::string> steer_argv(const SteerCall& call) {
  if (call.bpffs.empty() && needs_state(call.args))
    throw std::logic_error("steer " + shell_words(call.args) +
                           " without a private bpffs: set SteerCall::bpffs");
  std::vector<std::string> argv = call.wrapper;
  argv.push_back(steer_binary());
  if (!call.bpffs.empty()) argv.insert(argv.end(), {"--bpffs", call.bpffs});
  if (!call.netns.empty()) argv.insert(argv.end(), {"--netns", call.netns});
  if (call.json) argv.push_back("--json");
  argv.insert(argv.end(), call.args.begin(), call.args.end());
  return argv;
}

CommandResult run_steer(const SteerCall& call) {
  return run_command(steer_argv(call),
                     CommandOptions{.passed = call.fds, .env = call.env, .timeout = call.timeout});
}

CommandResult run_steer(const std::string& bpffs, const std::vector<std::string>& args,
                        const std::vector<PassedFd>& passed) {
  return run_steer(SteerCall{.bpffs = bpffs, .args = args, .fds = passed});
}

std::string describe(const SteerCall& call, const CommandResult& result) {
  std::string text = "$ " + shell_words(steer_argv(call)) + "\n";
  if (result.signal != 0)
    text += "killed by signal " + std::to_string(result.signal) + "\n";
  else
    text += "exit " + std::to_string(result.exit_code) + "\n";
  if (!result.out.empty()) text += "stdout: " + result.out + (result.out.ends_with('\n') ? "" : "\n");
  if (!result.err.empty()) text += "stderr: " + result.err + (result.err.ends_with('\n') ? "" : "\n");
  return text;
}

nlohmann::json steer_json(SteerCall call) {
  call.json = true;
  auto result = run_steer(call);
  if (result.exit_code != 0) throw SteerFailed(describe(call, result));
  auto parsed = nlohmann::json::parse(result.out, nullptr, /*allow_exceptions=*/false);
  if (parsed.is_discarded()) throw SteerFailed("not JSON:\n" + describe(call, result));
  return parsed;
}

std::string state_snapshot(const std::string& bpffs) {
  std::string snapshot;
  for (const char* verb : {"status", "bindings"}) {
    auto result = run_steer(SteerCall{.bpffs = bpffs, .args = {verb}, .json = true});
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
