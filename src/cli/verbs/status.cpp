// steer status: what is loaded, its bindings, destinations, sockets and counters.
#include "cli/render.h"
#include "cli/table.h"
#include "cli/verbs.h"
#include "core/dispatcher.h"

namespace steer::cli {

namespace {

constexpr size_t kBindingsShown = 50;  // beyond this, status points at `steer bindings`

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
    auto destinations = dispatcher->destinations();
    if (!destinations) return run(std::unexpected(destinations.error()));
    auto count = dispatcher->binding_count();
    if (!count) return run(std::unexpected(count.error()));
    if (!label->empty() &&
        std::none_of(destinations->begin(), destinations->end(),
                     [&](const core::Destination& d) { return d.label == *label; }))
      return run(fail(ENOENT, "no label '{}' (steer status lists them)", *label));

    std::vector<core::BoundBinding> bindings;
    bool list_bindings = !label->empty() || *count <= kBindingsShown;
    if (list_bindings) {
      auto all = dispatcher->bindings();
      if (!all) return run(std::unexpected(all.error()));
      for (auto& bound : *all)
        if (label->empty() || bound.binding.label == *label) bindings.push_back(std::move(bound));
    }

    const auto& state = dispatcher->state();
    nlohmann::json json{{"netns_inode", state.netns_inode()},
                        {"path", state.path()},
                        {"program_id", state.program_id()},
                        {"steer_version", state.meta().steer_version},
                        {"binding_count", *count},
                        {"destinations", nlohmann::json::array()}};
    if (list_bindings) {
      json["bindings"] = nlohmann::json::array();
      for (const auto& bound : bindings) json["bindings"].push_back(to_json(bound));
    }
    Table destination_table({"ID", "LABEL", "PROTO", "FAMILY", "SOCKETS", "LOOKUPS", "SELECTED",
                             "NO_SOCKET", "DEAD_SLOT", "ERRORS"});
    Table socket_table({"LABEL", "PROTO", "FAMILY", "SLOT", "COOKIE", "PID", "COMMAND", "ADDRESS",
                        "STATE", "SELECTED"});
    for (const auto& destination : *destinations) {
      if (!label->empty() && destination.label != *label) continue;
      auto sockets = dispatcher->sockets(destination.id);
      if (!sockets) return run(std::unexpected(sockets.error()));
      auto entry = to_json(destination);
      entry["sockets"] = nlohmann::json::array();
      uint64_t errors = 0;
      for (size_t i = STEER_COUNTER_ERR_PROTOTYPE; i < STEER_COUNTERS; ++i)
        errors += destination.counters[i];
      destination_table.add_row(
          {std::to_string(destination.id), destination.label,
           std::string(core::to_string(destination.protocol)), family_name(destination.family),
           std::to_string(sockets->size()),
           std::to_string(destination.counters[STEER_COUNTER_LOOKUPS]),
           std::to_string(destination.counters[STEER_COUNTER_SELECTED]),
           std::to_string(destination.counters[STEER_COUNTER_NO_SOCKET]),
           std::to_string(destination.counters[STEER_COUNTER_DEAD_SLOT]), std::to_string(errors)});
      for (const auto& socket : *sockets) {
        entry["sockets"].push_back(to_json(socket));
        socket_table.add_row({destination.label, std::string(core::to_string(destination.protocol)),
                              family_name(destination.family), std::to_string(socket.slot),
                              std::to_string(socket.cookie), std::to_string(socket.owner.pid),
                              socket.owner.command, socket.address.to_string(),
                              socket.state == STEER_SLOT_DRAINING ? "draining" : "active",
                              std::to_string(socket.selected)});
      }
      json["destinations"].push_back(entry);
    }
    std::string text = fmt::format("steer {} loaded in network namespace {} (program {}), {} binding{}\n",
                                   state.meta().steer_version, state.netns_inode(),
                                   state.program_id(), *count, *count == 1 ? "" : "s");
    if (list_bindings && !bindings.empty()) text += "\nBINDINGS\n" + bindings_table(bindings);
    else if (!list_bindings) text += "(steer bindings lists them)\n";
    text += "\nDESTINATIONS\n" + destination_table.render();
    text += "\nSOCKETS\n" + socket_table.render();
    run(print_result(globals, json, text));
  });
}

}  // namespace steer::cli
