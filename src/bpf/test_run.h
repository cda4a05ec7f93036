// BPF_PROG_TEST_RUN for sk_lookup programs: run a program on a made-up lookup, no traffic.
#pragma once

#include <linux/bpf.h>

#include <cstdint>

#include "base/error.h"
#include "base/socket.h"

namespace steer::bpf {

struct SkLookupRun {
  uint32_t verdict = 0;          // SK_PASS (1) or SK_DROP (0)
  uint32_t duration_ns = 0;      // average per repetition, as the kernel measured it
  uint64_t selected_cookie = 0;  // SO_COOKIE of the socket the program selected; 0: none
};

// A lookup context for a packet from `remote` to `local` (same family), TCP or UDP.
bpf_sk_lookup make_sk_lookup_context(int protocol, const SocketAddress& remote,
                                     const SocketAddress& local);

// Runs the program `repeat` times on `context` and reports the verdict and the socket it
// selected (the kernel writes that socket's cookie into ctx_out; kernel-behaviour.md G.38).
// `context` is input only: its cookie is ignored, its ingress_ifindex must be 0.
// Fails with EOPNOTSUPP when the selected socket has SO_REUSEPORT and the program did not
// pass BPF_SK_LOOKUP_F_NO_REUSEPORT: a test run cannot run the reuseport group's program.
Result<SkLookupRun> test_run_sk_lookup(int program_fd, const bpf_sk_lookup& context,
                                       uint32_t repeat = 1);

}  // namespace steer::bpf
