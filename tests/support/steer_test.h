// A KernelTest (fresh netns, private bpffs) that runs the steer CLI on its bpffs: the
// fixture of the e2e tests that drive steer as a user would.
#pragma once

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "support/kernel_test.h"
#include "support/steer_cli.h"

namespace steer::testing {

class SteerTest : public KernelTest {
 protected:
  // `steer --bpffs BPFFS ARGS...`, with these fds passed.
  CommandResult run(std::vector<std::string> args, const std::vector<PassedFd>& fds = {}) {
    return run_steer(SteerCall{.bpffs = bpffs(), .args = std::move(args), .fds = fds});
  }
  // The same, which must succeed (a fatal failure otherwise, with what steer printed).
  void run_ok(std::vector<std::string> args, const std::vector<PassedFd>& fds = {}) {
    auto result = run(args, fds);
    ASSERT_EQ(result.exit_code, 0) << shell_words(args) << "\n" << result.err << result.out;
  }
  // `steer --json ARGS...`, parsed (discarded JSON, and a failure, when it is not valid).
  nlohmann::json json(std::vector<std::string> args) {
    args.insert(args.begin(), "--json");
    auto result = run(args);
    EXPECT_EQ(result.exit_code, 0) << result.err << result.out;
    return nlohmann::json::parse(result.out, nullptr, false);
  }
};

}  // namespace steer::testing
