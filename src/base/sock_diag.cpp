#include "base/sock_diag.h"

#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/sock_diag.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>
#include <vector>

#include "base/fd.h"

namespace steer {

namespace {

// One dump request (one family) and its replies, read until NLMSG_DONE.
Result<void> dump(int netlink, int family, int protocol,
                  std::map<uint64_t, SocketQueue>& queues) {
  struct {
    nlmsghdr header;
    inet_diag_req_v2 request;
  } message{};
  message.header.nlmsg_len = sizeof(message);
  message.header.nlmsg_type = SOCK_DIAG_BY_FAMILY;
  message.header.nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
  message.request.sdiag_family = static_cast<uint8_t>(family);
  message.request.sdiag_protocol = static_cast<uint8_t>(protocol);
  message.request.idiag_states = protocol == IPPROTO_TCP ? (1u << TCP_LISTEN) : ~0u;
  sockaddr_nl kernel{.nl_family = AF_NETLINK, .nl_pad = 0, .nl_pid = 0, .nl_groups = 0};
  if (::sendto(netlink, &message, sizeof(message), 0, reinterpret_cast<sockaddr*>(&kernel),
               sizeof(kernel)) < 0)
    return fail_errno("sock_diag: send the dump request");
  std::vector<char> buffer(64 * 1024);
  for (;;) {
    ssize_t received = ::recv(netlink, buffer.data(), buffer.size(), 0);
    if (received < 0) {
      if (errno == EINTR) continue;
      return fail_errno("sock_diag: read the dump");
    }
    auto* header = reinterpret_cast<nlmsghdr*>(buffer.data());
    size_t left = static_cast<size_t>(received);
    for (; NLMSG_OK(header, left); header = NLMSG_NEXT(header, left)) {
      if (header->nlmsg_type == NLMSG_DONE) return {};
      if (header->nlmsg_type == NLMSG_ERROR) {
        auto* error = static_cast<nlmsgerr*>(NLMSG_DATA(header));
        return fail(-error->error, "sock_diag: the kernel refused the dump ({})",
                    errno_name(-error->error));
      }
      if (header->nlmsg_type != SOCK_DIAG_BY_FAMILY) continue;
      auto* socket = static_cast<inet_diag_msg*>(NLMSG_DATA(header));
      uint64_t cookie = uint64_t{socket->id.idiag_cookie[0]} |
                        (uint64_t{socket->id.idiag_cookie[1]} << 32);
      queues[cookie] = SocketQueue{.queued = socket->idiag_rqueue,
                                   .limit = protocol == IPPROTO_TCP ? socket->idiag_wqueue : 0};
    }
  }
}

}  // namespace

Result<std::map<uint64_t, SocketQueue>> socket_queues(int protocol) {
  Fd netlink(::socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG));
  if (!netlink) return fail_errno("sock_diag: open a NETLINK_SOCK_DIAG socket");
  std::map<uint64_t, SocketQueue> queues;
  for (int family : {AF_INET, AF_INET6}) STEER_TRY(dump(netlink.get(), family, protocol, queues));
  return queues;
}

}  // namespace steer
