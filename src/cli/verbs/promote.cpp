// steer promote: one generation active, the others draining, in one step.
#include "cli/verbs.h"
#include "core/dispatcher.h"

namespace steer::cli {

void add_promote_verb(CLI::App& app, const GlobalOptions& globals, const VerbRunner& run) {
  struct Options {
    std::string label;
    uint32_t generation = 0;
  };
  auto options = std::make_shared<Options>();
  auto* verb = app.add_subcommand("promote", "Make a generation active and drain the others");
  verb->add_option("LABEL", options->label, "The label")->required();
  verb->add_option("GENERATION", options->generation, "The generation to make active")->required();
  verb->footer(
      "A restart without losing a connection: the new process registers its sockets as the\n"
      "next generation, `promote` switches every pool of the label to it in one step, and the\n"
      "old process accepts what it has queued, then exits.\n\n"
      "Example:\n"
      "  steer register-pid $NEW web --generation 2\n"
      "  steer promote web 2\n"
      "  steer status web        # generation 1: draining, empty once its queue is accepted");
  verb->callback([&globals, run, options] {
    run([&]() -> VerbResult {
      auto dispatcher =
          STEER_TRY(core::Dispatcher::open(globals.target(), core::LockMode::Exclusive));
      auto promoted = dispatcher.promote(options->label, options->generation);
      print_notices(dispatcher);
      auto promotion = STEER_TRY(std::move(promoted));
      return print_result(
          globals,
          {{"label", options->label},
           {"generation", options->generation},
           {"active", promotion.promoted},
           {"draining", promotion.drained}},
          fmt::format("'{}': generation {} active ({} socket{}), {} other socket{} draining",
                      options->label, options->generation, promotion.promoted,
                      promotion.promoted == 1 ? "" : "s", promotion.drained,
                      promotion.drained == 1 ? "" : "s"));
    }());
  });
}

}  // namespace steer::cli
