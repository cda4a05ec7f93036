#include "daemon/socket_watch.h"

#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/sock_diag.h>
#include <sys/socket.h>

#include <cstring>
#include <optional>

namespace steer::daemon {

Result<SocketWatch> SocketWatch::open(const NetNamespace* netns) {
  std::optional<ScopedNetns> inside;
  if (netns != nullptr) inside.emplace(STEER_TRY(ScopedNetns::enter(*netns)));
  Fd socket(::socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC | SOCK_NONBLOCK, NETLINK_SOCK_DIAG));
  if (!socket) return fail_errno("opening a sock_diag netlink socket");
  int buffer = 4 << 20;
  (void)::setsockopt(socket.get(), SOL_SOCKET, SO_RCVBUFFORCE, &buffer, sizeof(buffer));
  sockaddr_nl address{};
  address.nl_family = AF_NETLINK;
  for (int group : {SKNLGRP_INET_TCP_DESTROY, SKNLGRP_INET_UDP_DESTROY,
                    SKNLGRP_INET6_TCP_DESTROY, SKNLGRP_INET6_UDP_DESTROY})
    address.nl_groups |= 1u << (group - 1);
  if (::bind(socket.get(), reinterpret_cast<sockaddr*>(&address), sizeof(address)) != 0)
    return fail_errno("subscribing to socket destroy notices (sock_diag)");
  return SocketWatch(std::move(socket));
}

Result<SocketWatch::Destroyed> SocketWatch::read() {
  Destroyed destroyed;
  alignas(nlmsghdr) char buffer[64 * 1024];
  for (;;) {
    ssize_t got = ::recv(socket_.get(), buffer, sizeof(buffer), MSG_DONTWAIT);
    if (got < 0 && errno == EINTR) continue;
    if (got < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return destroyed;
    if (got < 0 && errno == ENOBUFS) {
      destroyed.overflowed = true;
      continue;
    }
    if (got < 0) return fail_errno("reading socket destroy notices");
    auto length = static_cast<unsigned>(got);
    for (auto* header = reinterpret_cast<nlmsghdr*>(buffer); NLMSG_OK(header, length);
         header = NLMSG_NEXT(header, length)) {
      if (header->nlmsg_type != SOCK_DIAG_BY_FAMILY ||
          header->nlmsg_len < NLMSG_LENGTH(sizeof(inet_diag_msg)))
        continue;
      inet_diag_msg message;
      std::memcpy(&message, NLMSG_DATA(header), sizeof(message));
      uint64_t cookie = uint64_t{message.id.idiag_cookie[0]} |
                        (uint64_t{message.id.idiag_cookie[1]} << 32);
      destroyed.cookies.push_back(cookie);
    }
  }
}

}  // namespace steer::daemon
