// Makes the loaded state what a config says, as one change seen from outside: everything is
// checked first (the config was parsed and checked as a set already), then the bindings are
// switched in one update (only when they differ), then each service's policy. What the
// config does not name (sockets, generations, drains, other labels' policies) is not touched.
#pragma once

#include <string>
#include <vector>

#include "base/error.h"
#include "core/dispatcher.h"
#include "daemon/config.h"

namespace steer::daemon {

// The target a config names (its bpffs and netns).
core::Target target_of(const DaemonConfig& config);

// Returns what changed, a line each: "bindings: 3 added, 1 removed, 7 in all", ...
Result<std::vector<std::string>> apply_config(const DaemonConfig& config);

// Sets a configured service's policy on a label that has just gained a destination (a first
// register through steerd); nothing when the config names no policy or it is set already.
Result<void> apply_service_policy(core::Dispatcher& dispatcher, const DaemonConfig& config,
                                  const std::string& label);

}  // namespace steer::daemon
