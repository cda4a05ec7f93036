// kernel.md A.1, B.2, B.5-8, C.12, C.14: what socket maps refuse, and with which errno, when
// driven from the bpf() syscall.
#include <bpf/bpf.h>
#include <fcntl.h>
#include <linux/bpf.h>
#include <linux/capability.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <climits>
#include <ostream>
#include <string>
#include <tuple>

#include "bpf/map.h"
#include "support/kernel_test.h"

namespace steer::testing {
namespace {

using bpf::Map;
using bpf::UpdateMode;

const char* map_type_name(bpf_map_type type) {
  return type == BPF_MAP_TYPE_SOCKMAP ? "SOCKMAP" : "SOCKHASH";
}

SocketAddress loopback(int family) {
  return family == AF_INET ? SocketAddress::ipv4_loopback(0) : SocketAddress::ipv6_loopback(0);
}

// A u32-keyed socket map with u64 values (the layout steer uses) as a raw Map, so tests can pass
// any value and any flags.
Result<Map> make_socket_map(bpf_map_type type, uint32_t max_entries = 8,
                            uint32_t value_size = sizeof(uint64_t)) {
  return Map::create(type, "conformance", sizeof(uint32_t), value_size, max_entries);
}

// bpf_map_update_elem with a socket fd as the u64 value and raw flags.
Result<void> update_raw(const Map& map, uint32_t key, uint64_t value, uint64_t flags) {
  int ret = bpf_map_update_elem(map.fd(), &key, &value, flags);
  if (ret < 0) return fail_errno(-ret, fmt::format("update key {} (flags {:#x})", key, flags));
  return {};
}

Result<void> insert(const Map& map, uint32_t key, int socket_fd,
                    UpdateMode mode = UpdateMode::Any) {
  return update_raw(map, key, static_cast<uint32_t>(socket_fd), static_cast<uint64_t>(mode));
}

Result<uint64_t> cookie_at(const Map& map, uint32_t key) {
  uint64_t cookie = 0;
  if (auto found = map.lookup(&key, &cookie); !found) return std::unexpected(found.error());
  return cookie;
}

// Waits (bounded) for `fd` to become readable; for a listener: a connection is queued.
bool wait_readable(int fd, int timeout_ms = 2000) {
  pollfd entry{.fd = fd, .events = POLLIN, .revents = 0};
  return ::poll(&entry, 1, timeout_ms) == 1 && (entry.revents & POLLIN);
}

// A connected TCP pair over loopback: the client end and the accepted end.
struct TcpPair {
  Fd listener, client, accepted;
};
Result<TcpPair> connected_tcp_pair(int family) {
  TcpPair pair;
  auto listener = listen_tcp(loopback(family));
  if (!listener) return std::unexpected(listener.error());
  pair.listener = std::move(*listener);
  auto address = local_address(pair.listener.get());
  if (!address) return std::unexpected(address.error());
  auto client = connect_tcp(*address);
  if (!client) return std::unexpected(client.error());
  pair.client = std::move(*client);
  if (!wait_readable(pair.listener.get())) return fail(ETIMEDOUT, "no connection queued in 2 s");
  pair.accepted = accept_now(pair.listener.get());
  if (!pair.accepted) return fail_errno("accept");
  return pair;
}

// ---------------------------------------------------------------------------------------------
// A.1: map creation checks.

struct CreateCase {
  const char* name;
  bpf_map_type type;
  uint32_t key_size;
  uint32_t value_size;
  uint32_t max_entries;
  uint32_t flags;
  int expected_errno;  // 0: creation succeeds
};

void PrintTo(const CreateCase& c, std::ostream* os) { *os << c.name; }

class SockmapCreate : public KernelTest, public ::testing::WithParamInterface<CreateCase> {};

// A.1: key, value and size limits of SOCKMAP and SOCKHASH creation.
TEST_P(SockmapCreate, CreationChecksSizes) {
  const CreateCase& c = GetParam();
  auto map = Map::create(c.type, "conformance", c.key_size, c.value_size, c.max_entries, c.flags);
  if (c.expected_errno == 0) {
    ASSERT_TRUE(map.has_value()) << map.error().message;
    EXPECT_EQ(map->key_size(), c.key_size);
    EXPECT_EQ(map->value_size(), c.value_size);
  } else {
    STEER_EXPECT_ERRNO(std::move(map), c.expected_errno);
  }
}

constexpr auto kSockmap = BPF_MAP_TYPE_SOCKMAP;
constexpr auto kSockhash = BPF_MAP_TYPE_SOCKHASH;
const CreateCase kCreateCases[] = {
    {"SOCKMAP_key4_ok", kSockmap, 4, 8, 8, 0, 0},
    {"SOCKMAP_key0", kSockmap, 0, 8, 8, 0, EINVAL},
    {"SOCKMAP_key8", kSockmap, 8, 8, 8, 0, EINVAL},
    {"SOCKHASH_key0", kSockhash, 0, 8, 8, 0, EINVAL},
    {"SOCKHASH_key1_ok", kSockhash, 1, 8, 8, 0, 0},
    {"SOCKHASH_key512_ok", kSockhash, 512, 8, 8, 0, 0},
    {"SOCKHASH_key513", kSockhash, 513, 8, 8, 0, E2BIG},
    {"SOCKMAP_value4_ok", kSockmap, 4, 4, 8, 0, 0},
    {"SOCKHASH_value4_ok", kSockhash, 4, 4, 8, 0, 0},
    {"SOCKMAP_value0", kSockmap, 4, 0, 8, 0, EINVAL},
    {"SOCKMAP_value2", kSockmap, 4, 2, 8, 0, EINVAL},
    {"SOCKMAP_value16", kSockmap, 4, 16, 8, 0, EINVAL},
    {"SOCKHASH_value0", kSockhash, 4, 0, 8, 0, EINVAL},
    {"SOCKHASH_value2", kSockhash, 4, 2, 8, 0, EINVAL},
    {"SOCKHASH_value16", kSockhash, 4, 16, 8, 0, EINVAL},
    {"SOCKMAP_max_entries0", kSockmap, 4, 8, 0, 0, EINVAL},
    {"SOCKHASH_max_entries0", kSockhash, 4, 8, 0, 0, EINVAL},
    {"SOCKMAP_flag_no_prealloc", kSockmap, 4, 8, 8, BPF_F_NO_PREALLOC, EINVAL},
    {"SOCKHASH_flag_no_prealloc", kSockhash, 4, 8, 8, BPF_F_NO_PREALLOC, EINVAL},
};
INSTANTIATE_TEST_SUITE_P(, SockmapCreate, ::testing::ValuesIn(kCreateCases),
                         [](const auto& info) { return std::string(info.param.name); });

// A.1: without CAP_NET_ADMIN creation fails with EPERM. The check is bpf_token_capable(), which
// also accepts CAP_SYS_ADMIN, so the child drops both (and keeps CAP_BPF, so the generic
// "unprivileged BPF disabled" check passes and only the socket-map check can refuse).
class SockmapCapability : public KernelTest,
                          public ::testing::WithParamInterface<bpf_map_type> {};

// Runs `create` in a forked child whose effective set lacks `dropped`; returns the child's
// errno (0 on success) or -1 if the child could not drop the capabilities.
template <class Create>
int errno_in_child_without(std::initializer_list<int> dropped, Create create) {
  pid_t child = ::fork();
  if (child == 0) {
    __user_cap_header_struct header{.version = _LINUX_CAPABILITY_VERSION_3, .pid = 0};
    __user_cap_data_struct data[2] = {};
    if (::syscall(SYS_capget, &header, data) != 0) ::_exit(255);
    for (int capability : dropped) data[capability / 32].effective &= ~(1u << (capability % 32));
    if (::syscall(SYS_capset, &header, data) != 0) ::_exit(255);
    int code = create();
    ::_exit(code);
  }
  int status = 0;
  if (child < 0 || ::waitpid(child, &status, 0) != child || !WIFEXITED(status)) return -1;
  return WEXITSTATUS(status) == 255 ? -1 : WEXITSTATUS(status);
}

std::string outcome(int child_errno) {
  if (child_errno < 0) return "the child could not drop its capabilities";
  return child_errno == 0 ? "success" : errno_name(child_errno);
}

TEST_P(SockmapCapability, CreationNeedsNetAdminOrSysAdmin) {
  bpf_map_type type = GetParam();
  auto create = [type] {
    int fd = bpf_map_create(type, "conformance", 4, 8, 8, nullptr);
    return fd < 0 ? -fd : 0;
  };
  auto create_array = [] {
    int fd = bpf_map_create(BPF_MAP_TYPE_ARRAY, "conformance", 4, 8, 8, nullptr);
    return fd < 0 ? -fd : 0;
  };
  EXPECT_EQ(outcome(errno_in_child_without({CAP_NET_ADMIN}, create)), "success")
      << "CAP_SYS_ADMIN alone is enough";
  EXPECT_EQ(outcome(errno_in_child_without({CAP_NET_ADMIN, CAP_SYS_ADMIN}, create)), "EPERM");
  // Control: the same child can still create a plain array map (CAP_BPF is kept).
  EXPECT_EQ(outcome(errno_in_child_without({CAP_NET_ADMIN, CAP_SYS_ADMIN}, create_array)),
            "success");
}

INSTANTIATE_TEST_SUITE_P(, SockmapCapability, ::testing::Values(kSockmap, kSockhash),
                         [](const auto& info) { return std::string(map_type_name(info.param)); });

// ---------------------------------------------------------------------------------------------
// B.2: values that are not a usable socket fd.

enum class BadValue { MinusOne, IntMaxPlusOne, ClosedFd, DevNull, Memfd, MapFd };

struct BadValueCase {
  const char* name;
  BadValue value;
  int expected_errno;
};

void PrintTo(const BadValueCase& c, std::ostream* os) { *os << c.name; }

class SockmapBadValue
    : public KernelTest,
      public ::testing::WithParamInterface<std::tuple<BadValueCase, bpf_map_type>> {};

// B.2: (u64)-1 and fds above INT_MAX -> EINVAL, closed fd -> EBADF, not a socket -> ENOTSOCK.
TEST_P(SockmapBadValue, IsRefused) {
  const auto& [c, type] = GetParam();
  STEER_ASSERT_OK_AND_ASSIGN(Map map, make_socket_map(type));
  Fd holder;  // keeps the fd under test open for the update
  uint64_t value = 0;
  switch (c.value) {
    case BadValue::MinusOne: value = ~uint64_t{0}; break;
    case BadValue::IntMaxPlusOne: value = uint64_t{INT_MAX} + 1; break;
    case BadValue::ClosedFd: {
      Fd probe(::open("/dev/null", O_RDONLY | O_CLOEXEC));
      ASSERT_TRUE(probe.valid());
      value = static_cast<uint64_t>(probe.get());  // closed at the end of this scope
      break;
    }
    case BadValue::DevNull: holder.reset(::open("/dev/null", O_RDONLY | O_CLOEXEC)); break;
    case BadValue::Memfd: holder.reset(::memfd_create("conformance", MFD_CLOEXEC)); break;
    case BadValue::MapFd: holder.reset(::fcntl(map.fd(), F_DUPFD_CLOEXEC, 3)); break;
  }
  if (holder) value = static_cast<uint64_t>(holder.get());
  STEER_EXPECT_ERRNO(update_raw(map, 0, value, BPF_ANY), c.expected_errno);
  STEER_EXPECT_ERRNO(cookie_at(map, 0), ENOENT);
}

const BadValueCase kBadValues[] = {
    {"minus_one", BadValue::MinusOne, EINVAL},
    {"int_max_plus_one", BadValue::IntMaxPlusOne, EINVAL},
    {"closed_fd", BadValue::ClosedFd, EBADF},
    {"dev_null", BadValue::DevNull, ENOTSOCK},
    {"memfd", BadValue::Memfd, ENOTSOCK},
    {"bpf_map_fd", BadValue::MapFd, ENOTSOCK},
};
INSTANTIATE_TEST_SUITE_P(, SockmapBadValue,
                         ::testing::Combine(::testing::ValuesIn(kBadValues),
                                            ::testing::Values(kSockmap, kSockhash)),
                         [](const auto& info) {
                           return fmt::format("{}_{}", std::get<0>(info.param).name,
                                              map_type_name(std::get<1>(info.param)));
                         });

// ---------------------------------------------------------------------------------------------
// Sockets by kind and state: B.5 (UDP), B.6 (unix), with the errno this kernel gives.

enum class SocketSetup {
  UdpUnbound,
  UdpBound,
  UdpConnected,
  UnixStreamUnconnected,
  UnixStreamListening,
  UnixStreamPair,
  UnixDgramUnbound,
  UnixDgramPair,
  UnixSeqpacketPair,
};

struct SocketCase {
  const char* name;
  int family;
  SocketSetup setup;
  int expected_errno;  // 0: accepted
};

Result<Fd> socket_pair_end(int type, Fd& other_end) {
  int ends[2];
  if (::socketpair(AF_UNIX, type | SOCK_CLOEXEC, 0, ends) != 0) return fail_errno("socketpair");
  other_end.reset(ends[1]);
  return Fd(ends[0]);
}

Result<Fd> abstract_unix_listener() {
  auto fd = make_socket(AF_UNIX, SOCK_STREAM);
  if (!fd) return fd;
  sockaddr_un address{.sun_family = AF_UNIX, .sun_path = {}};
  // Autobind (an abstract name chosen by the kernel): nothing on the filesystem.
  if (::bind(fd->get(), reinterpret_cast<sockaddr*>(&address), sizeof(sa_family_t)) != 0)
    return fail_errno("bind unix");
  if (::listen(fd->get(), 8) != 0) return fail_errno("listen unix");
  return fd;
}

// Builds the socket of a case; `keep_alive` holds peers that must outlive the update.
Result<Fd> make_case_socket(const SocketCase& c, Fd& keep_alive) {
  switch (c.setup) {
    case SocketSetup::UdpUnbound: return make_socket(c.family, SOCK_DGRAM);
    case SocketSetup::UdpBound: return bind_udp(loopback(c.family));
    case SocketSetup::UdpConnected: {
      auto server = bind_udp(loopback(c.family));
      if (!server) return server;
      auto address = local_address(server->get());
      if (!address) return std::unexpected(address.error());
      auto client = make_socket(c.family, SOCK_DGRAM);
      if (!client) return client;
      if (::connect(client->get(), address->data(), address->size()) != 0)
        return fail_errno("connect udp");
      keep_alive = std::move(*server);
      return client;
    }
    case SocketSetup::UnixStreamUnconnected: return make_socket(AF_UNIX, SOCK_STREAM);
    case SocketSetup::UnixStreamListening: return abstract_unix_listener();
    case SocketSetup::UnixStreamPair: return socket_pair_end(SOCK_STREAM, keep_alive);
    case SocketSetup::UnixDgramUnbound: return make_socket(AF_UNIX, SOCK_DGRAM);
    case SocketSetup::UnixDgramPair: return socket_pair_end(SOCK_DGRAM, keep_alive);
    case SocketSetup::UnixSeqpacketPair: return socket_pair_end(SOCK_SEQPACKET, keep_alive);
  }
  return fail(EINVAL, "unknown case");
}

void PrintTo(const SocketCase& c, std::ostream* os) { *os << c.name; }

class SockmapSocketKinds
    : public KernelTest,
      public ::testing::WithParamInterface<std::tuple<SocketCase, bpf_map_type>> {};

// B.5 / B.6: which UDP and unix sockets the maps take.
TEST_P(SockmapSocketKinds, InsertGivesKernelAnswer) {
  const auto& [c, type] = GetParam();
  STEER_ASSERT_OK_AND_ASSIGN(Map map, make_socket_map(type));
  Fd keep_alive;
  STEER_ASSERT_OK_AND_ASSIGN(Fd socket, make_case_socket(c, keep_alive));
  if (c.expected_errno == 0) {
    STEER_ASSERT_OK(insert(map, 3, socket.get()));
    STEER_ASSERT_OK_AND_ASSIGN(uint64_t stored, cookie_at(map, 3));
    STEER_ASSERT_OK_AND_ASSIGN(uint64_t cookie, socket_cookie(socket.get()));
    EXPECT_EQ(stored, cookie);
  } else {
    STEER_EXPECT_ERRNO(insert(map, 3, socket.get()), c.expected_errno);
    STEER_EXPECT_ERRNO(cookie_at(map, 3), ENOENT);
  }
}

const SocketCase kSocketCases[] = {
    // B.5: this 6.18.44 kernel carries the fix that refuses unbound UDP again.
    {"udp4_unbound", AF_INET, SocketSetup::UdpUnbound, EOPNOTSUPP},
    {"udp6_unbound", AF_INET6, SocketSetup::UdpUnbound, EOPNOTSUPP},
    {"udp4_bound", AF_INET, SocketSetup::UdpBound, 0},
    {"udp6_bound", AF_INET6, SocketSetup::UdpBound, 0},
    {"udp4_connected", AF_INET, SocketSetup::UdpConnected, 0},
    {"udp6_connected", AF_INET6, SocketSetup::UdpConnected, 0},
    // B.6: unix stream sockets only when connected; dgram always, even unbound; seqpacket never.
    {"unix_stream_unconnected", AF_UNIX, SocketSetup::UnixStreamUnconnected, EOPNOTSUPP},
    {"unix_stream_listening", AF_UNIX, SocketSetup::UnixStreamListening, EOPNOTSUPP},
    {"unix_stream_pair", AF_UNIX, SocketSetup::UnixStreamPair, 0},
    {"unix_dgram_unbound", AF_UNIX, SocketSetup::UnixDgramUnbound, 0},
    {"unix_dgram_pair", AF_UNIX, SocketSetup::UnixDgramPair, 0},
    {"unix_seqpacket_pair", AF_UNIX, SocketSetup::UnixSeqpacketPair, EOPNOTSUPP},
};
INSTANTIATE_TEST_SUITE_P(, SockmapSocketKinds,
                         ::testing::Combine(::testing::ValuesIn(kSocketCases),
                                            ::testing::Values(kSockmap, kSockhash)),
                         [](const auto& info) {
                           return fmt::format("{}_{}", std::get<0>(info.param).name,
                                              map_type_name(std::get<1>(info.param)));
                         });

// ---------------------------------------------------------------------------------------------
// B.7: a TCP socket with a ULP (kTLS) is refused.

class SockmapUlp : public KernelTest, public ::testing::WithParamInterface<bpf_map_type> {};

TEST_P(SockmapUlp, TlsSocketIsRefused) {
  STEER_ASSERT_OK_AND_ASSIGN(Map map, make_socket_map(GetParam()));
  STEER_ASSERT_OK_AND_ASSIGN(TcpPair pair, connected_tcp_pair(AF_INET));
  if (::setsockopt(pair.client.get(), SOL_TCP, TCP_ULP, "tls", 3) != 0) {
    if (errno == ENOENT) GTEST_SKIP() << "the kernel has no \"tls\" ULP (CONFIG_TLS not set)";
    FAIL() << "setsockopt(TCP_ULP, \"tls\"): " << errno_name(errno);
  }
  STEER_EXPECT_ERRNO(insert(map, 0, pair.client.get()), EINVAL);
  // Control: the other end, without a ULP, goes in.
  STEER_ASSERT_OK(insert(map, 1, pair.accepted.get()));
}

INSTANTIATE_TEST_SUITE_P(, SockmapUlp, ::testing::Values(kSockmap, kSockhash),
                         [](const auto& info) { return std::string(map_type_name(info.param)); });

// ---------------------------------------------------------------------------------------------
// B.8: update flags, and capacity.

class SockmapFlags : public KernelTest, public ::testing::WithParamInterface<bpf_map_type> {
 protected:
  void SetUp() override {
    KernelTest::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    auto map = make_socket_map(GetParam());
    ASSERT_TRUE(map.has_value()) << map.error().message;
    map_ = std::move(*map);
    for (Fd* socket : {&first_, &second_}) {
      auto listener = listen_tcp(loopback(AF_INET));
      ASSERT_TRUE(listener.has_value()) << listener.error().message;
      *socket = std::move(*listener);
    }
  }
  uint64_t cookie_of(const Fd& socket) { return socket_cookie(socket.get()).value_or(0); }

