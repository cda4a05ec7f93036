// steer register: register sockets handed over by systemd socket activation, or by fd.
#include <fcntl.h>
#include <unistd.h>

#include "report/render.h"
#include "report/table.h"
#include "cli/verbs.h"
#include "core/dispatcher.h"
#include "core/socket_source.h"

namespace steer::cli {

VerbResult register_fds(const GlobalOptions& globals, const std::string& label,
                        const std::vector<int>& fds, const core::Owner& owner,
                        const RegisterOptions& options) {
  auto dispatcher = STEER_TRY(core::Dispatcher::open(globals.target(), core::LockMode::Exclusive));
  auto pooled = dispatcher.register_sockets(
      label, fds, owner, {.generation = options.generation, .reuseport = options.reuseport});
  print_notices(dispatcher);  // also when the registration failed
  const auto registered = STEER_TRY(std::move(pooled));
  nlohmann::json json = nlohmann::json::array();
  Table table({"LABEL", "POOL", "SLOT", "COOKIE", "ADDRESS", "PID", "GEN"});
  for (const auto& socket : registered) {
    json.push_back(to_json(socket));
    table.add_row({label, std::to_string(socket.destination), std::to_string(socket.slot),
                   std::to_string(socket.cookie), socket.address.to_string(),
                   std::to_string(socket.owner.pid), std::to_string(socket.generation)});
  }
  std::string text = fmt::format("registered {} socket{} for '{}':\n{}", registered.size(),
                                 registered.size() == 1 ? "" : "s", label, table.render());
  nlohmann::json result{{"label", label}, {"registered", json}};
  if (options.reuseport) {
    auto attached = dispatcher.attach_reuseport(label, fds, /*replace=*/false);
    print_notices(dispatcher);
    if (!attached)
      return fail(attached.error().code, "registered, but not attached: {}",
                  attached.error().message);
    result["attached"] = nlohmann::json::array();
    for (const auto& group : *attached) result["attached"].push_back(to_json(group));
    text += fmt::format("attached {} reuseport group{}:\n{}", attached->size(),
                        attached->size() == 1 ? "" : "s", groups_table(*attached));
  }
  return print_result(globals, result, text);
}

void add_register_verb(CLI::App& app, const GlobalOptions& globals, const VerbRunner& run) {
  struct Options {
    std::string label;
    std::vector<int> fds;
    std::string fdname;
    std::vector<std::string> command;
    RegisterOptions registration;
  };
  auto options = std::make_shared<Options>();
  auto* verb = app.add_subcommand("register", "Register sockets passed by systemd (LISTEN_FDS) or by fd");
  verb->add_option("LABEL", options->label, "The label whose pool the sockets join")->required();
  verb->add_option("--fd", options->fds, "Register this inherited fd instead of LISTEN_FDS (repeatable)");
  add_register_options(verb, options->registration);
  verb->add_option("--fdname", options->fdname,
                   "Only the LISTEN_FDS sockets with this name in LISTEN_FDNAMES");
  verb->add_option("COMMAND", options->command,
                   "After `--`: a command to exec once registered; it keeps the sockets (and "
                   "LISTEN_FDS), so they stay open");
  verb->footer(
      "A socket stays registered while it is open: something must keep it (a systemd .socket\n"
      "unit, or the COMMAND steer execs into). Sockets must be listening TCP or bound,\n"
      "unconnected UDP, IPv4 or IPv6, in steer's network namespace. A dual-stack IPv6 socket\n"
      "joins both the IPv4 and the IPv6 pool of the label.\n\n"
      "Examples:\n"
      "  systemd-socket-activate -l 127.0.0.1:8080 steer register web -- python3 server.py\n"
      "  ExecStartPre=/usr/bin/steer register web      # in a service with a .socket unit\n"
      "  steer register web --fd 3 3<&0                # an fd your shell inherited");
  verb->callback([&globals, run, options] {
    std::vector<int> fds = options->fds;
    if (fds.empty()) {
      auto activated = core::sockets_from_systemd();
      if (!activated) return run(std::unexpected(activated.error()));
      for (const auto& socket : *activated)
        if (options->fdname.empty() || socket.name == options->fdname) fds.push_back(socket.fd);
      if (fds.empty())
        return run(fail(ENOENT, "no passed socket is named '{}' (LISTEN_FDNAMES={})",
                        options->fdname, std::getenv("LISTEN_FDNAMES") ? std::getenv("LISTEN_FDNAMES") : ""));
    }
    // Checked before steer opens fds of its own, which could take a number never inherited.
    for (int fd : fds)
      if (fd < 0 || ::fcntl(fd, F_GETFD) < 0)
        return run(fail(EBADF, "fd {} is not open: steer did not inherit it (e.g. `steer register "
                               "web --fd 3 3<&0`, or a LISTEN_FDS socket)", fd));
    auto owner = core::Owner::of_process(::getpid());
    // With `-- COMMAND` steer execs into it under the same pid: the owner is that command.
    if (!options->command.empty()) {
      std::string command = options->command[0];
      owner.command = command.substr(command.find_last_of('/') + 1).substr(0, 15);
    }
    auto result = register_fds(globals, options->label, fds, owner, options->registration);
    if (!result || options->command.empty()) return run(std::move(result));
    std::fflush(stdout);
    std::vector<char*> argv;
    for (auto& word : options->command) argv.push_back(word.data());
    argv.push_back(nullptr);
    ::execvp(argv[0], argv.data());
    run(fail_errno("exec " + options->command[0]));
  });
}

}  // namespace steer::cli

namespace steer::cli {

void add_register_options(CLI::App* verb, RegisterOptions& options) {
  verb->add_flag("--reuseport", options.reuseport,
                 "Also attach steer's sk_reuseport program to the sockets' SO_REUSEPORT groups "
                 "(`steer reuseport --help`)");
  verb->add_option("--generation", options.generation,
                   "The generation the sockets join (default: the label's newest, so a plain "
                   "register joins the running one; 1 for a new label). `steer promote` "
                   "switches generations")
      ->check(CLI::Range(1u, 0xffffffffu));
}

void add_socket_selection(CLI::App* verb, SocketSelection& selection) {
  auto* cookie = verb->add_option("--cookie", selection.filter.cookie,
                                  "The socket with this cookie (see status)");
  auto* pid = verb->add_option("--pid", selection.filter.pid, "The sockets this process owns");
  auto* generation = verb->add_option("--generation", selection.filter.generation,
                                      "The sockets of this generation");
  auto* all = verb->add_flag("--all", selection.all, "Every socket of the label");
  all->excludes(cookie)->excludes(pid)->excludes(generation);
}

Result<core::SocketFilter> selected_sockets(const SocketSelection& selection) {
  const auto& filter = selection.filter;
  if (!selection.all && !filter.cookie && !filter.pid && !filter.generation)
    return fail(EINVAL, "say which sockets: --cookie C, --pid P, --generation G (any of them "
                        "together), or --all");
  return filter;
}

}  // namespace steer::cli
