// steer upgrade: swap in this steer's program, keeping every map and binding.
#include "cli/verbs.h"
#include "core/dispatcher.h"

namespace steer::cli {

void add_upgrade_verb(CLI::App& app, const GlobalOptions& globals, const VerbRunner& run) {
  auto* verb = app.add_subcommand("upgrade", "Replace the running program with this steer's, keeping state");
  verb->footer(
      "The program is replaced through its link in one step: every lookup is served by the\n"
      "old program or the new one, none is refused. Bindings, pools and counters are kept.\n"
      "State pinned by an older release is brought up to this one first: the maps this\n"
      "release adds are created, and each migration step runs (steer status shows the\n"
      "schema). Interrupted, it is simply run again.\n\n"
      "Example:\n"
      "  steer upgrade");
  verb->callback([&globals, run] {
    auto upgraded = core::Dispatcher::upgrade(globals.target());
    if (!upgraded) return run(std::unexpected(upgraded.error()));
    uint32_t before = upgraded->old_program_id;
    const auto& steps = upgraded->steps;
    auto state = core::State::open(globals.target(), core::LockMode::Shared);
    if (!state) return run(std::unexpected(state.error()));
    uint32_t after = state->program_id();
    std::string text;
    for (const auto& step : steps) text += step + "\n";
    text += fmt::format("steer upgraded to {} (schema {}): program {} replaced by {}",
                        state->meta().steer_version, state->meta().schema_version, before, after);
    run(print_result(globals,
                     {{"upgraded", true}, {"old_program_id", before}, {"program_id", after},
                      {"schema", state->meta().schema_version}, {"steps", steps}},
                     text));
  });
}

}  // namespace steer::cli
