// What steerd does with one control request: checks that the peer may act on the label, then
// runs the same core calls as the steer CLI (each under the state's lock, so steerd and the
// CLI may change the state at the same time) and answers with what changed.
#pragma once

#include <string>
#include <vector>

#include "base/fd.h"
#include "control/protocol.h"
#include "daemon/config.h"

namespace steer::daemon {

struct Handled {
  control::Reply reply;
  std::string log;  // one line for the log: who asked what, and the outcome
};

// `fds` are the sockets a register request carried; steerd's copies are closed when it
// returns (a socket stays registered while its owner keeps it open).
Handled handle_request(const DaemonConfig& config, const control::PeerCredentials& peer,
                       const control::Request& request, std::vector<Fd> fds);

}  // namespace steer::daemon
