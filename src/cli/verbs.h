// The `steer` verbs: one source file each under verbs/, registered in main.cpp.
#pragma once

#include <CLI/CLI.hpp>

#include <string>

#include "base/error.h"

namespace steer::cli {

struct GlobalOptions {
  std::string netns;                // --netns PATH: operate on that network namespace
  std::string bpffs = "/sys/fs/bpf";  // --bpffs DIR: where state is pinned
  bool json = false;                // --json: machine-readable output
};

// What a verb's callback hands back to main: an exit code, or an error to print.
struct Outcome {
  int exit_code = 0;
};
using VerbResult = Result<Outcome>;

// Each verb adds its subcommand; `run` receives the verb's result when it is chosen.
using VerbRunner = std::function<void(VerbResult)>;

void add_doctor_verb(CLI::App& app, const GlobalOptions& globals, const VerbRunner& run);
void add_version_verb(CLI::App& app, const GlobalOptions& globals, const VerbRunner& run);

}  // namespace steer::cli
