// Makes the loaded state what a config says, as one change seen from outside: everything is
// checked first (the config was parsed and checked as a set already), then the bindings are
// switched in one update (only when they differ), then each service's policy. What the
// config does not name (sockets, generations, drains, other labels' policies) is not touched.
#pragma once

#include <string>
#include <vector>

#include "base/error.h"
#include "core/state.h"
#include "daemon/config.h"

namespace steer::daemon {

struct ApplyReport {
  bool loaded = false;              // the dispatcher was loaded into the namespace
  std::vector<std::string> changes;  // one line each: "bindings: 3 added, 1 removed", ...
};

// The target a config names (its bpffs and netns).
core::Target target_of(const DaemonConfig& config);

Result<ApplyReport> apply_config(const DaemonConfig& config);

// Sets a configured service's policy on a label that has just gained a destination (a first
// register through steerd); nothing when the config names no policy or it is set already.
Result<void> apply_service_policy(const DaemonConfig& config, const std::string& label);

}  // namespace steer::daemon
