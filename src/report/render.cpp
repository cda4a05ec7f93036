#include "report/render.h"

#include <algorithm>
#include <cstring>

#include "core/policy.h"

#include "report/table.h"

namespace steer::report {

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

nlohmann::json status_json(const core::StatusSnapshot& status) {
  const auto& journal = status.journal;
  std::string interrupted(journal.verb, strnlen(journal.verb, sizeof(journal.verb)));
  nlohmann::json json{{"netns_inode", status.netns_inode},
                      {"path", status.path},
                      {"attached", status.program_id != 0},
                      {"program_id", status.program_id},
                      {"steer_version", status.meta.steer_version},
                      {"schema", status.meta.schema_version},
                      {"repair_pending", journal.phase != STEER_JOURNAL_CLEAN},
                      {"repairs", journal.repairs},
                      {"binding_count", status.binding_count},
                      {"destinations", nlohmann::json::array()}};
  if (journal.phase != STEER_JOURNAL_CLEAN)
    json["interrupted"] = {{"verb", interrupted}, {"pid", journal.pid}};
  if (status.bindings) {
    json["bindings"] = nlohmann::json::array();
    for (const auto& bound : *status.bindings) json["bindings"].push_back(to_json(bound));
  }
  for (const auto& entry : status.destinations) {
    auto json_entry = to_json(entry.destination);
    json_entry["bindings"] = entry.bindings;
    json_entry["sockets"] = nlohmann::json::array();
    for (const auto& socket : entry.sockets) json_entry["sockets"].push_back(to_json(socket));
    json["destinations"].push_back(json_entry);
  }
  if (status.tracking)
    json["tracking"] = {{"program_id", status.tracking->program_id},
                        {"cgroup_id", status.tracking->cgroup_id},
                        {"cgroup", status.tracking->cgroup}};
  else
    json["tracking"] = nullptr;
  json["reuseport_groups"] = nlohmann::json::array();
  for (const auto& group : status.reuseport_groups)
    json["reuseport_groups"].push_back(to_json(group));
  return json;
}

std::string bindings_table(const std::vector<core::BoundBinding>& bindings) {
  Table table({"LABEL", "PROTO", "PREFIX", "PORTS"});
  for (const auto& bound : bindings)
    table.add_row({bound.binding.label, std::string(core::to_string(bound.binding.protocol)),
                   bound.binding.prefix.to_string(), bound.binding.ports.to_string()});
  return table.render();
}

void BindingsJsonStream::add(const core::BoundBinding& bound) {
  const auto& binding = bound.binding;
  // Keys in to_json's (sorted) order, indented as json_text indents the third level. A label
  // that needs escaping (or replacing, if not UTF-8) is written by nlohmann, as before.
  auto out = std::back_inserter(buffer_);
  fmt::format_to(out, "{}\n    {{\n      \"destination\": {},\n      \"label\": ",
                 count_++ == 0 ? "{\n  \"bindings\": [" : ",", bound.destination);
  bool plain = std::all_of(binding.label.begin(), binding.label.end(), [](char c) {
    return c >= 0x20 && c <= 0x7e && c != '"' && c != '\\';
  });
  if (plain) fmt::format_to(out, "\"{}\"", binding.label);
  else fmt::format_to(out, "{}", json_text(binding.label));
  fmt::format_to(out,
                 ",\n      \"ports\": \"{}\",\n      \"prefix\": \"{}\",\n      "
                 "\"protocol\": \"{}\"\n    }}",
                 binding.ports.is_all() ? "0" : binding.ports.to_string(),
                 binding.prefix.to_string(), core::to_string(binding.protocol));
  if (buffer_.size() >= (1 << 16)) flush();
}

bool BindingsJsonStream::finish() {
  fmt::format_to(std::back_inserter(buffer_), "{}",
                 count_ == 0 ? "{\n  \"bindings\": []\n}\n" : "\n  ]\n}\n");
  flush();
  return !failed_ && std::fflush(out_) == 0;
}

void BindingsJsonStream::flush() {
  if (!failed_ && std::fwrite(buffer_.data(), 1, buffer_.size(), out_) != buffer_.size())
    failed_ = true;
  buffer_.clear();
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

}  // namespace steer::report
