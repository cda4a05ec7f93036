// What this kernel and this process can do, checked for real in a throw-away network
// namespace: the engine behind `steer doctor`.
#pragma once

#include <string>
#include <vector>

namespace steer::core {

struct Check {
  std::string name;        // "SOCKHASH holds TCP listeners"
  bool ok = false;
  std::string detail;      // what was seen, or why it failed (with the errno)
  std::string needed_for;  // what steer cannot do without it
  std::string fix;         // what the operator can do, when there is something to do
};

struct DoctorReport {
  std::vector<Check> checks;
  bool all_ok() const;
};

struct DoctorOptions {
  std::string bpffs = "/sys/fs/bpf";
};

// Runs every probe. Never touches the caller's network namespace: probes that attach
// programs or open sockets run in a fresh namespace that disappears afterwards.
DoctorReport run_doctor(const DoctorOptions& options);

}  // namespace steer::core
