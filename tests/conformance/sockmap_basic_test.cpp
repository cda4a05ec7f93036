// kernel.md B.3-4, B.9-10, C.11, C.13, C.15, D.18-20: insert, look up (cookie), overwrite,
// share, iterate, delete and close, over TCP/UDP x IPv4/IPv6 x SOCKMAP/SOCKHASH.
#include <linux/bpf.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>

#include <algorithm>
#include <chrono>
#include <ostream>
#include <set>
#include <string>
#include <tuple>
#include <utility>
#include <variant>
#include <vector>

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

// ---------------------------------------------------------------------------------------------
// Value-parameterized tests: a u32-keyed SOCKMAP or SOCKHASH chosen at run time.

class AnySocketMap {
 public:
  static Result<AnySocketMap> create(bpf_map_type type, uint32_t max_entries = 8) {
    if (type == BPF_MAP_TYPE_SOCKMAP) {
      auto map = SockMap::create("conformance", max_entries);
      if (!map) return std::unexpected(map.error());
      return AnySocketMap(std::move(*map));
    }
    auto map = SockHash<uint32_t>::create("conformance", max_entries);
    if (!map) return std::unexpected(map.error());
    return AnySocketMap(std::move(*map));
  }

  Result<void> insert(uint32_t key, int socket_fd, UpdateMode mode = UpdateMode::Any) const {
    return std::visit([&](const auto& map) { return map.insert(key, socket_fd, mode); }, map_);
  }
  Result<uint64_t> cookie_at(uint32_t key) const {
    return std::visit([&](const auto& map) { return map.cookie_at(key); }, map_);
  }
  Result<void> erase(uint32_t key) const {
    return std::visit([&](const auto& map) { return map.erase(key); }, map_);
  }
  Result<std::vector<bpf::SocketEntry<uint32_t>>> entries() const {
    return std::visit([&](const auto& map) { return map.entries(); }, map_);
  }
  const bpf::Map& raw() const {
    return std::visit([&](const auto& map) -> const bpf::Map& { return map.map(); }, map_);
  }

 private:
  template <class MapT>
  explicit AnySocketMap(MapT map) : map_(std::move(map)) {}
  std::variant<SockMap, SockHash<uint32_t>> map_;
};

const char* map_type_name(bpf_map_type type) {
  return type == BPF_MAP_TYPE_SOCKMAP ? "SOCKMAP" : "SOCKHASH";
}

// The occupied entries as (key, cookie) pairs, sorted by key, for whole-map comparisons.
using EntryList = std::vector<std::pair<uint32_t, uint64_t>>;
Result<EntryList> entry_list(const AnySocketMap& map) {
  auto entries = map.entries();
  if (!entries) return std::unexpected(entries.error());
  EntryList list;
  for (const auto& entry : *entries) list.emplace_back(entry.key, entry.cookie);
  std::sort(list.begin(), list.end());
  return list;
}

uint64_t cookie_of(const Fd& socket) { return socket_cookie(socket.get()).value_or(0); }

// Waits (bounded, 2 s) until `listener_fd` holds `count` connections in its accept queue. For
// a listener, TCP_INFO's tcpi_unacked is the accept-queue length.
bool wait_for_accept_queue(int listener_fd, unsigned count) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(2);
  while (std::chrono::steady_clock::now() < deadline) {
    tcp_info info{};
    socklen_t length = sizeof(info);
    if (::getsockopt(listener_fd, IPPROTO_TCP, TCP_INFO, &info, &length) != 0) return false;
    if (info.tcpi_unacked >= count) return true;
    ::poll(nullptr, 0, 1);
  }
  return false;
}

// Connects a client to `listener` and accepts it; fails after 2 s without a queued connection.
Result<std::pair<Fd, Fd>> connect_and_accept(const Fd& listener) {
  auto address = local_address(listener.get());
  if (!address) return std::unexpected(address.error());
  auto client = connect_tcp(*address);
  if (!client) return std::unexpected(client.error());
  if (!wait_for_accept_queue(listener.get(), 1))
    return fail(ETIMEDOUT, "no connection in the accept queue of {} after 2 s",
                address->to_string());
  Fd accepted = accept_now(listener.get());
  if (!accepted) return fail_errno("accept on " + address->to_string());
  return std::pair{std::move(*client), std::move(accepted)};
}

