// steer policy: how a label's pools pick a socket.
#include "cli/verbs.h"
#include "core/dispatcher.h"
#include "core/policy.h"

namespace steer::cli {

void add_policy_verb(CLI::App& app, const GlobalOptions& globals, const VerbRunner& run) {
  struct Options {
    std::string label, policy;
  };
  auto options = std::make_shared<Options>();
  auto* verb = app.add_subcommand("policy", "Choose how a label's pools pick a socket");
  verb->add_option("LABEL", options->label, "The label (bound or registered already)")->required();
  verb->add_option("POLICY", options->policy, "hash, round-robin, random, first, least-queue or least-conn")
      ->required();
  verb->footer(
      "  hash         a consistent hash of the 4-tuple (Maglev), by weight: a flow keeps its\n"
      "               socket, and a socket joining or leaving moves about 1/N of the flows.\n"
      "               The default, and the one for UDP.\n"
      "  round-robin  smooth weighted round-robin: N sockets of equal weight over k*N\n"
      "               connections get exactly k each.\n"
      "  random       weighted random.\n"
      "  first        failover: the first active socket in priority order (registration\n"
      "               order); the next only when it is drained, closed or refused.\n"
      "  least-queue  the socket with the shortest queue at the moment of the SYN (TCP: its\n"
      "               accept queue; UDP: its receive queue), by weight: a worker that stops\n"
      "               accepting stops getting connections at once.\n"
      "  least-conn   the socket with the fewest established connections, by weight, counted\n"
      "               in the kernel as they open and close (needs `steer conns track`).\n"
      "Every policy honours weights (`steer weight`; 0 = standby) and never gives a new\n"
      "connection to a draining socket. The change is one step for every pool of the label.\n\n"
      "Examples:\n"
      "  steer policy web round-robin\n"
      "  steer policy db first");
  verb->callback([&globals, run, options] {
    run([&]() -> VerbResult {
      auto policy = core::parse_policy(options->policy);
      if (!policy)
        return fail(EINVAL, "unknown policy '{}': use one of {}", options->policy,
                    core::policy_names());
      auto dispatcher =
          STEER_TRY(core::Dispatcher::open(globals.target(), core::LockMode::Exclusive));
      auto changed = dispatcher.set_policy(options->label, *policy);
      print_notices(dispatcher);
      STEER_TRY(std::move(changed));
      return print_result(globals, {{"label", options->label}, {"policy", options->policy}},
                          fmt::format("'{}' now uses {}", options->label, options->policy));
    }());
  });
}

}  // namespace steer::cli
