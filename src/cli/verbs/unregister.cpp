// steer unregister: take sockets out of a label's pools.
#include "cli/verbs.h"
#include "core/dispatcher.h"

namespace steer::cli {

void add_unregister_verb(CLI::App& app, const GlobalOptions& globals, const VerbRunner& run) {
  struct Options {
    std::string label;
    SocketSelection selection;
  };
  auto options = std::make_shared<Options>();
  auto* verb = app.add_subcommand("unregister", "Remove registered sockets from a label's pools");
  verb->add_option("LABEL", options->label, "The label")->required();
  add_socket_selection(verb, options->selection);
  verb->footer(
      "The sockets stay open with their owners; new connections no longer reach them.\n\n"
      "Examples:\n"
      "  steer unregister web --pid 4242\n"
      "  steer unregister web --cookie 8213\n"
      "  steer unregister web --generation 1\n"
      "  steer unregister web --all");
  verb->callback([&globals, run, options] {
    run([&]() -> VerbResult {
      auto filter = STEER_TRY(selected_sockets(options->selection));
      auto dispatcher =
          STEER_TRY(core::Dispatcher::open(globals.target(), core::LockMode::Exclusive));
      auto removed = dispatcher.unregister(options->label, filter);
      print_notices(dispatcher);
      size_t count = STEER_TRY(std::move(removed));
      return print_result(globals, {{"label", options->label}, {"unregistered", count}},
                          fmt::format("unregistered {} socket{} from '{}'", count,
                                      count == 1 ? "" : "s", options->label));
    }());
  });
}

}  // namespace steer::cli