// Waits (bounded, 2 s) for `fd` to have an event in `events`; returns the revents (0: none).
short wait_for_event(int fd, short events) {
  pollfd entry{.fd = fd, .events = events, .revents = 0};
  return ::poll(&entry, 1, 2000) == 1 ? entry.revents : 0;
}

const SocketKind kTcpKinds[] = {{AF_INET, SOCK_STREAM, "tcp4"}, {AF_INET6, SOCK_STREAM, "tcp6"}};
constexpr bpf_map_type kMapTypes[] = {BPF_MAP_TYPE_SOCKMAP, BPF_MAP_TYPE_SOCKHASH};

void PrintTo(const SocketKind& kind, std::ostream* os) { *os << kind.name; }

using KindAndMap = std::tuple<SocketKind, bpf_map_type>;
std::string kind_and_map_name(const ::testing::TestParamInfo<KindAndMap>& info) {
  return fmt::format("{}_{}", std::get<0>(info.param).name, map_type_name(std::get<1>(info.param)));
}

class KindAndMapTest : public KernelTest, public ::testing::WithParamInterface<KindAndMap> {
 protected:
  const SocketKind& kind() const { return std::get<0>(GetParam()); }
  bpf_map_type map_type() const { return std::get<1>(GetParam()); }
};

// ---------------------------------------------------------------------------------------------
// B.4: established sockets, both ends of a connection.

class SockmapEstablished : public KindAndMapTest {};

// B.4: a listener, the client socket and the accepted child all go in, each with its cookie.
TEST_P(SockmapEstablished, BothEndsAreAccepted) {
  STEER_ASSERT_OK_AND_ASSIGN(auto map, AnySocketMap::create(map_type()));
  STEER_ASSERT_OK_AND_ASSIGN(Fd listener, ready_socket(kind()));
  STEER_ASSERT_OK_AND_ASSIGN(auto connection, connect_and_accept(listener));
  auto& [client, accepted] = connection;
  STEER_ASSERT_OK(map.insert(0, listener.get(), UpdateMode::NoExist));
  STEER_ASSERT_OK(map.insert(1, client.get(), UpdateMode::NoExist));
  STEER_ASSERT_OK(map.insert(2, accepted.get(), UpdateMode::NoExist));
  STEER_ASSERT_OK_AND_ASSIGN(EntryList entries, entry_list(map));
  EXPECT_EQ(entries, (EntryList{{0, cookie_of(listener)}, {1, cookie_of(client)},
                                {2, cookie_of(accepted)}}));
  EXPECT_EQ(std::set<uint64_t>({cookie_of(listener), cookie_of(client), cookie_of(accepted)})
                .size(),
            3u);
}

INSTANTIATE_TEST_SUITE_P(, SockmapEstablished,
                         ::testing::Combine(::testing::ValuesIn(kTcpKinds),
                                            ::testing::ValuesIn(kMapTypes)),
                         kind_and_map_name);

// ---------------------------------------------------------------------------------------------
// B.9: overwriting a slot.

class SockmapOverwrite : public KindAndMapTest {};

