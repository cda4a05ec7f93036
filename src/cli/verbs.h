// The `steer` verbs: one source file each under verbs/, registered in main.cpp.
#pragma once

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "base/error.h"
#include "core/dispatcher.h"
#include "core/state.h"
#include "report/render.h"
#include "report/table.h"

namespace steer::cli {

// The renderings shared with steerd (report/): tables, JSON, printable text.
using namespace steer::report;

struct GlobalOptions {
  std::string netns;                  // --netns PATH: operate on that network namespace
  std::string bpffs = "/sys/fs/bpf";  // --bpffs DIR: where state is pinned
  bool json = false;                  // --json: machine-readable output
  double lock_timeout = 30;           // --lock-timeout SECONDS: wait for another steer's lock

  // The target, with the lock timeout; waiting for the lock is reported on stderr.
  core::Target target() const;
};

// What a verb's callback hands back to main: an exit code, or an error to print.
struct Outcome {
  int exit_code = 0;
};
using VerbResult = Result<Outcome>;

// Each verb adds its subcommand; `run` receives the verb's result when it is chosen.
using VerbRunner = std::function<void(VerbResult)>;

// An optional word: nothing when empty, else what `parse` makes of it (or its error).
template <class Parse>
auto parse_if_given(const std::string& text, Parse parse)
    -> Result<std::optional<typename decltype(parse(text))::value_type>> {
  if (text.empty()) return std::nullopt;
  return std::optional(STEER_TRY(parse(text)));
}

// Registers sockets by fd into a label's pools, all or nothing, and reports them (the shared
// end of `register` and `register-pid`).
// With `reuseport`, steer's sk_reuseport program is then attached to their groups.
struct RegisterOptions {
  std::optional<uint32_t> generation;
  bool reuseport = false;
};
VerbResult register_fds(const GlobalOptions& globals, const std::string& label,
                        const std::vector<int>& fds, const core::Owner& owner,
                        const RegisterOptions& options);
// `--generation G` and `--reuseport` of register and register-pid.
void add_register_options(CLI::App* verb, RegisterOptions& options);


// Which of a label's sockets a verb acts on: --cookie, --pid, --generation (any mix; all of
// them must match), or --all. `verb` says what the verb does, for the error when none is
// given.
struct SocketSelection {
  core::SocketFilter filter;
  bool all = false;
};
void add_socket_selection(CLI::App* verb, SocketSelection& selection);
// The filter, or an error naming the options when none was given.
Result<core::SocketFilter> selected_sockets(const SocketSelection& selection);

// Prints what the dispatcher did on the side (a repair after an interrupted command, a
// socket pruned) to stderr, one "steer: note:" line each.
void print_notices(const core::Dispatcher& dispatcher);

// Prints `json` for --json, else `text`; returns success.
VerbResult print_result(const GlobalOptions& globals, const nlohmann::json& json,
                        const std::string& text);

#define STEER_VERBS(X) \
  X(doctor)            \
  X(load)              \
  X(unload)            \
  X(upgrade)           \
  X(status)            \
  X(bindings)          \
  X(bind)              \
  X(unbind)            \
  X(load_bindings)     \
  X(register)          \
  X(register_pid)      \
  X(unregister)        \
  X(policy)            \
  X(weight)            \
  X(drain)             \
  X(undrain)           \
  X(promote)           \
  X(reuseport)         \
  X(conns)             \
  X(explain)           \
  X(version)

#define STEER_DECLARE_VERB(name) \
  void add_##name##_verb(CLI::App& app, const GlobalOptions& globals, const VerbRunner& run);
STEER_VERBS(STEER_DECLARE_VERB)
#undef STEER_DECLARE_VERB

}  // namespace steer::cli
