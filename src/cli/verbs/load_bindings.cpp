// steer load-bindings: replace every binding from a file, all or nothing.
#include "cli/verbs.h"
#include "core/dispatcher.h"

namespace steer::cli {

void add_load_bindings_verb(CLI::App& app, const GlobalOptions& globals, const VerbRunner& run) {
  auto file = std::make_shared<std::string>();
  auto* verb = app.add_subcommand("load-bindings", "Replace all bindings with a file's, atomically");
  verb->add_option("FILE", *file, "A TOML or JSON bindings file")->required();
  verb->footer(
      "Every binding in the file is checked before anything changes; the new set is built\n"
      "beside the old one and switched in with one update, so connections see either the old\n"
      "set or the new one. On any error nothing changes.\n\n"
      "TOML:\n"
      "  [[binding]]\n"
      "  label = \"web\"\n"
      "  protocol = \"tcp\"\n"
      "  prefix = \"192.0.2.0/24\"\n"
      "  ports = \"80\"          # or \"8000-8999\", or 0 for all ports\n\n"
      "JSON:\n"
      "  {\"bindings\": [{\"label\": \"web\", \"protocol\": \"tcp\", \"prefix\": \"192.0.2.0/24\", \"ports\": \"80\"}]}\n\n"
      "Example:\n"
      "  steer load-bindings /etc/steer/bindings.toml");
  verb->callback([&globals, run, file] {
    auto bindings = core::read_bindings_file(*file);
    if (!bindings) return run(std::unexpected(bindings.error()));
    auto dispatcher = core::Dispatcher::open(globals.target(), core::LockMode::Exclusive);
    if (!dispatcher) return run(std::unexpected(dispatcher.error()));
    if (auto replaced = dispatcher->replace_bindings(*bindings); !replaced)
      return run(std::unexpected(with_context(replaced.error(), *file)));
    run(print_result(globals, {{"loaded", bindings->size()}, {"file", *file}},
                     fmt::format("loaded {} bindings from {}", bindings->size(), *file)));
  });
}

}  // namespace steer::cli