// B.9: the new socket takes the slot; the old one is unlinked from it and can go elsewhere.
TEST_P(SockmapOverwrite, OldSocketLeavesTheSlot) {
  STEER_ASSERT_OK_AND_ASSIGN(auto map, AnySocketMap::create(map_type()));
  STEER_ASSERT_OK_AND_ASSIGN(Fd old_socket, ready_socket(kind()));
  STEER_ASSERT_OK_AND_ASSIGN(Fd new_socket, ready_socket(kind()));
  STEER_ASSERT_OK(map.insert(1, old_socket.get()));
  STEER_ASSERT_OK(map.insert(1, new_socket.get(), UpdateMode::Exist));
  STEER_ASSERT_OK_AND_ASSIGN(uint64_t stored, map.cookie_at(1));
  EXPECT_EQ(stored, cookie_of(new_socket));
  STEER_ASSERT_OK_AND_ASSIGN(EntryList after_overwrite, entry_list(map));
  EXPECT_EQ(after_overwrite, (EntryList{{1, cookie_of(new_socket)}}));

  // The old socket is free to be inserted again, even with BPF_NOEXIST.
  STEER_ASSERT_OK(map.insert(2, old_socket.get(), UpdateMode::NoExist));
  STEER_ASSERT_OK_AND_ASSIGN(uint64_t moved, map.cookie_at(2));
  EXPECT_EQ(moved, cookie_of(old_socket));

  // Closing the new socket empties slot 1 only.
  new_socket.reset();
  STEER_ASSERT_OK_AND_ASSIGN(EntryList after_close, entry_list(map));
  EXPECT_EQ(after_close, (EntryList{{2, cookie_of(old_socket)}}));
}

INSTANTIATE_TEST_SUITE_P(, SockmapOverwrite,
                         ::testing::Combine(::testing::ValuesIn(kKinds),
                                            ::testing::ValuesIn(kMapTypes)),
                         kind_and_map_name);

// ---------------------------------------------------------------------------------------------
// B.10 and D.18: one socket in several slots of several maps.

class SockmapSharing : public KernelTest, public ::testing::WithParamInterface<SocketKind> {};

// B.10: the same socket at two keys of a SOCKMAP and two keys of a SOCKHASH; deleting one
// entry leaves the others; closing the socket empties all of them.
TEST_P(SockmapSharing, OneSocketInTwoMapsAtTwoKeys) {
  STEER_ASSERT_OK_AND_ASSIGN(auto sockmap, AnySocketMap::create(BPF_MAP_TYPE_SOCKMAP));
  STEER_ASSERT_OK_AND_ASSIGN(auto sockhash, AnySocketMap::create(BPF_MAP_TYPE_SOCKHASH));
  STEER_ASSERT_OK_AND_ASSIGN(Fd socket, ready_socket(GetParam()));
  const uint64_t cookie = cookie_of(socket);
  for (const AnySocketMap* map : {&sockmap, &sockhash}) {
    STEER_ASSERT_OK(map->insert(1, socket.get(), UpdateMode::NoExist));
    STEER_ASSERT_OK(map->insert(5, socket.get(), UpdateMode::NoExist));
  }
  for (const AnySocketMap* map : {&sockmap, &sockhash}) {
    STEER_ASSERT_OK_AND_ASSIGN(EntryList entries, entry_list(*map));
    EXPECT_EQ(entries, (EntryList{{1, cookie}, {5, cookie}}));
  }

  STEER_ASSERT_OK(sockhash.erase(5));
  STEER_ASSERT_OK_AND_ASSIGN(EntryList sockmap_entries, entry_list(sockmap));
  EXPECT_EQ(sockmap_entries, (EntryList{{1, cookie}, {5, cookie}}));
  STEER_ASSERT_OK_AND_ASSIGN(EntryList sockhash_entries, entry_list(sockhash));
  EXPECT_EQ(sockhash_entries, (EntryList{{1, cookie}}));

  socket.reset();
  for (const AnySocketMap* map : {&sockmap, &sockhash}) {
    STEER_EXPECT_ERRNO(map->cookie_at(1), ENOENT);
    STEER_EXPECT_ERRNO(map->cookie_at(5), ENOENT);
    STEER_ASSERT_OK_AND_ASSIGN(EntryList entries, entry_list(*map));
    EXPECT_TRUE(entries.empty());
  }
}

INSTANTIATE_TEST_SUITE_P(, SockmapSharing, ::testing::ValuesIn(kKinds),
                         [](const auto& info) { return std::string(info.param.name); });

