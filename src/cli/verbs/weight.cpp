// steer weight: a socket's share of new connections.
#include "cli/verbs.h"
#include "core/dispatcher.h"

namespace steer::cli {

void add_weight_verb(CLI::App& app, const GlobalOptions& globals, const VerbRunner& run) {
  struct Options {
    std::string label;
    SocketSelection selection;
    uint32_t weight = 1;
  };
  auto options = std::make_shared<Options>();
  auto* verb = app.add_subcommand("weight", "Set the weight of some of a label's sockets");
  verb->add_option("LABEL", options->label, "The label")->required();
  add_socket_selection(verb, options->selection);
  verb->add_option("WEIGHT", options->weight,
                   fmt::format("0 (standby) to {}; new sockets have 1",
                               core::Dispatcher::kMaxWeight))
      ->required();
  verb->footer(
      "Every policy shares new connections in proportion to weight. A socket of weight 0 is a\n"
      "standby: it gets connections only when no weighted socket takes them.\n\n"
      "Examples:\n"
      "  steer weight web --pid 4242 3         # three times the share of a weight-1 socket\n"
      "  steer weight web --generation 2 0     # generation 2 on standby");
  verb->callback([&globals, run, options] {
    run([&]() -> VerbResult {
      auto filter = STEER_TRY(selected_sockets(options->selection));
      auto dispatcher =
          STEER_TRY(core::Dispatcher::open(globals.target(), core::LockMode::Exclusive));
      auto changed = dispatcher.set_weight(options->label, filter, options->weight);
      print_notices(dispatcher);
      size_t count = STEER_TRY(std::move(changed));
      return print_result(
          globals, {{"label", options->label}, {"sockets", count}, {"weight", options->weight}},
          fmt::format("weight {} for {} socket{} of '{}'", options->weight, count,
                      count == 1 ? "" : "s", options->label));
    }());
  });
}

}  // namespace steer::cli
