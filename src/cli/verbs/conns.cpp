// steer conns: established connections, counted in the kernel as they open and close.
#include "base/cgroup.h"
#include "report/render.h"
#include "report/table.h"
#include "cli/verbs.h"
#include "core/dispatcher.h"

namespace steer::cli {

namespace {

nlohmann::json tracking_json(const std::optional<core::ConnectionTracking>& tracking) {
  if (!tracking) return nullptr;
  return {{"program_id", tracking->program_id},
          {"cgroup_id", tracking->cgroup_id},
          {"cgroup", tracking->cgroup}};
}

}  // namespace

void add_conns_verb(CLI::App& app, const GlobalOptions& globals, const VerbRunner& run) {
  struct Options {
    std::string label;
    std::string cgroup;  // empty: the root of the cgroup v2 hierarchy
  };
  auto options = std::make_shared<Options>();
  auto* verb = app.add_subcommand(
      "conns", "Established connections of registered listeners, counted in the kernel");
  verb->require_subcommand(1);
  verb->footer(
      "`track` attaches a sockops program to a cgroup v2 directory: every connection a\n"
      "registered TCP listener of a process in that cgroup accepts is counted in the\n"
      "listener's pool slot while it is open, kept in a SOCKHASH of established sockets, and\n"
      "listed by `list`. The least-conn policy and status's ESTAB column read the counts.\n"
      "Listeners registered before `track` are taken from their owners and counted from\n"
      "then on.\n\n"
      "Examples:\n"
      "  steer conns track --cgroup /sys/fs/cgroup/system.slice/web.service\n"
      "  steer policy web least-conn\n"
      "  steer conns list web\n"
      "  steer conns untrack");

  auto* track = verb->add_subcommand("track", "Count the connections of the cgroup's listeners");
  track->add_option("--cgroup", options->cgroup,
                    "The cgroup v2 directory holding the services (default: the root of the "
                    "cgroup v2 hierarchy, every process; /sys/fs/cgroup, or "
                    "/sys/fs/cgroup/unified on hybrid hosts)");
  track->callback([&globals, run, options] {
    run([&]() -> VerbResult {
      std::string cgroup = options->cgroup;
      if (cgroup.empty()) cgroup = STEER_TRY(find_cgroup2_mount());
      auto dispatcher = STEER_TRY(core::Dispatcher::open(globals.target(), core::LockMode::Exclusive));
      auto tracking = STEER_TRY(dispatcher.track_connections(cgroup));
      return print_result(globals, {{"tracking", tracking_json(tracking)}},
                          fmt::format("counting connections of cgroup {} (program {})",
                                      tracking.cgroup.empty() ? cgroup : tracking.cgroup,
                                      tracking.program_id));
    }());
  });

  auto* untrack = verb->add_subcommand("untrack", "Stop counting connections");
  untrack->callback([&globals, run] {
    run([&]() -> VerbResult {
      auto dispatcher = STEER_TRY(core::Dispatcher::open(globals.target(), core::LockMode::Exclusive));
      STEER_TRY(dispatcher.untrack_connections());
      return print_result(globals, {{"tracking", nullptr}},
                          "connections are no longer counted (least-conn falls back to its "
                          "hash table order)");
    }());
  });

  auto* list = verb->add_subcommand("list", "List established connections (oldest first)");
  list->add_option("LABEL", options->label, "Only this label's");
  list->callback([&globals, run, options] {
    run([&]() -> VerbResult {
      auto dispatcher = STEER_TRY(core::Dispatcher::open(globals.target(), core::LockMode::Shared));
      auto tracking = STEER_TRY(dispatcher.connection_tracking());
      auto connections = STEER_TRY(dispatcher.connections(options->label));
      nlohmann::json json = nlohmann::json::array();
      Table table({"LABEL", "POOL", "SLOT", "LISTENER", "COOKIE", "LOCAL", "REMOTE", "AGE"});
      for (const auto& connection : connections) {
        json.push_back({{"label", connection.label},
                        {"destination", connection.destination},
                        {"slot", connection.slot},
                        {"listener_cookie", connection.listener_cookie},
                        {"cookie", connection.cookie},
                        {"local", connection.local.to_string()},
                        {"remote", connection.remote.to_string()},
                        {"age_seconds", connection.age_seconds}});
        table.add_row({connection.label, std::to_string(connection.destination),
                       std::to_string(connection.slot), std::to_string(connection.listener_cookie),
                       std::to_string(connection.cookie), connection.local.to_string(),
                       connection.remote.to_string(), fmt::format("{:.1f}s", connection.age_seconds)});
      }
      std::string text = tracking ? table.render()
                                  : "connections are not counted: `steer conns track` first\n";
      return print_result(globals, {{"tracking", tracking_json(tracking)}, {"connections", json}},
                          text);
    }());
  });
}

}  // namespace steer::cli