// ---------------------------------------------------------------------------------------------
// C.15: get_next_key.

class SockmapIteration : public KernelTest {};

// Every key get_next_key yields from the start, in order, until ENOENT (at most `limit`).
Result<std::vector<uint32_t>> walk_keys(const bpf::Map& map, size_t limit = 64) {
  std::vector<uint32_t> keys;
  uint32_t key = 0, next = 0;
  for (const uint32_t* previous = nullptr; keys.size() < limit; previous = &key) {
    auto stepped = map.next_key(previous, &next);
    if (!stepped) {
      if (stepped.error().code == ENOENT) return keys;
      return std::unexpected(stepped.error());
    }
    keys.push_back(next);
    key = next;
  }
  return fail(ELOOP, "get_next_key did not end after {} keys", limit);
}

// C.15: a SOCKMAP walks every index, occupied or not; entries() keeps only the occupied ones.
TEST_F(SockmapIteration, SockmapWalksEveryIndex) {
  STEER_ASSERT_OK_AND_ASSIGN(auto map, AnySocketMap::create(BPF_MAP_TYPE_SOCKMAP, 5));
  STEER_ASSERT_OK_AND_ASSIGN(std::vector<uint32_t> empty_walk, walk_keys(map.raw()));
  EXPECT_EQ(empty_walk, (std::vector<uint32_t>{0, 1, 2, 3, 4}));

  STEER_ASSERT_OK_AND_ASSIGN(Fd socket, listen_tcp(SocketAddress::ipv4_loopback(0)));
  STEER_ASSERT_OK(map.insert(2, socket.get()));
  STEER_ASSERT_OK_AND_ASSIGN(std::vector<uint32_t> walk, walk_keys(map.raw()));
  EXPECT_EQ(walk, (std::vector<uint32_t>{0, 1, 2, 3, 4}));
  STEER_ASSERT_OK_AND_ASSIGN(EntryList entries, entry_list(map));
  EXPECT_EQ(entries, (EntryList{{2, cookie_of(socket)}}));

  // From the last index: the end. From an index past the end: back to 0.
  uint32_t next = 99;
  uint32_t last = 4, past_the_end = 7;
  STEER_EXPECT_ERRNO(map.raw().next_key(&last, &next), ENOENT);
  STEER_ASSERT_OK(map.raw().next_key(&past_the_end, &next));
  EXPECT_EQ(next, 0u);
}

// C.15: a SOCKHASH walks only its existing keys; a missing start key restarts at the first.
TEST_F(SockmapIteration, SockhashWalksOnlyExistingKeys) {
  STEER_ASSERT_OK_AND_ASSIGN(auto map, AnySocketMap::create(BPF_MAP_TYPE_SOCKHASH, 8));
  STEER_ASSERT_OK_AND_ASSIGN(std::vector<uint32_t> empty_walk, walk_keys(map.raw()));
  EXPECT_TRUE(empty_walk.empty());

  STEER_ASSERT_OK_AND_ASSIGN(Fd tcp, listen_tcp(SocketAddress::ipv4_loopback(0)));
  STEER_ASSERT_OK_AND_ASSIGN(Fd udp, bind_udp(SocketAddress::ipv6_loopback(0)));
  STEER_ASSERT_OK(map.insert(7, tcp.get()));
  STEER_ASSERT_OK(map.insert(42, udp.get()));
  STEER_ASSERT_OK(map.insert(100000, tcp.get()));
  STEER_ASSERT_OK_AND_ASSIGN(std::vector<uint32_t> walk, walk_keys(map.raw()));
  std::vector<uint32_t> sorted_walk = walk;
  std::sort(sorted_walk.begin(), sorted_walk.end());
  EXPECT_EQ(sorted_walk, (std::vector<uint32_t>{7, 42, 100000}));
  STEER_ASSERT_OK_AND_ASSIGN(EntryList entries, entry_list(map));
  EXPECT_EQ(entries, (EntryList{{7, cookie_of(tcp)}, {42, cookie_of(udp)},
                                {100000, cookie_of(tcp)}}));

  uint32_t missing = 99, next = 0;
  STEER_ASSERT_OK(map.raw().next_key(&missing, &next));
  ASSERT_FALSE(walk.empty());
  EXPECT_EQ(next, walk.front());
}

