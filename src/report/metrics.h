// The Prometheus text exposition of a status snapshot (steerd's /metrics). Every counter is
// read from the kernel's maps, so a restarted steerd goes on from where the last one was.
#pragma once

#include <string>

#include "core/dispatcher.h"

namespace steer::report {

// Metric names, units and types follow Prometheus conventions (docs/operations.md lists them).
std::string metrics_text(const core::StatusSnapshot& status);

}  // namespace steer::report
