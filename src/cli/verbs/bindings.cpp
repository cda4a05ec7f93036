// steer bindings: list bindings, most specific first, with optional filters.
#include "report/render.h"
#include "cli/verbs.h"
#include "core/dispatcher.h"

namespace steer::cli {

void add_bindings_verb(CLI::App& app, const GlobalOptions& globals, const VerbRunner& run) {
  struct Filters {
    std::string label, protocol, prefix;
  };
  auto filters = std::make_shared<Filters>();
  auto* verb = app.add_subcommand("bindings", "List bindings, most specific first");
  verb->add_option("--label", filters->label, "Only this label's bindings");
  verb->add_option("--protocol", filters->protocol, "Only tcp or udp");
  verb->add_option("--prefix", filters->prefix, "Only bindings inside this prefix");
  verb->footer(
      "Examples:\n"
      "  steer bindings\n"
      "  steer bindings --label web --protocol tcp\n"
      "  steer --json bindings --prefix 192.0.2.0/24");
  verb->callback([&globals, run, filters] {
    auto protocol = parse_if_given(filters->protocol, core::parse_protocol);
    if (!protocol) return run(std::unexpected(protocol.error()));
    auto within = parse_if_given(filters->prefix, core::Prefix::parse);
    if (!within) return run(std::unexpected(within.error()));
    auto dispatcher = core::Dispatcher::open(globals.target(), core::LockMode::Shared);
    if (!dispatcher) return run(std::unexpected(dispatcher.error()));
    auto all = dispatcher->bindings();
    if (!all) return run(std::unexpected(all.error()));
    std::vector<core::BoundBinding> shown;
    for (const auto& bound : *all) {
      if (!filters->label.empty() && bound.binding.label != filters->label) continue;
      if (*protocol && bound.binding.protocol != **protocol) continue;
      if (*within && !(*within)->contains(bound.binding.prefix)) continue;
      shown.push_back(bound);
    }
    nlohmann::json json = nlohmann::json::array();
    for (const auto& bound : shown) json.push_back(to_json(bound));
    run(print_result(globals, {{"bindings", json}},
                     shown.empty() ? std::string("no bindings") : bindings_table(shown)));
  });
}

}  // namespace steer::cli