// ---------------------------------------------------------------------------------------------
// D.19 and D.20: listener lifecycle.

class SockmapLifecycle : public KindAndMapTest {};

// D.19 (differs from kernel.md): connect(AF_UNSPEC) unhashes a listener (it stops listening
// and its port refuses connections) but it STAYS in the map. Upstream b8b8315e39ff ("bpf,
// sockmap: Remove unhash handler for BPF sockmap usage", 5.16, also 5.15.y) dropped the TCP
// unhash hook: only close (or a delete) removes a socket. steer must not rely on unhashing.
TEST_P(SockmapLifecycle, UnhashedListenerStaysInTheMap) {
  STEER_ASSERT_OK_AND_ASSIGN(auto map, AnySocketMap::create(map_type()));
  STEER_ASSERT_OK_AND_ASSIGN(Fd listener, ready_socket(kind()));
  STEER_ASSERT_OK_AND_ASSIGN(SocketAddress address, local_address(listener.get()));
  const uint64_t cookie = cookie_of(listener);
  STEER_ASSERT_OK(map.insert(0, listener.get()));
  STEER_ASSERT_OK(map.insert(3, listener.get()));
  sockaddr unspecified{.sa_family = AF_UNSPEC, .sa_data = {}};
  ASSERT_EQ(::connect(listener.get(), &unspecified, sizeof(unspecified)), 0)
      << "connect(AF_UNSPEC): " << errno_name(errno);

  // Unhashed: no longer listening, and nothing answers on its old address.
  int accepting = -1;
  socklen_t length = sizeof(accepting);
  ASSERT_EQ(::getsockopt(listener.get(), SOL_SOCKET, SO_ACCEPTCONN, &accepting, &length), 0);
  EXPECT_EQ(accepting, 0);
  EXPECT_EQ(errno_name(tcp_connect_errno(address)), errno_name(ECONNREFUSED));
  // ... yet both entries are still there.
  STEER_ASSERT_OK_AND_ASSIGN(EntryList entries, entry_list(map));
  EXPECT_EQ(entries, (EntryList{{0, cookie}, {3, cookie}}));

  // It can listen again, and is still the socket in the map; only close removes it.
  ASSERT_EQ(::listen(listener.get(), 16), 0) << "listen again: " << errno_name(errno);
  STEER_EXPECT_ERRNO(map.insert(0, listener.get(), UpdateMode::NoExist), EEXIST);
  listener.reset();
  STEER_ASSERT_OK_AND_ASSIGN(EntryList after_close, entry_list(map));
  EXPECT_TRUE(after_close.empty());
}

// D.20: accepted children are not in the map and carry no map state: each goes in with
// BPF_NOEXIST at a key of its own.
TEST_P(SockmapLifecycle, AcceptedChildrenAreNotInTheMap) {
  STEER_ASSERT_OK_AND_ASSIGN(auto map, AnySocketMap::create(map_type()));
  STEER_ASSERT_OK_AND_ASSIGN(Fd listener, ready_socket(kind()));
  STEER_ASSERT_OK(map.insert(0, listener.get()));
  STEER_ASSERT_OK_AND_ASSIGN(auto first, connect_and_accept(listener));
  STEER_ASSERT_OK_AND_ASSIGN(auto second, connect_and_accept(listener));
  const Fd& first_child = first.second;
  const Fd& second_child = second.second;

  STEER_ASSERT_OK_AND_ASSIGN(EntryList before, entry_list(map));
  EXPECT_EQ(before, (EntryList{{0, cookie_of(listener)}}));

  STEER_ASSERT_OK(map.insert(1, first_child.get(), UpdateMode::NoExist));
  STEER_ASSERT_OK(map.insert(2, second_child.get(), UpdateMode::NoExist));
  STEER_ASSERT_OK_AND_ASSIGN(EntryList after, entry_list(map));
  EXPECT_EQ(after, (EntryList{{0, cookie_of(listener)},
                              {1, cookie_of(first_child)},
                              {2, cookie_of(second_child)}}));
}

