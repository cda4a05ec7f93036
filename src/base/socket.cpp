#include "base/socket.h"

#include <arpa/inet.h>
#include <linux/sockios.h>
#include <netinet/tcp.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <charconv>
#include <cstring>

namespace steer {

namespace {

Result<uint16_t> parse_port(std::string_view text, std::string_view whole) {
  unsigned value = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (text.empty() || ec != std::errc() || end != text.data() + text.size() || value > 65535)
    return fail(EINVAL, "'{}': the port must be a number from 0 to 65535", whole);
  return static_cast<uint16_t>(value);
}

int int_option(int fd, int level, int name) {
  int value = 0;
  socklen_t length = sizeof(value);
  if (::getsockopt(fd, level, name, &value, &length) != 0) return -1;
  return value;
}

}  // namespace

Result<SocketAddress> SocketAddress::parse(std::string_view text) {
  SocketAddress result;
  std::string host;
  std::string_view port_text;
  if (!text.empty() && text.front() == '[') {
    auto close = text.find(']');
    if (close == std::string_view::npos || close + 1 >= text.size() || text[close + 1] != ':')
      return fail(EINVAL, "'{}': write an IPv6 address with a port as [ADDRESS]:PORT", text);
    host = std::string(text.substr(1, close - 1));
    port_text = text.substr(close + 2);
    auto* sin6 = reinterpret_cast<sockaddr_in6*>(&result.storage_);
    sin6->sin6_family = AF_INET6;
    if (::inet_pton(AF_INET6, host.c_str(), &sin6->sin6_addr) != 1)
      return fail(EINVAL, "'{}': '{}' is not an IPv6 address", text, host);
  } else {
    auto colon = text.rfind(':');
    if (colon == std::string_view::npos)
      return fail(EINVAL, "'{}': write ADDRESS:PORT, e.g. 192.0.2.1:80 or [2001:db8::1]:80", text);
    host = std::string(text.substr(0, colon));
    port_text = text.substr(colon + 1);
    auto* sin = reinterpret_cast<sockaddr_in*>(&result.storage_);
    sin->sin_family = AF_INET;
    if (::inet_pton(AF_INET, host.c_str(), &sin->sin_addr) != 1)
      return fail(EINVAL, "'{}': '{}' is not an IPv4 address (put IPv6 in brackets: [::1]:80)",
                  text, host);
  }
  result.set_port(STEER_TRY(parse_port(port_text, text)));
  return result;
}

SocketAddress SocketAddress::from_sockaddr(const sockaddr* address, socklen_t length) {
  SocketAddress result;
  std::memcpy(&result.storage_, address, std::min<size_t>(length, sizeof(result.storage_)));
  return result;
}

SocketAddress SocketAddress::ipv4(uint32_t host_order_address, uint16_t port) {
  SocketAddress result;
  auto* sin = reinterpret_cast<sockaddr_in*>(&result.storage_);
  sin->sin_family = AF_INET;
  sin->sin_addr.s_addr = htonl(host_order_address);
  sin->sin_port = htons(port);
  return result;
}

SocketAddress SocketAddress::ipv6_loopback(uint16_t port) {
  SocketAddress result;
  auto* sin6 = reinterpret_cast<sockaddr_in6*>(&result.storage_);
  sin6->sin6_family = AF_INET6;
  sin6->sin6_addr = in6addr_loopback;
  sin6->sin6_port = htons(port);
  return result;
}

uint16_t SocketAddress::port() const {
  if (family() == AF_INET) return ntohs(reinterpret_cast<const sockaddr_in*>(&storage_)->sin_port);
  if (family() == AF_INET6)
    return ntohs(reinterpret_cast<const sockaddr_in6*>(&storage_)->sin6_port);
  return 0;
}

void SocketAddress::set_port(uint16_t port) {
  if (family() == AF_INET) reinterpret_cast<sockaddr_in*>(&storage_)->sin_port = htons(port);
  if (family() == AF_INET6) reinterpret_cast<sockaddr_in6*>(&storage_)->sin6_port = htons(port);
}

socklen_t SocketAddress::size() const {
  if (family() == AF_INET) return sizeof(sockaddr_in);
  if (family() == AF_INET6) return sizeof(sockaddr_in6);
  return sizeof(storage_);
}

std::string SocketAddress::address_string() const {
  char buffer[INET6_ADDRSTRLEN] = {};
  if (family() == AF_INET)
    ::inet_ntop(AF_INET, &reinterpret_cast<const sockaddr_in*>(&storage_)->sin_addr, buffer,
                sizeof(buffer));
  else if (family() == AF_INET6)
    ::inet_ntop(AF_INET6, &reinterpret_cast<const sockaddr_in6*>(&storage_)->sin6_addr, buffer,
                sizeof(buffer));
  else
    return "-";
  return buffer;
}

std::string SocketAddress::to_string() const {
  if (family() == AF_INET6) return fmt::format("[{}]:{}", address_string(), port());
  if (family() == AF_INET) return fmt::format("{}:{}", address_string(), port());
  return "-";
}

std::string_view to_string(SocketState state) {
  switch (state) {
    case SocketState::Unbound: return "unbound";
    case SocketState::Bound: return "bound";
    case SocketState::Listening: return "listening";
    case SocketState::Connected: return "connected";
  }
  return "?";
}

Result<uint64_t> socket_cookie(int fd) {
  uint64_t cookie = 0;
  socklen_t length = sizeof(cookie);
  if (::getsockopt(fd, SOL_SOCKET, SO_COOKIE, &cookie, &length) != 0)
    return fail_errno(fmt::format("read SO_COOKIE of fd {}", fd));
  return cookie;
}

Result<SocketInfo> inspect_socket(int fd) {
  struct stat st {};
  if (::fstat(fd, &st) != 0) return fail_errno(fmt::format("fd {}", fd));
  if (!S_ISSOCK(st.st_mode)) return fail(ENOTSOCK, "fd {} is not a socket", fd);

  SocketInfo info;
  info.family = int_option(fd, SOL_SOCKET, SO_DOMAIN);
  info.type = int_option(fd, SOL_SOCKET, SO_TYPE);
  info.protocol = int_option(fd, SOL_SOCKET, SO_PROTOCOL);
  if (info.family < 0 || info.type < 0) return fail_errno(fmt::format("inspect socket fd {}", fd));
  if (info.family != AF_INET && info.family != AF_INET6) info.protocol = 0;
  info.reuseport = int_option(fd, SOL_SOCKET, SO_REUSEPORT) > 0;
  if (info.family == AF_INET6) info.v6only = int_option(fd, IPPROTO_IPV6, IPV6_V6ONLY) > 0;
  if (auto cookie = socket_cookie(fd)) info.cookie = *cookie;

  sockaddr_storage address{};
  socklen_t length = sizeof(address);
  if (::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length) == 0)
    info.local = SocketAddress::from_sockaddr(reinterpret_cast<sockaddr*>(&address), length);

