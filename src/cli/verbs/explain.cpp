// steer explain: which binding, destination and socket would take a connection, and why.
#include "report/render.h"
#include "cli/verbs.h"
#include "core/policy.h"
#include "core/dispatcher.h"

namespace steer::cli {

void add_explain_verb(CLI::App& app, const GlobalOptions& globals, const VerbRunner& run) {
  struct Options {
    std::string protocol, source, destination;
  };
  auto options = std::make_shared<Options>();
  auto* verb = app.add_subcommand("explain", "Show how a connection would be steered, and why");
  verb->add_option("PROTO", options->protocol, "tcp or udp")->required();
  verb->add_option("SRC_ADDR:PORT", options->source, "The client: 203.0.113.9:5555")->required();
  verb->add_option("DST_ADDR:PORT", options->destination, "Where it connects: 192.0.2.7:80")->required();
  verb->footer(
      "Runs the loaded program's explain build on a made-up lookup (BPF_PROG_TEST_RUN): no\n"
      "traffic is sent and no counter moves. Exit status 0 whatever the answer.\n\n"
      "Examples:\n"
      "  steer explain tcp 203.0.113.9:5555 192.0.2.7:80\n"
      "  steer explain udp [2001:db8::9]:5353 [2001:db8::53]:53");
  verb->callback([&globals, run, options] {
    auto protocol = core::parse_protocol(options->protocol);
    if (!protocol) return run(std::unexpected(protocol.error()));
    auto source = SocketAddress::parse(options->source);
    if (!source) return run(std::unexpected(source.error()));
    auto destination = SocketAddress::parse(options->destination);
    if (!destination) return run(std::unexpected(destination.error()));
    auto dispatcher = core::Dispatcher::open(globals.target(), core::LockMode::Shared);
    if (!dispatcher) return run(std::unexpected(dispatcher.error()));
    auto explanation = dispatcher->explain(*protocol, *source, *destination);
    if (!explanation) return run(std::unexpected(explanation.error()));

    const auto& record = explanation->record;
    std::string outcome, reason;
    switch (record.outcome) {
      case STEER_EXPLAIN_NO_BINDING:
        outcome = "pass";
        reason = "no binding matches: the kernel's normal socket lookup decides";
        break;
      case STEER_EXPLAIN_SELECTED:
        outcome = "steered";
        if (record.flow)
          reason = "a UDP flow keeps the socket its first datagram went to (even a draining one)";
        else if (record.probes == 0)
          reason = "the destination's Maglev table picked the socket";
        else if (record.probes < STEER_MAGLEV_PROBES)
          reason = fmt::format("the flow's Maglev entry points at a closed socket; entry +{} "
                               "picked this one (the next register or unregister rebuilds the table)",
                               record.probes);
        else
          reason = "every probed Maglev entry points at a closed socket; the first open socket "
                   "of the pool took the flow";
        break;
      case STEER_EXPLAIN_NO_SOCKET:
        outcome = "refused";
        reason = "the binding's destination has no usable socket: register one";
        break;
      default:
        outcome = "refused";
        reason = fmt::format("the kernel refused the socket ({})", errno_name(-record.assign_error));
    }
    nlohmann::json json{{"outcome", outcome}, {"reason", reason},
                        {"verdict", explanation->verdict ? "SK_PASS" : "SK_DROP"}};
    std::string text = fmt::format("{} {} -> {}: {}\n  {}\n", options->protocol, source->to_string(),
                                   destination->to_string(), outcome, reason);
    if (explanation->binding) {
      json["binding"] = to_json(*explanation->binding);
      text += fmt::format("  binding:     {} ({} match)\n", explanation->binding->binding.to_string(),
                          record.matched_range ? "port range" : "single port");
    }
    if (explanation->destination) {
      json["destination"] = to_json(*explanation->destination);
      json["destination"]["sockets"] = explanation->pool_sockets;
      text += fmt::format("  destination: {} {} {} (id {}, {} socket{}, policy {})\n",
                          explanation->destination->label,
                          core::to_string(explanation->destination->protocol),
                          family_name(explanation->destination->family), explanation->destination->id,
                          explanation->pool_sockets,
                          explanation->pool_sockets == 1 ? "" : "s",
                          core::policy_name(explanation->destination->policy));
    }
    if (explanation->socket) {
      json["socket"] = to_json(*explanation->socket);
      json["maglev"] = {{"hash", record.hash}, {"entry", record.maglev_entry}, {"probes", record.probes}};
      json["udp_flow"] = record.flow != 0;
      json["kernel_selected_cookie"] = record.cookie;
      text += fmt::format("  socket:      slot {} cookie {} {} (pid {} {}); flow hash {:#010x}, table entry {} (where the policy starts)\n",
                          explanation->socket->slot, explanation->socket->cookie,
                          explanation->socket->address.to_string(), explanation->socket->owner.pid,
                          explanation->socket->owner.command, record.hash, record.maglev_entry);
    }
    if (globals.json) fmt::print("{}\n", json_text(json));
    else fmt::print("{}", printable_lines(text));
    run(Outcome{0});
  });
}

}  // namespace steer::cli