// D.20: after the listener is deleted from the map, it keeps accepting, and data flows.
TEST_P(SockmapLifecycle, PassiveOpensWorkAfterDelete) {
  STEER_ASSERT_OK_AND_ASSIGN(auto map, AnySocketMap::create(map_type()));
  STEER_ASSERT_OK_AND_ASSIGN(Fd listener, ready_socket(kind()));
  STEER_ASSERT_OK(map.insert(0, listener.get()));
  STEER_ASSERT_OK_AND_ASSIGN(auto while_in_map, connect_and_accept(listener));
  STEER_ASSERT_OK(map.erase(0));
  STEER_ASSERT_OK_AND_ASSIGN(auto after_delete, connect_and_accept(listener));

  for (auto* connection : {&while_in_map, &after_delete}) {
    auto& [client, accepted] = *connection;
    ASSERT_EQ(::send(client.get(), "ping", 4, MSG_NOSIGNAL), 4) << errno_name(errno);
    ASSERT_TRUE(wait_for_event(accepted.get(), POLLIN) & POLLIN) << "no data after 2 s";
    char buffer[8] = {};
    EXPECT_EQ(::recv(accepted.get(), buffer, sizeof(buffer), MSG_DONTWAIT), 4);
    EXPECT_EQ(std::string(buffer, 4), "ping");
  }
}

// D.20: closing a listener (in the map at two keys) with never-accepted children queued is
// clean: its entries go, each queued client gets a reset, and the keys are free again.
TEST_P(SockmapLifecycle, ClosingListenerWithQueuedChildren) {
  constexpr unsigned kQueued = 3;
  STEER_ASSERT_OK_AND_ASSIGN(auto map, AnySocketMap::create(map_type()));
  STEER_ASSERT_OK_AND_ASSIGN(Fd listener, ready_socket(kind()));
  STEER_ASSERT_OK_AND_ASSIGN(SocketAddress address, local_address(listener.get()));
  STEER_ASSERT_OK(map.insert(0, listener.get()));
  STEER_ASSERT_OK(map.insert(1, listener.get()));
  std::vector<Fd> clients;
  for (unsigned i = 0; i < kQueued; ++i) {
    STEER_ASSERT_OK_AND_ASSIGN(Fd client, connect_tcp(address));
    clients.push_back(std::move(client));
  }
  ASSERT_TRUE(wait_for_accept_queue(listener.get(), kQueued))
      << kQueued << " connections did not reach the accept queue in 2 s";

  listener.reset();
  STEER_ASSERT_OK_AND_ASSIGN(EntryList entries, entry_list(map));
  EXPECT_TRUE(entries.empty());
  for (const Fd& client : clients) {
    ASSERT_NE(wait_for_event(client.get(), POLLIN), 0) << "client saw nothing in 2 s";
    char byte = 0;
    EXPECT_EQ(::recv(client.get(), &byte, 1, MSG_DONTWAIT), -1);
    EXPECT_EQ(errno_name(errno), errno_name(ECONNRESET));
  }

  STEER_ASSERT_OK_AND_ASSIGN(Fd replacement, ready_socket(kind()));
  STEER_ASSERT_OK(map.insert(0, replacement.get(), UpdateMode::NoExist));
  STEER_ASSERT_OK(map.insert(1, replacement.get(), UpdateMode::NoExist));
}

INSTANTIATE_TEST_SUITE_P(, SockmapLifecycle,
                         ::testing::Combine(::testing::ValuesIn(kTcpKinds),
                                            ::testing::ValuesIn(kMapTypes)),
                         kind_and_map_name);

}  // namespace
}  // namespace steer::testing
