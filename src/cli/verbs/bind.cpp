// steer bind / steer unbind: one binding at a time.
#include "cli/verbs.h"
#include "report/render.h"
#include "core/dispatcher.h"

namespace steer::cli {

namespace {

struct BindingWords {
  std::string label, protocol, prefix, ports;
};

std::shared_ptr<BindingWords> add_binding_words(CLI::App* verb) {
  auto words = std::make_shared<BindingWords>();
  verb->add_option("LABEL", words->label, "The service's name (1-255 bytes)")->required();
  verb->add_option("PROTO", words->protocol, "tcp or udp")->required();
  verb->add_option("PREFIX", words->prefix, "An address or prefix: 192.0.2.0/24, 2001:db8::/64")
      ->required();
  verb->add_option("PORTS", words->ports, "A port (80), a range (8000-8999), or 0 for all ports")
      ->required();
  return words;
}

VerbResult change_binding(const GlobalOptions& globals, const BindingWords& words, bool add) {
  auto binding =
      STEER_TRY(core::Binding::parse(words.label, words.protocol, words.prefix, words.ports));
  auto dispatcher = STEER_TRY(core::Dispatcher::open(globals.target(), core::LockMode::Exclusive));
  auto changed = add ? dispatcher.bind(binding) : dispatcher.unbind(binding);
  print_notices(dispatcher);  // also when the change failed
  STEER_TRY(changed);
  nlohmann::json json = to_json(core::BoundBinding{binding, 0});
  json.erase("destination");
  json[add ? "bound" : "unbound"] = true;
  return print_result(globals, json,
                      fmt::format("{} {}", add ? "bound" : "unbound", binding.to_string()));
}

}  // namespace

void add_bind_verb(CLI::App& app, const GlobalOptions& globals, const VerbRunner& run) {
  auto* verb = app.add_subcommand("bind", "Steer connections to addresses and ports to a label");
  auto words = add_binding_words(verb);
  verb->footer(
      "The most specific binding wins: the longest prefix; on an equal prefix a single port,\n"
      "then a range, then all ports. A binding whose label has no socket refuses connections;\n"
      "addresses with no binding are left to the kernel's normal lookup.\n\n"
      "Examples:\n"
      "  steer bind web tcp 192.0.2.0/24 80\n"
      "  steer bind web tcp 2001:db8::/64 8000-8999\n"
      "  steer bind dns udp 198.51.100.0/24 53\n"
      "  steer bind catchall tcp 127.0.0.0/8 0        # every port");
  verb->callback([&globals, run, words] { run(change_binding(globals, *words, true)); });
}

void add_unbind_verb(CLI::App& app, const GlobalOptions& globals, const VerbRunner& run) {
  auto* verb = app.add_subcommand("unbind", "Remove one binding (the same words as bind)");
  auto words = add_binding_words(verb);
  verb->footer("Example:\n  steer unbind web tcp 192.0.2.0/24 80");
  verb->callback([&globals, run, words] { run(change_binding(globals, *words, false)); });
}

}  // namespace steer::cli
