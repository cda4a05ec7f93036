// steer upgrade: swap in this steer's program, keeping every map and binding.
#include "cli/verbs.h"
#include "core/state.h"

namespace steer::cli {

void add_upgrade_verb(CLI::App& app, const GlobalOptions& globals, const VerbRunner& run) {
  auto* verb = app.add_subcommand("upgrade", "Replace the running program with this steer's, keeping state");
  verb->footer(
      "The program is replaced through its link in one step: every lookup is served by the\n"
      "old program or the new one, none is refused. Bindings, pools and counters are kept.\n\n"
      "Example:\n"
      "  steer upgrade");
  verb->callback([&globals, run] {
    auto state = core::State::open(globals.target(), core::LockMode::Exclusive);
    if (!state) return run(std::unexpected(state.error()));
    uint32_t before = state->program_id();
    if (auto upgraded = state->upgrade(); !upgraded) return run(std::unexpected(upgraded.error()));
    uint32_t after = state->program_id();
    run(print_result(globals, {{"upgraded", true}, {"old_program_id", before}, {"program_id", after}},
                     fmt::format("steer upgraded: program {} replaced by {}", before, after)));
  });
}

}  // namespace steer::cli