  sockaddr_storage peer{};
  socklen_t peer_length = sizeof(peer);
  if (int_option(fd, SOL_SOCKET, SO_ACCEPTCONN) > 0)
    info.state = SocketState::Listening;
  else if (::getpeername(fd, reinterpret_cast<sockaddr*>(&peer), &peer_length) == 0)
    info.state = SocketState::Connected;
  else if ((info.family == AF_INET || info.family == AF_INET6) && info.local.port() != 0)
    info.state = SocketState::Bound;
  else
    info.state = SocketState::Unbound;

  // SIOCGSKNS gives an fd of the socket's network namespace.
  Fd netns(::ioctl(fd, SIOCGSKNS));
  if (netns) {
    struct stat ns {};
    if (::fstat(netns.get(), &ns) == 0) info.netns_inode = ns.st_ino;
  }
  return info;
}

Result<Fd> make_socket(int family, int type) {
  Fd fd(::socket(family, type | SOCK_CLOEXEC, 0));
  if (!fd) return fail_errno("create socket");
  return fd;
}

Result<Fd> bind_socket(int type, const SocketAddress& address, const SocketOptions& options) {
  auto fd = make_socket(address.family(), type);
  if (!fd) return fd;
  int one = 1;
  ::setsockopt(fd->get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  if (options.reuseport &&
      ::setsockopt(fd->get(), SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) != 0)
    return fail_errno("set SO_REUSEPORT");
  if (address.family() == AF_INET6) {
    int v6only = options.v6only ? 1 : 0;
    if (::setsockopt(fd->get(), IPPROTO_IPV6, IPV6_V6ONLY, &v6only, sizeof(v6only)) != 0)
      return fail_errno("set IPV6_V6ONLY");
  }
  if (::bind(fd->get(), address.data(), address.size()) != 0)
    return fail_errno("bind " + address.to_string());
  return fd;
}

Result<Fd> listen_tcp(const SocketAddress& address, const SocketOptions& options) {
  auto fd = bind_socket(SOCK_STREAM, address, options);
  if (!fd) return fd;
  if (::listen(fd->get(), options.backlog) != 0) return fail_errno("listen " + address.to_string());
  return fd;
}

Result<Fd> bind_udp(const SocketAddress& address, const SocketOptions& options) {
  return bind_socket(SOCK_DGRAM, address, options);
}

Result<Fd> connect_tcp(const SocketAddress& address) {
  auto fd = make_socket(address.family(), SOCK_STREAM);
  if (!fd) return fd;
  if (::connect(fd->get(), address.data(), address.size()) != 0)
    return fail_errno("connect to " + address.to_string());
  return fd;
}

Result<SocketAddress> local_address(int fd) {
  sockaddr_storage address{};
  socklen_t length = sizeof(address);
  if (::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length) != 0)
    return fail_errno(fmt::format("getsockname fd {}", fd));
  return SocketAddress::from_sockaddr(reinterpret_cast<sockaddr*>(&address), length);
}

}  // namespace steer
