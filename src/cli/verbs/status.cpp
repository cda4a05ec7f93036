// steer status: what is loaded, its bindings, destinations, sockets and counters.
#include "report/render.h"
#include "report/table.h"
#include "cli/verbs.h"
#include "core/policy.h"
#include "core/dispatcher.h"

namespace steer::cli {

namespace {

constexpr size_t kBindingsShown = 50;  // beyond this, status points at `steer bindings`

// "3/128" for a listener's accept queue, "0/128 (empty)" for a draining socket with nothing
// left to accept, "512B" for a UDP socket's receive queue, "?" when the kernel did not say.
std::string queue_text(const core::PooledSocket& socket) {
  if (!socket.queue) return "?";
  const auto& queue = *socket.queue;
  std::string text = queue.limit ? fmt::format("{}/{}", queue.queued, queue.limit)
                                 : fmt::format("{}B", queue.queued);
  if (socket.state == STEER_SLOT_DRAINING && queue.queued == 0) text += " (empty)";
  return text;
}

}  // namespace

void add_status_verb(CLI::App& app, const GlobalOptions& globals, const VerbRunner& run) {
  auto label = std::make_shared<std::string>();
  auto* verb = app.add_subcommand("status", "Show bindings, destinations, sockets and counters");
  verb->add_option("LABEL", *label, "Only this label");
  verb->footer(
      "Counters per destination: lookups (connections that matched a binding), selected (a\n"
      "socket was assigned), no_socket (refused: no usable socket), dead_slot (a socket had\n"
      "closed and a neighbour took its flow), err_* (the kernel refused the assignment).\n\n"
      "Examples:\n"
      "  steer status\n"
      "  steer status web\n"
      "  steer --json status | jq '.destinations[] | {label, sockets}'");
  verb->callback([&globals, run, label] {
    auto dispatcher = core::Dispatcher::open(globals.target(), core::LockMode::Shared);
    if (!dispatcher) return run(std::unexpected(dispatcher.error()));
    auto snapshot = dispatcher->status(*label, kBindingsShown);
    if (!snapshot) return run(std::unexpected(snapshot.error()));
    const auto& status = *snapshot;
    const auto& journal = status.journal;
    std::string interrupted(journal.verb, strnlen(journal.verb, sizeof(journal.verb)));
    nlohmann::json json = report::status_json(status);
    Table destination_table({"ID", "LABEL", "PROTO", "FAMILY", "POLICY", "BINDINGS", "SOCKETS",
                             "LOOKUPS", "SELECTED", "NO_SOCKET", "DEAD_SLOT", "ERRORS"});
    Table socket_table({"LABEL", "PROTO", "FAMILY", "SLOT", "COOKIE", "PID", "COMMAND", "ADDRESS",
                        "GEN", "WEIGHT", "STATE", "QUEUED", "ESTAB", "SELECTED"});
    std::vector<std::string> problems;
    for (const auto& entry : status.destinations) {
      const auto& destination = entry.destination;
      uint64_t errors = 0;
      for (size_t i = STEER_COUNTER_ERR_PROTOTYPE; i < STEER_COUNTERS; ++i)
        errors += destination.counters[i];
      destination_table.add_row(
          {std::to_string(destination.id), destination.label,
           std::string(core::to_string(destination.protocol)), family_name(destination.family),
           core::policy_name(destination.policy), std::to_string(entry.bindings),
           std::to_string(entry.sockets.size()),
           std::to_string(destination.counters[STEER_COUNTER_LOOKUPS]),
           std::to_string(destination.counters[STEER_COUNTER_SELECTED]),
           std::to_string(destination.counters[STEER_COUNTER_NO_SOCKET]),
           std::to_string(destination.counters[STEER_COUNTER_DEAD_SLOT]), std::to_string(errors)});
      for (const auto& socket : entry.sockets) {
        bool refused = socket.health == core::SocketHealth::Refused;
        socket_table.add_row({destination.label, std::string(core::to_string(destination.protocol)),
                              family_name(destination.family), std::to_string(socket.slot),
                              std::to_string(socket.cookie), std::to_string(socket.owner.pid),
                              socket.owner.command, socket.address.to_string(),
                              std::to_string(socket.generation), std::to_string(socket.weight),
                              refused ? "refused" : socket_state_name(socket),
                              queue_text(socket),
                              status.tracking && destination.protocol == core::Protocol::Tcp
                                  ? std::to_string(socket.established) : "-",
                              std::to_string(socket.selected)});
        if (refused)
          problems.push_back(fmt::format("socket {} of '{}' is refused by the kernel: {}; the "
                                         "dispatcher passes it over, and the next register or "
                                         "unregister of '{}' prunes it",
                                         socket.cookie, destination.label, socket.problem,
                                         destination.label));
      }
    }
    std::string text =
        status.program_id != 0
            ? fmt::format("steer {} loaded in network namespace {} (program {}, schema {}), {} "
                          "binding{}\n", status.meta.steer_version, status.netns_inode,
                          status.program_id, status.meta.schema_version, status.binding_count,
                          status.binding_count == 1 ? "" : "s")
            : fmt::format("steer {} loaded in network namespace {} but NOT ATTACHED: nothing is "
                          "steered (a load or unload was interrupted: `steer load` attaches it, "
                          "`steer unload` removes it), {} binding{}\n",
                          status.meta.steer_version, status.netns_inode, status.binding_count,
                          status.binding_count == 1 ? "" : "s");
    if (journal.phase != STEER_JOURNAL_CLEAN)
      text += fmt::format("note: `{}` (pid {}) was interrupted; what is listed is what is "
                          "steered, and the next change repairs the rest\n", interrupted, journal.pid);
    for (const auto& problem : problems) text += "note: " + problem + "\n";
    if (status.bindings && !status.bindings->empty())
      text += "\nBINDINGS\n" + bindings_table(*status.bindings);
    else if (!status.bindings) text += "(steer bindings lists them)\n";
    text += "\nDESTINATIONS\n" + destination_table.render();
    text += "\nSOCKETS\n" + socket_table.render();
    for (const auto& group : status.reuseport_groups) {
      if (!group.steered() && group.members != 0)
        text += fmt::format("note: the reuseport group {} of '{}' does not run steer's program "
                            "({}): `steer reuseport attach {}` attaches it again\n",
                            group.address.to_string(), group.label, group_program_text(group),
                            group.label);
    }
    if (!status.reuseport_groups.empty())
      text += "\nREUSEPORT GROUPS\n" + groups_table(status.reuseport_groups);
    run(print_result(globals, json, text));
  });
}

}  // namespace steer::cli
