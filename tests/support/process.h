// Running real binaries (the steer CLI, peers such as curl and socat) from tests.
#pragma once

#include <string>
#include <vector>

namespace steer::testing {

struct CommandResult {
  int exit_code = -1;  // -1 when the process died of a signal
  std::string out;
  std::string err;
};

// Runs `argv` to completion with stdin from /dev/null and returns what it printed.
CommandResult run_command(const std::vector<std::string>& argv);

// The steer CLI built next to the tests.
std::string steer_binary();

}  // namespace steer::testing
