#include "report/metrics.h"

#include <map>
#include <utility>
#include <vector>

#include "base/version.h"
#include "core/policy.h"
#include "report/render.h"

namespace steer::report {
namespace {

// A label value as the text format wants it: backslash, double quote and newline escaped.
std::string escape_label(std::string_view value) {
  std::string escaped;
  for (char c : value) {
    if (c == '\\') escaped += "\\\\";
    else if (c == '"') escaped += "\\\"";
    else if (c == '\n') escaped += "\\n";
    else escaped += c;
  }
  return escaped;
}

using Labels = std::vector<std::pair<std::string, std::string>>;

// One metric family: HELP and TYPE once, then its samples.
class Family {
 public:
  Family(std::string name, std::string type, std::string help)
      : name_(std::move(name)), type_(std::move(type)), help_(std::move(help)) {}
  void add(const Labels& labels, double value) {
    std::string line = name_;
    if (!labels.empty()) {
      line += '{';
      for (size_t i = 0; i < labels.size(); ++i)
        line += fmt::format("{}{}=\"{}\"", i ? "," : "", labels[i].first,
                            escape_label(labels[i].second));
      line += '}';
    }
    samples_ += fmt::format("{} {}\n", line, value);
  }
  std::string render() const {
    return fmt::format("# HELP {} {}\n# TYPE {} {}\n{}", name_, help_, name_, type_, samples_);
  }

 private:
  std::string name_, type_, help_, samples_;
};

Labels destination_labels(const core::Destination& destination) {
  return {{"label", destination.label},
          {"protocol", std::string(core::to_string(destination.protocol))},
          {"family", family_name(destination.family)}};
}

}  // namespace

std::string metrics_text(const core::StatusSnapshot& status) {
  Family build("steer_build_info", "gauge", "The steer release and state schema serving metrics.");
  build.add({{"version", kSteerVersionString},
             {"state_version", status.meta.steer_version},
             {"schema", std::to_string(status.meta.schema_version)}}, 1);
  Family attached("steer_dispatcher_attached", "gauge",
                  "1 when the sk_lookup dispatcher is attached to the network namespace.");
  attached.add({}, status.program_id != 0 ? 1 : 0);
  Family bindings("steer_bindings", "gauge", "Bindings loaded.");
  bindings.add({}, static_cast<double>(status.binding_count));
  Family repairs("steer_repairs_total", "counter",
                 "Repairs of state left by an interrupted change.");
  repairs.add({}, status.journal.repairs);

  Family lookups("steer_lookups_total", "counter",
                 "Connections and datagrams that matched a binding of the destination.");
  Family selections("steer_selections_total", "counter",
                    "Lookups that were given a socket of the destination's pool.");
  Family drops("steer_drops_total", "counter",
               "Lookups dropped (the client is refused), by reason.");
  Family errors("steer_errors_total", "counter",
                "Sockets the program tried and could not use, by reason (it tried another).");
  Family destination_bindings("steer_destination_bindings", "gauge",
                              "Bindings that name the destination.");
  Family policy("steer_destination_policy_info", "gauge", "The destination's policy.");
  Family sockets("steer_sockets", "gauge", "Registered sockets, by state and generation.");
  Family socket_selections("steer_socket_selections_total", "counter",
                           "Connections or datagrams given to the socket.");
  Family socket_established("steer_socket_established_connections", "gauge",
                            "Established connections the socket accepted (steer conns track).");
  Family socket_queued("steer_socket_queued", "gauge",
                       "Connections waiting in a listener's accept queue, or bytes in a UDP "
                       "socket's receive queue.");
  for (const auto& entry : status.destinations) {
    const auto& destination = entry.destination;
    auto labels = destination_labels(destination);
    const auto& counters = destination.counters;
    lookups.add(labels, counters[STEER_COUNTER_LOOKUPS]);
    selections.add(labels, counters[STEER_COUNTER_SELECTED]);
    auto with = [&](const char* key, std::string value) {
      auto more = labels;
      more.emplace_back(key, std::move(value));
      return more;
    };
    drops.add(with("reason", "no_socket"), counters[STEER_COUNTER_NO_SOCKET]);
    for (size_t i = STEER_COUNTER_DEAD_SLOT; i < STEER_COUNTERS; ++i)
      errors.add(with("reason", counter_name(i)), counters[i]);
    destination_bindings.add(labels, entry.bindings);
    policy.add(with("policy", core::policy_name(destination.policy)), 1);
    std::map<std::pair<std::string, uint32_t>, size_t> by_state;
    for (const auto& socket : entry.sockets) {
      const char* state = socket.health == core::SocketHealth::Refused ? "refused"
                                                                       : socket_state_name(socket);
      ++by_state[{state, socket.generation}];
      auto socket_labels = labels;
      socket_labels.emplace_back("cookie", std::to_string(socket.cookie));
      socket_labels.emplace_back("pid", std::to_string(socket.owner.pid));
      socket_labels.emplace_back("generation", std::to_string(socket.generation));
      socket_selections.add(socket_labels, socket.selected);
      if (status.tracking && destination.protocol == core::Protocol::Tcp)
        socket_established.add(socket_labels, static_cast<double>(socket.established));
      if (socket.queue) socket_queued.add(socket_labels, socket.queue->queued);
    }
    for (const auto& [key, count] : by_state) {
      auto state_labels = labels;
      state_labels.emplace_back("state", key.first);
      state_labels.emplace_back("generation", std::to_string(key.second));
      sockets.add(state_labels, static_cast<double>(count));
    }
  }

  Family group_selections("steer_reuseport_selections_total", "counter",
                          "Connections steer's sk_reuseport program gave to a group member.");
  Family group_migrations("steer_reuseport_migrations_total", "counter",
                          "Queued connections moved off a closing group member.");
  Family group_hash("steer_reuseport_kernel_hash_total", "counter",
                    "Connections the program left to the kernel's hash.");
  Family group_refused("steer_reuseport_refused_total", "counter",
                       "Connections refused: every member drained.");
  Family group_steered("steer_reuseport_group_steered", "gauge",
                       "1 when the kernel runs steer's program for the group.");
  for (const auto& group : status.reuseport_groups) {
    Labels labels{{"label", group.label},
                  {"protocol", std::string(core::to_string(group.protocol))},
                  {"address", group.address.to_string()}};
    group_selections.add(labels, group.record.selected);
    group_migrations.add(labels, group.record.migrated);
    group_hash.add(labels, group.record.kernel_hash);
    group_refused.add(labels, group.record.refused);
    group_steered.add(labels, group.steered() ? 1 : 0);
  }

  std::string text;
  for (const Family* family :
       {&build, &attached, &bindings, &repairs, &lookups, &selections, &drops, &errors,
        &destination_bindings, &policy, &sockets, &socket_selections, &socket_established,
        &socket_queued, &group_selections, &group_migrations, &group_hash, &group_refused,
        &group_steered})
    text += family->render();
  return text;
}

}  // namespace steer::report
