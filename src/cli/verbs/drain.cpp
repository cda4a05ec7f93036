// steer drain / undrain: stop (or resume) new connections to some of a label's sockets.
#include "cli/verbs.h"
#include "core/dispatcher.h"

namespace steer::cli {

namespace {

void add_drain_like_verb(CLI::App& app, const GlobalOptions& globals, const VerbRunner& run,
                         bool drain) {
  struct Options {
    std::string label;
    SocketSelection selection;
  };
  auto options = std::make_shared<Options>();
  auto* verb = drain ? app.add_subcommand("drain", "Stop new connections to some of a label's sockets")
                     : app.add_subcommand("undrain", "Let drained sockets take new connections again");
  verb->add_option("LABEL", options->label, "The label")->required();
  add_socket_selection(verb, options->selection);
  if (drain)
    verb->footer(
        "At once, no new connection reaches the drained sockets, from any policy or fallback;\n"
        "they stay registered and keep what they have accepted and queued, so their owner can\n"
        "finish its work and exit. `steer status` shows when a draining socket is empty.\n\n"
        "Examples:\n"
        "  steer drain web --pid 4242\n"
        "  steer drain web --generation 1");
  else
    verb->footer(
        "Examples:\n"
        "  steer undrain web --pid 4242\n"
        "  steer undrain web --all");
  verb->callback([&globals, run, options, drain] {
    run([&]() -> VerbResult {
      auto filter = STEER_TRY(selected_sockets(options->selection));
      auto dispatcher =
          STEER_TRY(core::Dispatcher::open(globals.target(), core::LockMode::Exclusive));
      auto changed = drain ? dispatcher.drain(options->label, filter)
                           : dispatcher.undrain(options->label, filter);
      print_notices(dispatcher);
      size_t count = STEER_TRY(std::move(changed));
      const char* done = drain ? "drained" : "undrained";
      return print_result(globals, {{"label", options->label}, {done, count}},
                          fmt::format("{} {} socket{} of '{}'", done, count,
                                      count == 1 ? "" : "s", options->label));
    }());
  });
}

}  // namespace

void add_drain_verb(CLI::App& app, const GlobalOptions& globals, const VerbRunner& run) {
  add_drain_like_verb(app, globals, run, /*drain=*/true);
}

void add_undrain_verb(CLI::App& app, const GlobalOptions& globals, const VerbRunner& run) {
  add_drain_like_verb(app, globals, run, /*drain=*/false);
}

}  // namespace steer::cli
