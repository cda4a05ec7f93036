// flock with a deadline: a held lock is waited for, reported once, and given up on with a
// message that names its holder instead of hanging forever.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "base/error.h"

namespace steer {

// Called at most once, after a second of waiting, with "waiting for the lock on <what>,
// held by pid N (command)". The library prints nothing itself.
using LockWaitReport = std::function<void(const std::string& message)>;

// Takes flock(LOCK_EX or LOCK_SH) on `fd`, polling every 20 ms while another process holds
// it. Gives up with ETIMEDOUT after `timeout` ("<what> is locked by pid N (command) ...");
// a timeout of 0 tries once. `what` names the locked object in messages (e.g. its path).
Result<void> lock_with_timeout(int fd, bool exclusive, std::chrono::milliseconds timeout,
                               std::string_view what, const LockWaitReport& report_waiting = {});

struct LockHolder {
  pid_t pid = 0;        // as /proc/locks shows it: 0 when in a pid namespace we cannot see
  std::string command;  // /proc/<pid>/comm, empty when unreadable
};

// The processes holding a flock on the file open as `fd` (from /proc/locks; waiters are
// not holders). Empty when none is found.
std::vector<LockHolder> flock_holders(int fd);

// "pid 12 (flock)", "pid 12 (flock), pid 13 (sleep)", or "another process" when unknown.
std::string describe_lock_holders(const std::vector<LockHolder>& holders);

}  // namespace steer
