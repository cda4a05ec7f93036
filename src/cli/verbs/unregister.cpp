// steer unregister: take sockets out of a label's pools.
#include "cli/verbs.h"
#include "core/dispatcher.h"

namespace steer::cli {

void add_unregister_verb(CLI::App& app, const GlobalOptions& globals, const VerbRunner& run) {
  struct Options {
    std::string label;
    std::optional<uint64_t> cookie;
    std::optional<pid_t> pid;
    bool all = false;
  };
  auto options = std::make_shared<Options>();
  auto* verb = app.add_subcommand("unregister", "Remove registered sockets from a label's pools");
  verb->add_option("LABEL", options->label, "The label")->required();
  auto* cookie = verb->add_option("--cookie", options->cookie, "The socket with this cookie (see status)");
  auto* pid = verb->add_option("--pid", options->pid, "Every socket owned by this process");
  auto* all = verb->add_flag("--all", options->all, "Every socket of the label");
  cookie->excludes(pid)->excludes(all);
  pid->excludes(all);
  verb->footer(
      "The sockets stay open with their owners; new connections no longer reach them.\n\n"
      "Examples:\n"
      "  steer unregister web --pid 4242\n"
      "  steer unregister web --cookie 8213\n"
      "  steer unregister web --all");
  verb->callback([&globals, run, options] {
    if (!options->cookie && !options->pid && !options->all)
      return run(fail(EINVAL, "say which sockets: --cookie C, --pid P or --all"));
    auto dispatcher = core::Dispatcher::open(globals.target(), core::LockMode::Exclusive);
    if (!dispatcher) return run(std::unexpected(dispatcher.error()));
    auto removed = dispatcher->unregister(options->label, {options->cookie, options->pid});
    print_notices(*dispatcher);
    if (!removed) return run(std::unexpected(removed.error()));
    run(print_result(globals, {{"label", options->label}, {"unregistered", *removed}},
                     fmt::format("unregistered {} socket{} from '{}'", *removed,
                                 *removed == 1 ? "" : "s", options->label)));
  });
}

}  // namespace steer::cli
