// Waiting for BPF programs that may still run on an old value.
#pragma once

#include "base/error.h"

namespace steer::bpf {

// Returns once every non-sleepable BPF program run (sk_lookup among them) that started
// before the call has finished: an RCU grace period. The kernel waits for one after each
// update of a map-in-map (kernel/bpf/syscall.c, maybe_wait_bpf_programs), so this updates
// a throw-away ARRAY_OF_MAPS. Use it between switching programs to new data and freeing
// the old.
Result<void> wait_for_running_programs();

}  // namespace steer::bpf
