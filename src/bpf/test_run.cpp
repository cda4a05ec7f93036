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
    std::memcpy(context.remote_ip6, &reinterpret_cast<const sockaddr_in6*>(remote.data())->sin6_addr,
                sizeof(context.remote_ip6));
    std::memcpy(context.local_ip6, &reinterpret_cast<const sockaddr_in6*>(local.data())->sin6_addr,
                sizeof(context.local_ip6));
  }
  context.remote_port = htons(remote.port());  // network order, as the program sees it
  context.local_port = local.port();            // host order
  return context;
}

Result<SkLookupRun> test_run_sk_lookup(int program_fd, const bpf_sk_lookup& context,
                                       uint32_t repeat) {
  bpf_sk_lookup input = context;
  LIBBPF_OPTS(bpf_test_run_opts, options, .ctx_in = &input, .ctx_size_in = sizeof(input),
              .repeat = static_cast<int>(repeat));
  int ret = bpf_prog_test_run_opts(program_fd, &options);
  if (ret < 0) return fail_errno(-ret, "BPF_PROG_TEST_RUN of the sk_lookup program");
  return SkLookupRun{options.retval, options.duration};
}

}  // namespace steer::bpf
