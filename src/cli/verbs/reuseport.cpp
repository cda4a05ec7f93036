// steer reuseport attach|detach|show: steer's sk_reuseport program on the SO_REUSEPORT groups
// of a label's sockets (services that bind their own reuseport sockets: nginx, envoy, ...).
#include "report/render.h"
#include "cli/verbs.h"
#include "core/dispatcher.h"

namespace steer::cli {

namespace {

std::vector<int> raw_fds(const std::vector<Fd>& fds) {
  std::vector<int> raw;
  for (const auto& fd : fds) raw.push_back(fd.get());
  return raw;
}

VerbResult print_groups(const GlobalOptions& globals, const std::string& label, const char* what,
                        const std::vector<core::ReuseportGroup>& groups) {
  nlohmann::json json = nlohmann::json::array();
  for (const auto& group : groups) json.push_back(to_json(group));
  return print_result(globals, {{"label", label}, {what, json}},
                      fmt::format("{} {} reuseport group{} of '{}':\n{}", what, groups.size(),
                                  groups.size() == 1 ? "" : "s", label, groups_table(groups)));
}

}  // namespace

void add_reuseport_verb(CLI::App& app, const GlobalOptions& globals, const VerbRunner& run) {
  struct Options {
    std::string label;
    bool replace = false;
  };
  auto options = std::make_shared<Options>();
  auto* verb = app.add_subcommand(
      "reuseport", "Steer SO_REUSEPORT groups by the label's policy, and migrate their queues");
  verb->require_subcommand(1);
  verb->footer(
      "For services that bind their own SO_REUSEPORT sockets (nginx `listen ... reuseport`,\n"
      "envoy, a server with one socket per worker). Register the sockets, then attach: steer's\n"
      "sk_reuseport program (BPF_SK_REUSEPORT_SELECT_OR_MIGRATE) then picks each new\n"
      "connection's socket by the label's policy (drained sockets get none), and when a member\n"
      "closes with connections still queued, moves them to an active member instead of\n"
      "resetting them. Connections steered by `steer bind` already chose their socket and are\n"
      "not chosen twice.\n\n"
      "Examples:\n"
      "  steer register-pid $(pgrep -o nginx) web --reuseport\n"
      "  steer reuseport attach web          # sockets registered earlier\n"
      "  steer reuseport show web\n"
      "  steer reuseport detach web          # back to the kernel's hash");

  auto* attach = verb->add_subcommand("attach", "Attach steer's program to the label's groups");
  attach->add_option("LABEL", options->label, "The label whose registered sockets' groups")->required();
  attach->add_flag("--replace", options->replace,
                   "Take over a group that runs another BPF program (it is replaced)");
  attach->callback([&globals, run, options] {
    run([&]() -> VerbResult {
      auto dispatcher = STEER_TRY(core::Dispatcher::open(globals.target(), core::LockMode::Exclusive));
      auto members = STEER_TRY(dispatcher.reach_group_members(options->label));
      if (members.empty())
        return fail(ENOENT, "no registered socket of '{}' can be reached: they are taken from "
                            "the processes that registered them, which must be alive (or "
                            "register them again with `--reuseport`)", options->label);
      auto attached = dispatcher.attach_reuseport(options->label, raw_fds(members), options->replace);
      print_notices(dispatcher);
      return print_groups(globals, options->label, "attached", STEER_TRY(std::move(attached)));
    }());
  });

  auto* detach = verb->add_subcommand("detach", "Give the label's groups back to the kernel's hash");
  detach->add_option("LABEL", options->label, "The label")->required();
  detach->callback([&globals, run, options] {
    run([&]() -> VerbResult {
      auto dispatcher = STEER_TRY(core::Dispatcher::open(globals.target(), core::LockMode::Exclusive));
      auto members = STEER_TRY(dispatcher.reach_group_members(options->label));
      auto detached = dispatcher.detach_reuseport(options->label, raw_fds(members));
      print_notices(dispatcher);
      return print_groups(globals, options->label, "detached", STEER_TRY(std::move(detached)));
    }());
  });

  auto* show = verb->add_subcommand("show", "List the groups steer serves, with counters");
  show->add_option("LABEL", options->label, "Only this label");
  show->callback([&globals, run, options] {
    run([&]() -> VerbResult {
      auto dispatcher = STEER_TRY(core::Dispatcher::open(globals.target(), core::LockMode::Shared));
      auto groups = STEER_TRY(dispatcher.reuseport_groups(options->label));
      nlohmann::json json = nlohmann::json::array();
      for (const auto& group : groups) json.push_back(to_json(group));
      return print_result(globals, {{"reuseport_groups", json}}, groups_table(groups));
    }());
  });
}

}  // namespace steer::cli