  Map map_;
  Fd first_, second_;
};

// B.8: flags above BPF_EXIST (including BPF_F_LOCK, which socket maps have no use for) -> EINVAL.
TEST_P(SockmapFlags, UnknownFlagsAreRefused) {
  for (uint64_t flags : {uint64_t{BPF_EXIST + 1}, uint64_t{BPF_F_LOCK}, uint64_t{0x10},
                         uint64_t{1} << 32}) {
    SCOPED_TRACE(fmt::format("flags {:#x}", flags));
    STEER_EXPECT_ERRNO(update_raw(map_, 0, static_cast<uint64_t>(first_.get()), flags), EINVAL);
    STEER_EXPECT_ERRNO(cookie_at(map_, 0), ENOENT);
  }
}

// B.8: BPF_NOEXIST on a taken slot -> EEXIST, and the slot keeps its socket.
TEST_P(SockmapFlags, NoExistOnTakenSlot) {
  STEER_ASSERT_OK(insert(map_, 1, first_.get(), UpdateMode::NoExist));
  STEER_EXPECT_ERRNO(insert(map_, 1, second_.get(), UpdateMode::NoExist), EEXIST);
  STEER_EXPECT_ERRNO(insert(map_, 1, first_.get(), UpdateMode::NoExist), EEXIST);
  STEER_ASSERT_OK_AND_ASSIGN(uint64_t stored, cookie_at(map_, 1));
  EXPECT_EQ(stored, cookie_of(first_));
}

// B.8: BPF_EXIST on an empty slot -> ENOENT; on a taken one it replaces.
TEST_P(SockmapFlags, ExistNeedsATakenSlot) {
  STEER_EXPECT_ERRNO(insert(map_, 2, first_.get(), UpdateMode::Exist), ENOENT);
  STEER_EXPECT_ERRNO(cookie_at(map_, 2), ENOENT);
  STEER_ASSERT_OK(insert(map_, 2, first_.get(), UpdateMode::Any));
  STEER_ASSERT_OK(insert(map_, 2, second_.get(), UpdateMode::Exist));
  STEER_ASSERT_OK_AND_ASSIGN(uint64_t stored, cookie_at(map_, 2));
  EXPECT_EQ(stored, cookie_of(second_));
}

INSTANTIATE_TEST_SUITE_P(, SockmapFlags, ::testing::Values(kSockmap, kSockhash),
                         [](const auto& info) { return std::string(map_type_name(info.param)); });

class SockmapCapacity : public KernelTest {};

// B.8: a SOCKMAP index >= max_entries -> E2BIG.
TEST_F(SockmapCapacity, SockmapIndexPastTheEnd) {
  STEER_ASSERT_OK_AND_ASSIGN(Map map, make_socket_map(kSockmap, 4));
  STEER_ASSERT_OK_AND_ASSIGN(Fd listener, listen_tcp(loopback(AF_INET)));
  STEER_ASSERT_OK(insert(map, 3, listener.get()));
  STEER_EXPECT_ERRNO(insert(map, 4, listener.get()), E2BIG);
  STEER_EXPECT_ERRNO(insert(map, UINT32_MAX, listener.get()), E2BIG);
}

// B.8: a new key in a full SOCKHASH -> E2BIG; replacing an existing key still works, and a
// deleted entry frees its room.
TEST_F(SockmapCapacity, FullSockhash) {
  STEER_ASSERT_OK_AND_ASSIGN(Map map, make_socket_map(kSockhash, 2));
  STEER_ASSERT_OK_AND_ASSIGN(Fd first, listen_tcp(loopback(AF_INET)));
  STEER_ASSERT_OK_AND_ASSIGN(Fd second, listen_tcp(loopback(AF_INET6)));
  STEER_ASSERT_OK(insert(map, 10, first.get()));
  STEER_ASSERT_OK(insert(map, 20, first.get()));
  STEER_EXPECT_ERRNO(insert(map, 30, second.get()), E2BIG);
  STEER_ASSERT_OK(insert(map, 10, second.get(), UpdateMode::Exist));
  STEER_ASSERT_OK(insert(map, 20, second.get(), UpdateMode::Any));
  uint32_t key = 20;
  STEER_ASSERT_OK(map.erase(&key));
  STEER_ASSERT_OK(insert(map, 30, second.get(), UpdateMode::NoExist));
}

// ---------------------------------------------------------------------------------------------
// C.12 and C.14: lookup and delete.

class SockmapShortValue : public KernelTest, public ::testing::WithParamInterface<bpf_map_type> {};

// C.12: with 4-byte values the map takes u32 fds but lookup cannot return a u64 cookie: ENOSPC.
TEST_P(SockmapShortValue, LookupIsNoSpaceWhileUpdateWorks) {
  STEER_ASSERT_OK_AND_ASSIGN(Map map, make_socket_map(GetParam(), 8, sizeof(uint32_t)));
  STEER_ASSERT_OK_AND_ASSIGN(Fd listener, listen_tcp(loopback(AF_INET)));
  uint32_t key = 5;
  uint32_t value = static_cast<uint32_t>(listener.get());
  STEER_ASSERT_OK(map.update(&key, &value, UpdateMode::NoExist));
  // The entry is there: NOEXIST again is refused.
  STEER_EXPECT_ERRNO(map.update(&key, &value, UpdateMode::NoExist), EEXIST);
  uint64_t out[2] = {};  // big enough whatever the kernel would copy
  STEER_EXPECT_ERRNO(map.lookup(&key, out), ENOSPC);
  uint32_t missing = 6;
  STEER_EXPECT_ERRNO(map.lookup(&missing, out), ENOSPC);
  // (u32)-1 is above INT_MAX too.
  uint32_t minus_one = UINT32_MAX;
  STEER_EXPECT_ERRNO(map.update(&missing, &minus_one, UpdateMode::Any), EINVAL);
  STEER_ASSERT_OK(map.erase(&key));
}

INSTANTIATE_TEST_SUITE_P(, SockmapShortValue, ::testing::Values(kSockmap, kSockhash),
                         [](const auto& info) { return std::string(map_type_name(info.param)); });

struct DeleteCase {
  const char* name;
  bpf_map_type type;
  uint32_t key;
  int expected_errno;
};

void PrintTo(const DeleteCase& c, std::ostream* os) { *os << c.name; }

class SockmapDeleteMissing : public KernelTest, public ::testing::WithParamInterface<DeleteCase> {};

// C.14: deleting a missing entry: SOCKMAP -> EINVAL, SOCKHASH -> ENOENT (map of 8 entries, a
// socket at key 1 so the map is not empty).
TEST_P(SockmapDeleteMissing, GivesKernelErrno) {
  const DeleteCase& c = GetParam();
  STEER_ASSERT_OK_AND_ASSIGN(Map map, make_socket_map(c.type, 8));
  STEER_ASSERT_OK_AND_ASSIGN(Fd listener, listen_tcp(loopback(AF_INET)));
  STEER_ASSERT_OK(insert(map, 1, listener.get()));
  STEER_EXPECT_ERRNO(map.erase(&c.key), c.expected_errno);
  STEER_ASSERT_OK(cookie_at(map, 1));
}

// C.14: deleting the same key twice: the second one fails like a missing key.
TEST_P(SockmapDeleteMissing, SecondDeleteFails) {
  const DeleteCase& c = GetParam();
  STEER_ASSERT_OK_AND_ASSIGN(Map map, make_socket_map(c.type, 8));
  STEER_ASSERT_OK_AND_ASSIGN(Fd listener, listen_tcp(loopback(AF_INET)));
  uint32_t key = 2;
  STEER_ASSERT_OK(insert(map, key, listener.get()));
  STEER_ASSERT_OK(map.erase(&key));
  STEER_EXPECT_ERRNO(map.erase(&key), c.type == kSockmap ? EINVAL : ENOENT);
}

const DeleteCase kDeleteCases[] = {
    {"SOCKMAP_empty_slot", kSockmap, 0, EINVAL},
    {"SOCKMAP_index_past_the_end", kSockmap, 8, EINVAL},
    {"SOCKHASH_missing_key", kSockhash, 0, ENOENT},
};
INSTANTIATE_TEST_SUITE_P(, SockmapDeleteMissing, ::testing::ValuesIn(kDeleteCases),
                         [](const auto& info) { return std::string(info.param.name); });

}  // namespace
}  // namespace steer::testing
