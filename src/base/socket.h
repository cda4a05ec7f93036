// Socket addresses, and what a socket fd is: family, protocol, state, address, cookie, netns.
#pragma once

#include <netinet/in.h>
#include <sys/socket.h>

#include <cstdint>
#include <string>
#include <string_view>

#include "base/error.h"
#include "base/fd.h"

namespace steer {

// An IPv4 or IPv6 address with a port. Parses "1.2.3.4:80" and "[2001:db8::1]:80".
class SocketAddress {
 public:
  SocketAddress() = default;
  static Result<SocketAddress> parse(std::string_view text);
  static SocketAddress from_sockaddr(const sockaddr* address, socklen_t length);
  static SocketAddress ipv4(uint32_t host_order_address, uint16_t port);
  static SocketAddress ipv6_loopback(uint16_t port);
  static SocketAddress ipv4_loopback(uint16_t port) { return ipv4(INADDR_LOOPBACK, port); }

  int family() const { return storage_.ss_family; }
  uint16_t port() const;
  void set_port(uint16_t port);
  const sockaddr* data() const { return reinterpret_cast<const sockaddr*>(&storage_); }
  socklen_t size() const;
  std::string to_string() const;  // "1.2.3.4:80", "[::1]:80"
  std::string address_string() const;  // without the port

 private:
  sockaddr_storage storage_{};
};

enum class SocketState { Unbound, Bound, Listening, Connected };
std::string_view to_string(SocketState state);

struct SocketInfo {
  int family = 0;    // AF_INET, AF_INET6, AF_UNIX, ...
  int type = 0;      // SOCK_STREAM, SOCK_DGRAM
  int protocol = 0;  // IPPROTO_TCP, IPPROTO_UDP, 0 for non-IP
  SocketState state = SocketState::Unbound;
  SocketAddress local;
  bool reuseport = false;
  bool v6only = false;
  uint64_t cookie = 0;     // SO_COOKIE
  uint64_t netns_inode = 0;  // the network namespace the socket lives in
};

// Tells what `fd` is. Fails with ENOTSOCK for a non-socket, EBADF for a closed fd.
Result<SocketInfo> inspect_socket(int fd);

// SO_COOKIE of a socket.
Result<uint64_t> socket_cookie(int fd);

// Sockets for probes and tests. `reuseport` sets SO_REUSEPORT before bind.
struct SocketOptions {
  bool reuseport = false;
  bool v6only = true;
  int backlog = 128;
};
Result<Fd> make_socket(int family, int type);
Result<Fd> bind_socket(int type, const SocketAddress& address, const SocketOptions& options = {});
Result<Fd> listen_tcp(const SocketAddress& address, const SocketOptions& options = {});
Result<Fd> bind_udp(const SocketAddress& address, const SocketOptions& options = {});
// A blocking TCP connect; the error code is the connect errno (ECONNREFUSED, ...).
Result<Fd> connect_tcp(const SocketAddress& address);
// Where a bound socket ended up (port 0 resolved).
Result<SocketAddress> local_address(int fd);

}  // namespace steer
