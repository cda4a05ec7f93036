#include "bpf/test_run.h"

#include <arpa/inet.h>
#include <bpf/bpf.h>

#include <cstring>

namespace steer::bpf {

bpf_sk_lookup make_sk_lookup_context(int protocol, const SocketAddress& remote,
                                     const SocketAddress& local) {
  bpf_sk_lookup context{};
  context.family = local.family();
  context.protocol = protocol;
  if (local.family() == AF_INET) {
    context.remote_ip4 = reinterpret_cast<const sockaddr_in*>(remote.data())->sin_addr.s_addr;
    context.local_ip4 = reinterpret_cast<const sockaddr_in*>(local.data())->sin_addr.s_addr;
  } else {
    const auto* remote6 = reinterpret_cast<const sockaddr_in6*>(remote.data());
    const auto* local6 = reinterpret_cast<const sockaddr_in6*>(local.data());
    std::memcpy(context.remote_ip6, &remote6->sin6_addr, sizeof(context.remote_ip6));
    std::memcpy(context.local_ip6, &local6->sin6_addr, sizeof(context.local_ip6));
  }
  context.remote_port = htons(remote.port());  // network order, as the program sees it
  context.local_port = local.port();            // host order
  return context;
}

Result<SkLookupRun> test_run_sk_lookup(int program_fd, const bpf_sk_lookup& context,
                                       uint32_t repeat) {
  if (context.ingress_ifindex != 0)
    return fail(EINVAL, "sk_lookup test run: ingress_ifindex must be 0 (the kernel takes only the "
                        "fields up to local_port from ctx_in)");
  // The cookie shares a union with `sk`, which must be NULL on input (else EINVAL). Separate
  // in and out buffers, so a selection written to ctx_out never feeds the next run.
  bpf_sk_lookup input = context;
  input.cookie = 0;
  bpf_sk_lookup output{};
  LIBBPF_OPTS(bpf_test_run_opts, options, .ctx_in = &input, .ctx_out = &output,
              .ctx_size_in = sizeof(input), .ctx_size_out = sizeof(output),
              .repeat = static_cast<int>(repeat));
  int ret = bpf_prog_test_run_opts(program_fd, &options);
  if (ret < 0) {
    if (-ret == EOPNOTSUPP)
      return fail(EOPNOTSUPP, "BPF_PROG_TEST_RUN of the sk_lookup program: it selected a "
                              "SO_REUSEPORT socket without BPF_SK_LOOKUP_F_NO_REUSEPORT, which "
                              "a test run cannot resolve");
    return fail_errno(-ret, "BPF_PROG_TEST_RUN of the sk_lookup program");
  }
  return SkLookupRun{options.retval, options.duration, output.cookie};
}

}  // namespace steer::bpf
