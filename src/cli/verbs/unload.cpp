// steer unload: detach the dispatcher and remove its state.
#include "cli/verbs.h"
#include "core/state.h"

namespace steer::cli {

void add_unload_verb(CLI::App& app, const GlobalOptions& globals, const VerbRunner& run) {
  auto* verb = app.add_subcommand("unload", "Detach the dispatcher and remove its pinned state");
  verb->footer(
      "Connections are no longer steered: the kernel's normal lookup takes over at once.\n"
      "Registered sockets stay with their owners. Works on state of any steer version.\n\n"
      "Example:\n"
      "  steer unload");
  verb->callback([&globals, run] {
    auto unloaded = core::State::unload(globals.target());
    if (!unloaded) return run(std::unexpected(unloaded.error()));
    run(print_result(globals, {{"unloaded", true}}, "steer unloaded"));
  });
}

}  // namespace steer::cli
