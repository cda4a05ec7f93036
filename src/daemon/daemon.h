// steerd's main loop: applies the config, serves the control socket and /metrics, watches the
// pools, and talks to systemd. One thread runs the loop (every change is made from it, one
// at a time); the HTTP server answers /metrics and /healthz from its own threads, reading.
#pragma once

#include <string>

#include "base/error.h"
#include "daemon/config.h"

namespace steer::daemon {

struct DaemonOptions {
  std::string config_path;  // empty: the built-in default
};

// Runs until SIGTERM or SIGINT (exit 0). An error before it is ready (a bad config, the
// control socket taken) is returned; after that, errors are logged and it goes on.
Result<void> run_daemon(const DaemonOptions& options);

}  // namespace steer::daemon
