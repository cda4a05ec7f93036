#include "cli/render.h"

#include "core/policy.h"

#include "cli/table.h"

namespace steer::cli {

std::string printable(std::string_view text) { return core::escape_unprintable(text, false); }
std::string printable_lines(std::string_view text) { return core::escape_unprintable(text, true); }

std::string json_text(const nlohmann::json& json) {
  return json.dump(2, ' ', false, nlohmann::json::error_handler_t::replace);
}

std::string family_name(int family) { return family == AF_INET6 ? "ipv6" : "ipv4"; }

const char* counter_name(size_t counter) {
  static const char* const names[STEER_COUNTERS] = {
      "lookups",          "selected",          "no_socket",           "dead_slot",
      "err_prototype",    "err_afnosupport",   "err_socktnosupport", "err_other"};
  return counter < STEER_COUNTERS ? names[counter] : "?";
}

nlohmann::json to_json(const core::BoundBinding& bound) {
  const auto& binding = bound.binding;
  return {{"label", binding.label},
          {"protocol", core::to_string(binding.protocol)},
          {"prefix", binding.prefix.to_string()},
          {"ports", binding.ports.is_all() ? "0" : binding.ports.to_string()},
          {"destination", bound.destination}};
}

nlohmann::json to_json(const core::Destination& destination) {
  nlohmann::json counters = nlohmann::json::object();
  for (size_t i = 0; i < STEER_COUNTERS; ++i) counters[counter_name(i)] = destination.counters[i];
  return {{"id", destination.id},
          {"label", destination.label},
          {"family", family_name(destination.family)},
          {"protocol", core::to_string(destination.protocol)},
          {"policy", core::policy_name(destination.policy)},
          {"counters", counters}};
}

const char* socket_state_name(const core::PooledSocket& socket) {
  if (socket.state == STEER_SLOT_DRAINING) return "draining";
  return socket.standby() ? "standby" : "active";
}

nlohmann::json to_json(const core::PooledSocket& socket) {
  return {{"destination", socket.destination},
          {"slot", socket.slot},
          {"cookie", socket.cookie},
          {"pid", socket.owner.pid},
          {"uid", socket.owner.uid},
          {"command", socket.owner.command},
          {"address", socket.address.to_string()},
          {"state", socket_state_name(socket)},
          {"generation", socket.generation},
          {"weight", socket.weight},
          {"priority", socket.priority},
          {"queued", socket.queue ? nlohmann::json(socket.queue->queued) : nlohmann::json()},
          {"queue_limit", socket.queue ? nlohmann::json(socket.queue->limit) : nlohmann::json()},
          {"empty", socket.queue ? nlohmann::json(socket.queue->queued == 0) : nlohmann::json()},
          {"selected", socket.selected},
          {"established", socket.established},
          {"usable", socket.health == core::SocketHealth::Usable},
          {"problem", socket.problem}};
}

std::string bindings_table(const std::vector<core::BoundBinding>& bindings) {
  Table table({"LABEL", "PROTO", "PREFIX", "PORTS"});
  for (const auto& bound : bindings)
    table.add_row({bound.binding.label, std::string(core::to_string(bound.binding.protocol)),
                   bound.binding.prefix.to_string(), bound.binding.ports.to_string()});
  return table.render();
}

std::string group_program_text(const core::ReuseportGroup& group) {
  if (group.steered()) return fmt::format("steer (program {})", group.kernel_program_id);
  if (group.members == 0) return "no member open";
  if (group.kernel_program_id == 0) return "kernel hash";
  return fmt::format("other program {}", group.kernel_program_id);
}

nlohmann::json to_json(const core::ReuseportGroup& group) {
  return {{"label", group.label},
          {"protocol", std::string(core::to_string(group.protocol))},
          {"address", group.address.to_string()},
          {"steered", group.steered()},
          {"program_id", group.kernel_program_id},
          {"recorded_program_id", group.record.program_id},
          {"group_id", group.group_id},
          {"members", group.members},
          {"registered", group.registered},
          {"attached_unix", group.record.attached_unix},
          {"selected", group.record.selected},
          {"migrated", group.record.migrated},
          {"kernel_hash", group.record.kernel_hash},
          {"refused", group.record.refused}};
}

std::string groups_table(const std::vector<core::ReuseportGroup>& groups) {
  Table table({"LABEL", "PROTO", "ADDRESS", "PROGRAM", "MEMBERS", "REGISTERED", "SELECTED",
               "MIGRATED", "KERNEL_HASH", "REFUSED"});
  for (const auto& group : groups)
    table.add_row({group.label, std::string(core::to_string(group.protocol)),
                   group.address.to_string(), group_program_text(group),
                   std::to_string(group.members), std::to_string(group.registered),
                   std::to_string(group.record.selected), std::to_string(group.record.migrated),
                   std::to_string(group.record.kernel_hash), std::to_string(group.record.refused)});
  return table.render();
}

}  // namespace steer::cli
