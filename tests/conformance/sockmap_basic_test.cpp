// kernel.md B.3-4, C.11, C.13, D.18: insert, look up (cookie), delete and close, over
// TCP/UDP x IPv4/IPv6 x SOCKMAP/SOCKHASH.
#include <linux/bpf.h>

#include "bpf/map.h"
#include "support/kernel_test.h"

namespace steer::testing {
namespace {

using bpf::SockHash;
using bpf::SockMap;
using bpf::UpdateMode;

struct SocketKind {
  int family;
  int type;
  const char* name;
};

SocketAddress loopback(int family) {
  return family == AF_INET ? SocketAddress::ipv4_loopback(0) : SocketAddress::ipv6_loopback(0);
}

// A socket in the state the maps accept: TCP listening, UDP bound.
Result<Fd> ready_socket(const SocketKind& kind) {
  return kind.type == SOCK_STREAM ? listen_tcp(loopback(kind.family))
                                  : bind_udp(loopback(kind.family));
}

template <class MapT>
class SockmapBasic : public KernelTest {
 protected:
  Result<MapT> make_map() { return MapT::create("conformance", 8); }
};

using MapTypes = ::testing::Types<SockMap, SockHash<uint32_t>>;
class MapNames {
 public:
  template <class T>
  static std::string GetName(int) {
    return T::kType == BPF_MAP_TYPE_SOCKMAP ? "SOCKMAP" : "SOCKHASH";
  }
};
TYPED_TEST_SUITE(SockmapBasic, MapTypes, MapNames);

constexpr SocketKind kKinds[] = {{AF_INET, SOCK_STREAM, "tcp4"},
                                 {AF_INET6, SOCK_STREAM, "tcp6"},
                                 {AF_INET, SOCK_DGRAM, "udp4"},
                                 {AF_INET6, SOCK_DGRAM, "udp6"}};

// Insert, lookup gives the SO_COOKIE, delete, lookup -> ENOENT.
TYPED_TEST(SockmapBasic, InsertLookupDeleteGivesCookies) {
  STEER_ASSERT_OK_AND_ASSIGN(auto map, this->make_map());
  for (const auto& kind : kKinds) {
    SCOPED_TRACE(kind.name);
    STEER_ASSERT_OK_AND_ASSIGN(Fd socket, ready_socket(kind));
    STEER_ASSERT_OK_AND_ASSIGN(uint64_t cookie, socket_cookie(socket.get()));
    STEER_ASSERT_OK(map.insert(1, socket.get(), UpdateMode::NoExist));
    STEER_ASSERT_OK_AND_ASSIGN(uint64_t stored, map.cookie_at(1));
    EXPECT_EQ(stored, cookie);
    STEER_ASSERT_OK(map.erase(1));
    STEER_EXPECT_ERRNO(map.cookie_at(1), ENOENT);
  }
}

// D.18: closing the socket removes it from the map by itself.
TYPED_TEST(SockmapBasic, CloseRemovesTheSocket) {
  STEER_ASSERT_OK_AND_ASSIGN(auto map, this->make_map());
  for (const auto& kind : kKinds) {
    SCOPED_TRACE(kind.name);
    STEER_ASSERT_OK_AND_ASSIGN(Fd socket, ready_socket(kind));
    STEER_ASSERT_OK(map.insert(2, socket.get()));
    STEER_ASSERT_OK(map.cookie_at(2));
    socket.reset();
    STEER_EXPECT_ERRNO(map.cookie_at(2), ENOENT);
  }
}

// B.3: TCP that is not listening is refused.
TYPED_TEST(SockmapBasic, TcpNotListeningIsRefused) {
  STEER_ASSERT_OK_AND_ASSIGN(auto map, this->make_map());
  for (int family : {AF_INET, AF_INET6}) {
    STEER_ASSERT_OK_AND_ASSIGN(Fd unbound, make_socket(family, SOCK_STREAM));
    STEER_EXPECT_ERRNO(map.insert(0, unbound.get()), EOPNOTSUPP);
    STEER_ASSERT_OK_AND_ASSIGN(Fd bound, bind_socket(SOCK_STREAM, loopback(family)));
    STEER_EXPECT_ERRNO(map.insert(0, bound.get()), EOPNOTSUPP);
  }
}

}  // namespace
}  // namespace steer::testing
