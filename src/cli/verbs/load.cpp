// steer load: put the dispatcher into a network namespace, pinned so it outlives steer.
#include "cli/verbs.h"
#include "core/state.h"

namespace steer::cli {

void add_load_verb(CLI::App& app, const GlobalOptions& globals, const VerbRunner& run) {
  auto* verb = app.add_subcommand("load", "Load the dispatcher into the network namespace");
  auto capacity = std::make_shared<uint32_t>(core::LoadOptions{}.binding_capacity);
  verb->add_option("--binding-capacity", *capacity,
                   "Most bindings each binding table holds (memory is used as bindings come)")
      ->capture_default_str()
      ->check(CLI::Range(1u, 1u << 26));
  verb->footer(
      "Attaches steer's sk_lookup program to the namespace and pins it, with its maps, under\n"
      "<bpffs>/steer/<netns inode>/. Steering goes on after steer exits; `steer unload` ends it.\n"
      "With no bindings the program lets every connection through as if it were not there.\n\n"
      "Examples:\n"
      "  steer load\n"
      "  steer --netns /run/netns/blue load\n"
      "  steer load --binding-capacity 4000000");
  verb->callback([&globals, run, capacity] {
    auto state = core::State::load(globals.target(), {.binding_capacity = *capacity});
    if (!state) return run(std::unexpected(state.error()));
    run(print_result(globals,
                     {{"loaded", true},
                      {"netns_inode", state->netns_inode()},
                      {"path", state->path()},
                      {"program_id", state->program_id()}},
                     fmt::format("steer loaded in network namespace {} ({})", state->netns_inode(),
                                 state->path())));
  });
}

}  // namespace steer::cli
