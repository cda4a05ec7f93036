// steer: the command-line front door. Parses global options, dispatches to one verb.
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <string_view>

#include <nlohmann/json.hpp>

#include "report/render.h"
#include "cli/verbs.h"

namespace {

// Messages may quote input (a file's line, a label from old state): printed escaped, and
// JSON that cannot throw.
int print_error(const steer::Error& error, bool json) {
  if (json)
    fmt::print("{}\n", steer::cli::json_text({{"error", {{"code", error.code_name()},
                                                         {"message", error.message}}}}));
  else
    fmt::print(stderr, "steer: error: {}\n", steer::cli::printable_lines(error.message));
  return 1;
}

// Without root every verb fails with a bare "Permission denied" (bpffs, bpf(), setns): say why.
steer::Error explain_permission(steer::Error error) {
  if ((error.code == EPERM || error.code == EACCES) && ::geteuid() != 0)
    error.message += "; steer needs root (CAP_BPF, CAP_NET_ADMIN and CAP_SYS_ADMIN): run it "
                     "with sudo";
  return error;
}

}  // namespace

namespace steer::cli {

void print_notices(const core::Dispatcher& dispatcher) {
  for (const auto& notice : dispatcher.notices()) fmt::print(stderr, "steer: note: {}\n", notice);
}

core::Target GlobalOptions::target() const {
  core::Target target{netns, bpffs};
  target.lock_timeout = std::chrono::milliseconds(std::llround(lock_timeout * 1000));
  target.on_lock_wait = [](const std::string& message) {
    fmt::print(stderr, "steer: {}\n", message);
    std::fflush(stderr);
  };
  return target;
}

VerbResult print_result(const GlobalOptions& globals, const nlohmann::json& json,
                        const std::string& text) {
  if (globals.json) fmt::print("{}\n", json_text(json));
  else if (!text.empty()) fmt::print("{}\n", printable_lines(text));
  return Outcome{0};
}

}  // namespace steer::cli

int main(int argc, char** argv) {
  using namespace steer::cli;
  CLI::App app{
      "steer: a socket dispatcher for Linux. Binds addresses and ports to services, registers\n"
      "the services' sockets in BPF socket maps, and steers each new connection with sk_lookup.",
      "steer"};
  app.require_subcommand(1);
  app.fallthrough();
  app.footer(
      "A walk-through:\n"
      "  steer doctor                                # can this kernel run steer?\n"
      "  steer load                                  # the dispatcher, pinned in bpffs\n"
      "  steer bind web tcp 192.0.2.0/24 80          # 256 addresses, port 80 -> label web\n"
      "  steer register-pid 4242 web                 # web's listening sockets, from pid 4242\n"
      "  steer explain tcp 203.0.113.9:5555 192.0.2.7:80\n"
      "  steer status web\n"
      "Run `steer VERB --help` for a verb's options and examples.");

  GlobalOptions globals;
  app.add_option("--netns", globals.netns,
                 "Network namespace to operate on (e.g. /run/netns/blue); default: this one");
  app.add_option("--bpffs", globals.bpffs, "Where steer pins its state")->capture_default_str();
  app.add_flag("--json", globals.json, "Machine-readable output");
  app.add_option("--lock-timeout", globals.lock_timeout,
                 "Seconds to wait for another steer command to release the state's lock (0: "
                 "do not wait)")
      ->check(CLI::Range(0.0, 86400.0 * 365))
      ->capture_default_str();

  std::optional<steer::Result<Outcome>> result;
  auto run = [&result](steer::Result<Outcome> outcome) { result = std::move(outcome); };
#define STEER_ADD_VERB(name) add_##name##_verb(app, globals, run);
  STEER_VERBS(STEER_ADD_VERB)
#undef STEER_ADD_VERB

  if (argc == 1) {
    fmt::print(stderr, "{}", app.help());
    return 2;
  }
  // --json may not be parsed yet when parsing fails: look for it among the words.
  bool json = std::any_of(argv + 1, argv + argc, [](const char* word) {
    return std::string_view(word) == "--json";
  });
  auto usage_error = [json, &app](const std::string& message) {
    auto verbs = app.get_subcommands();  // the verb given, if parsing got that far
    std::string help = verbs.empty() ? "steer --help" : "steer " + verbs.front()->get_name() + " --help";
    print_error(steer::Error{EINVAL, fmt::format("{} (see {})", message, help)}, json);
    return 2;
  };
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& help) {
    return app.exit(help);
  } catch (const CLI::CallForAllHelp& help) {
    return app.exit(help);
  } catch (const CLI::RequiredError& error) {
    // A word that is no verb lands in remaining(): name it instead of "a subcommand is required".
    if (app.remaining_size() > 0) {
      std::string verbs;
      for (const auto* verb : app.get_subcommands({}))
        verbs += (verbs.empty() ? "" : ", ") + verb->get_name();
      return usage_error(fmt::format("unknown verb '{}'; the verbs are: {}",
                                     app.remaining().front(), verbs));
    }
    return usage_error(error.what());
  } catch (const CLI::ParseError& error) {
    return usage_error(error.what());
  } catch (const steer::FatalError& error) {
    fmt::print(stderr, "steer: fatal: {}\n", steer::cli::printable_lines(error.what()));
    return 1;
  }
  if (!result) return 0;
  if (!*result) return print_error(explain_permission(result->error()), globals.json);
  return (*result)->exit_code;
}
