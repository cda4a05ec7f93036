// steer register-pid: take a running process's listening sockets (pidfd_getfd).
#include "cli/verbs.h"
#include "core/dispatcher.h"
#include "core/socket_source.h"

namespace steer::cli {

void add_register_pid_verb(CLI::App& app, const GlobalOptions& globals, const VerbRunner& run) {
  struct Options {
    pid_t pid = 0;
    std::string label, protocol, address;
    RegisterOptions registration;
  };
  auto options = std::make_shared<Options>();
  auto* verb = app.add_subcommand("register-pid", "Register a running process's listening sockets");
  verb->add_option("PID", options->pid, "The process that owns the sockets")->required();
  verb->add_option("LABEL", options->label, "The label whose pool they join")->required();
  verb->add_option("PROTO", options->protocol, "Only tcp or only udp sockets");
  verb->add_option("ADDR:PORT", options->address, "Only the socket bound to this address");
  add_register_options(verb, options->registration);
  verb->footer(
      "Takes a copy of each of the process's listening TCP and unconnected UDP sockets (or just\n"
      "the one named by PROTO ADDR:PORT); the process keeps serving on them and steer's copy\n"
      "goes away when steer exits, while the socket map keeps the socket until the process\n"
      "closes it. Needs the right to ptrace the process (root, or its user).\n\n"
      "Examples:\n"
      "  steer register-pid 4242 web\n"
      "  steer register-pid $(pgrep -o nginx) web tcp 127.0.0.1:8080\n"
      "  steer register-pid 4243 dns udp [::1]:53\n"
      "  steer register-pid 5151 web --generation 2     # a new release, then: steer promote web 2\n"
      "  steer register-pid $(pgrep -o nginx) web --reuseport   # nginx's own reuseport sockets");
  verb->callback([&globals, run, options] {
    auto protocol = parse_if_given(options->protocol, core::parse_protocol);
    if (!protocol) return run(std::unexpected(protocol.error()));
    auto address = parse_if_given(options->address, SocketAddress::parse);
    if (!address) return run(std::unexpected(address.error()));
    auto taken = core::take_sockets_of_process(options->pid);
    if (!taken) return run(std::unexpected(taken.error()));
    std::vector<int> fds;
    for (const auto& fd : *taken) {
      auto info = inspect_socket(fd.get());
      if (!info) continue;
      bool tcp_listener = info->protocol == IPPROTO_TCP && info->state == SocketState::Listening;
      bool udp_bound = info->protocol == IPPROTO_UDP && info->state == SocketState::Bound;
      if (!tcp_listener && !udp_bound) continue;  // client connections, accepted sockets, ...
      if (*protocol && info->protocol != static_cast<int>(**protocol)) continue;
      if (*address && info->local.to_string() != (*address)->to_string()) continue;
      fds.push_back(fd.get());
    }
    if (fds.empty())
      return run(fail(ENOENT, "process {} has no listening TCP or unconnected UDP socket{}",
                      options->pid,
                      options->protocol.empty() ? std::string()
                          : fmt::format(" matching {} {}", options->protocol, options->address)));
    run(register_fds(globals, options->label, fds, core::Owner::of_process(options->pid),
                     options->registration));
  });
}

}  // namespace steer::cli
