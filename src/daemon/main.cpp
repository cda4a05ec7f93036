// steerd: keeps a network namespace's steering as a config file says, and lets services
// register their own sockets over a Unix control socket. docs/operations.md has the details.
#include <unistd.h>

#include <cstdlib>
#include <iostream>

#include <CLI/CLI.hpp>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/sinks/systemd_sink.h>
#include <spdlog/spdlog.h>

#include "base/version.h"
#include "daemon/config.h"
#include "daemon/daemon.h"

namespace {

// Under systemd (JOURNAL_STREAM set) records go to the journal with their priority and
// fields; elsewhere to stderr with a timestamp.
void set_up_logging() {
  std::shared_ptr<spdlog::logger> logger;
  if (std::getenv("JOURNAL_STREAM") != nullptr)
    logger = std::make_shared<spdlog::logger>(
        "steerd", std::make_shared<spdlog::sinks::systemd_sink_mt>("steerd"));
  else
    logger = std::make_shared<spdlog::logger>(
        "steerd", std::make_shared<spdlog::sinks::stderr_sink_mt>());
  if (std::getenv("JOURNAL_STREAM") == nullptr) logger->set_pattern("%Y-%m-%dT%H:%M:%S.%e %l: %v");
  logger->flush_on(spdlog::level::info);
  spdlog::set_default_logger(logger);
}

void print_check(const steer::daemon::DaemonConfig& config) {
  std::cout << config.source << ": valid\n"
            << "  state: bpffs " << config.bpffs << ", network namespace "
            << (config.netns.empty() ? "steerd's own" : config.netns) << "\n"
            << "  control socket: " << config.control_socket << fmt::format(" (mode {:04o})", config.control_mode)
            << "\n  metrics: " << (config.metrics_listen.empty() ? "off" : config.metrics_listen)
            << "\n  services: " << config.services.size() << "\n  bindings: "
            << (config.manages_bindings ? std::to_string(config.bindings.size())
                                        : std::string("not managed (the CLI's stay)"))
            << "\n";
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"steerd: the steer daemon. It loads steer's dispatcher into the network namespace,\n"
               "keeps the bindings and policies its config names, lets services register their\n"
               "sockets over a Unix control socket (checked against the peer's uid and gids),\n"
               "rebuilds a pool as soon as one of its sockets closes, serves Prometheus metrics\n"
               "and tells systemd when it is ready. Steering goes on in the kernel when steerd stops.",
               "steerd"};
  std::string config_path, check_path;
  bool version = false;
  app.add_option("--config", config_path,
                 "The TOML config (default: /etc/steer/steerd.toml when it exists, else the "
                 "built-in default)");
  app.add_option("--check-config", check_path, "Check a config file, print what it sets, exit");
  app.add_flag("--version", version, "Print the release and exit");
  app.footer(
      "Signals: SIGHUP reads the config again and applies it as one change (a bad one is\n"
      "refused and logged; the running state stays); SIGTERM stops steerd (the kernel keeps\n"
      "steering).\n\n"
      "Examples:\n"
      "  steerd                                   # the built-in default\n"
      "  steerd --config /etc/steer/steerd.toml\n"
      "  steerd --check-config /etc/steer/steerd.toml\n"
      "  curl -s http://127.0.0.1:9641/metrics    # the default metrics address");
  CLI11_PARSE(app, argc, argv);
  if (version) {
    std::cout << "steerd " << steer::kSteerVersionString << "\n";
    return 0;
  }
  if (!check_path.empty()) {
    auto config = steer::daemon::read_config(check_path);
    if (!config) {
      std::cerr << "steerd: " << config.error().message << "\n";
      return 1;
    }
    print_check(*config);
    return 0;
  }
  set_up_logging();
  if (config_path.empty() && ::access(steer::daemon::kDefaultConfigPath, F_OK) == 0)
    config_path = steer::daemon::kDefaultConfigPath;
  auto ran = steer::daemon::run_daemon({.config_path = config_path});
  if (!ran) {
    spdlog::critical("{}", ran.error().message);
    return 1;
  }
  return 0;
}
