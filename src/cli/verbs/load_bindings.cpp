// steer load-bindings: replace every binding from a file, all or nothing.
#include "cli/verbs.h"
#include "core/dispatcher.h"

namespace steer::cli {

namespace {

struct LoadBindingsOptions {
  std::string file;
  std::string format;  // empty: from the content
  bool allow_empty = false;
};

VerbResult load_bindings(const GlobalOptions& globals, const LoadBindingsOptions& options) {
  auto format = STEER_TRY(parse_if_given(options.format, core::parse_bindings_format));
  auto bindings = STEER_TRY(
      core::read_bindings_file(options.file, format.value_or(core::BindingsFormat::Detect)));
  std::string name = options.file == "-" ? "stdin" : options.file;
  auto dispatcher = STEER_TRY(core::Dispatcher::open(globals.target(), core::LockMode::Exclusive));
  // An empty file is much more often a mistake (a truncated file, a failed generator) than a
  // wish to remove everything: that takes saying so. Checked under the exclusive lock.
  if (bindings.empty() && !options.allow_empty) {
    auto loaded = STEER_TRY(dispatcher.binding_count());
    if (loaded > 0)
      return fail(ENODATA, "{} has no bindings; {} binding{} loaded now: pass --allow-empty to "
                           "remove them all",
                  name, loaded, loaded == 1 ? " is" : "s are");
  }
  auto replaced = dispatcher.replace_bindings(bindings);
  print_notices(dispatcher);
  if (!replaced) return std::unexpected(with_context(replaced.error(), name));
  return print_result(globals, {{"loaded", bindings.size()}, {"file", options.file}},
                      fmt::format("loaded {} bindings from {}", bindings.size(), name));
}

}  // namespace

void add_load_bindings_verb(CLI::App& app, const GlobalOptions& globals, const VerbRunner& run) {
  auto options = std::make_shared<LoadBindingsOptions>();
  auto* verb = app.add_subcommand("load-bindings", "Replace all bindings with a file's, atomically");
  verb->add_option("FILE", options->file, "A TOML or JSON bindings file, or - for stdin")
      ->required();
  verb->add_option("--format", options->format,
                   "toml or json; default: JSON if the file starts with '{', else TOML")
      ->check(CLI::IsMember({"toml", "json"}));
  verb->add_flag("--allow-empty", options->allow_empty,
                 "Let a file without bindings remove every binding");
  verb->footer(
      "Every binding in the file is checked before anything changes; the new set is built\n"
      "beside the old one and switched in with one update, so connections see either the old\n"
      "set or the new one. On any error nothing changes. The file must be a regular file (or -\n"
      "for stdin) of at most 256 MiB. Keys other than these are refused, as are duplicate keys.\n"
      "A file without bindings removes every binding only with --allow-empty.\n\n"
      "TOML:\n"
      "  [[binding]]\n"
      "  label = \"web\"\n"
      "  protocol = \"tcp\"\n"
      "  prefix = \"192.0.2.0/24\"\n"
      "  ports = \"80\"          # or \"8000-8999\", or 0 for all ports\n\n"
      "JSON:\n"
      "  {\"bindings\": [{\"label\": \"web\", \"protocol\": \"tcp\", \"prefix\": \"192.0.2.0/24\", \"ports\": \"80\"}]}\n\n"
      "Examples:\n"
      "  steer load-bindings /etc/steer/bindings.toml\n"
      "  generate-bindings | steer load-bindings --format json -\n"
      "  echo 'binding = []' | steer load-bindings --allow-empty -  # removes every binding");
  verb->callback([&globals, run, options] { run(load_bindings(globals, *options)); });
}

}  // namespace steer::cli
