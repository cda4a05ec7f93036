// kernel.md G.32-G.38: sk_lookup programs. Attaching (links, limits, pinning), steering
// connections and datagrams to sockets bound elsewhere, verdicts, bpf_sk_assign's rules,
// chains of programs, reuseport groups behind an assigned socket, and BPF_PROG_TEST_RUN.
// Modelled on the kernel selftest prog_tests/sk_lookup.c: {listen at, send to, who receives}.
#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <linux/bpf.h>
#include <net/if.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <cstring>
#include <optional>
#include <ostream>
#include <string>
#include <vector>

#include <fmt/core.h>

#include "base/netns.h"
#include "bpf/link.h"
#include "bpf/map.h"
#include "bpf/probe_programs.h"
#include "bpf/test_run.h"
#include "support/kernel_test.h"

namespace steer::testing {
namespace {

using bpf::Link;
using bpf::ProbeReuseport;
using bpf::ProbeSkLookup;
using bpf::SockHash;
using bpf::SockMap;

constexpr uint16_t kReceiverPort = 8001;  // where the receiving sockets are bound
constexpr uint16_t kSteeredPort = 9002;   // where clients send; nothing listens here by default
constexpr int kArrivalTimeoutMs = 2000;   // bound on waiting for loopback traffic
constexpr const char* kPayload = "steer";

// ---- Parameters ------------------------------------------------------------------------

struct SocketKind {
  int family;
  int type;
  bool tcp() const { return type == SOCK_STREAM; }
  int protocol() const { return tcp() ? IPPROTO_TCP : IPPROTO_UDP; }
  std::string name() const {
    return fmt::format("{}{}", tcp() ? "tcp" : "udp", family == AF_INET ? "4" : "6");
  }
};

constexpr SocketKind kKinds[] = {{AF_INET, SOCK_STREAM},
                                 {AF_INET6, SOCK_STREAM},
                                 {AF_INET, SOCK_DGRAM},
                                 {AF_INET6, SOCK_DGRAM}};

struct Flavor {
  SocketKind kind;
  steer_probe_map_kind map;
  std::string name() const {
    return kind.name() + (map == STEER_PROBE_SOCKMAP ? "_SOCKMAP" : "_SOCKHASH");
  }
};

std::vector<Flavor> all_flavors() {
  std::vector<Flavor> flavors;
  for (const auto& kind : kKinds)
    for (auto map : {STEER_PROBE_SOCKMAP, STEER_PROBE_SOCKHASH}) flavors.push_back({kind, map});
  return flavors;
}

std::vector<Flavor> ipv4_flavors() {
  std::vector<Flavor> flavors;
  for (const auto& flavor : all_flavors())
    if (flavor.kind.family == AF_INET) flavors.push_back(flavor);
  return flavors;
}

// Readable parameters in gtest's failure messages.
void PrintTo(const SocketKind& kind, std::ostream* out) { *out << kind.name(); }
void PrintTo(const Flavor& flavor, std::ostream* out) { *out << flavor.name(); }

struct KindName {
  std::string operator()(const ::testing::TestParamInfo<SocketKind>& info) const {
    return info.param.name();
  }
};
struct FlavorName {
  std::string operator()(const ::testing::TestParamInfo<Flavor>& info) const {
    return info.param.name();
  }
};

// ---- Addresses and sockets -------------------------------------------------------------

SocketAddress parse_address(const std::string& text) { return *SocketAddress::parse(text); }

// Where receivers live: the loopback address of the family.
SocketAddress receiver_address(int family, uint16_t port = kReceiverPort) {
  return family == AF_INET ? SocketAddress::ipv4_loopback(port)
                           : SocketAddress::ipv6_loopback(port);
}

// Where clients send: another address and port for IPv4 (127.0.0.0/8 is all local), another
// port for IPv6 (only ::1 exists on lo).
SocketAddress steered_address(int family, uint16_t port = kSteeredPort) {
  return family == AF_INET ? parse_address(fmt::format("127.0.0.2:{}", port))
                           : SocketAddress::ipv6_loopback(port);
}

// TCP listening or UDP bound: the states bpf_sk_assign accepts.
Result<Fd> make_receiver(const SocketKind& kind, const SocketAddress& address,
                         const SocketOptions& options = {}) {
  return kind.tcp() ? listen_tcp(address, options) : bind_udp(address, options);
}

// A non-blocking connect bounded by kArrivalTimeoutMs; the connect errno, 0 on success.
int connect_errno(const SocketAddress& destination, Fd* client = nullptr) {
  auto fd = make_socket(destination.family(), SOCK_STREAM | SOCK_NONBLOCK);
  if (!fd) return fd.error().code;
  if (::connect(fd->get(), destination.data(), destination.size()) != 0) {
    if (errno != EINPROGRESS) return errno;
    pollfd waiting{fd->get(), POLLOUT, 0};
    if (::poll(&waiting, 1, kArrivalTimeoutMs) != 1) return ETIMEDOUT;
    int error = 0;
    socklen_t length = sizeof(error);
    ::getsockopt(fd->get(), SOL_SOCKET, SO_ERROR, &error, &length);
    if (error != 0) return error;
  }
  if (client) *client = std::move(*fd);
  return 0;
}

// A UDP socket connected to `destination` that has sent one datagram there. Being connected,
// it learns of an ICMP port unreachable as ECONNREFUSED.
Result<Fd> send_datagram(const SocketAddress& destination) {
  auto fd = make_socket(destination.family(), SOCK_DGRAM);
  if (!fd) return fd;
  if (::connect(fd->get(), destination.data(), destination.size()) != 0)
    return fail_errno("connect UDP to " + destination.to_string());
  if (::send(fd->get(), kPayload, std::strlen(kPayload), 0) < 0)
    return fail_errno("send to " + destination.to_string());
  return fd;
}

bool wait_readable(int fd, int timeout_ms) {
  pollfd waiting{fd, POLLIN, 0};
  return ::poll(&waiting, 1, timeout_ms) == 1 && (waiting.revents & POLLIN);
}

// Accepts a connection already in the queue; never blocks, even on a blocking listener
// (accept4's SOCK_NONBLOCK only concerns the new fd, so accept_now alone would block).
Fd accept_pending(int listener) {
  if (!wait_readable(listener, 0)) return Fd();
  return accept_now(listener);
}

// Sends one connection (TCP) or datagram (UDP) to `destination` and checks it reaches
// `receiver`, waiting for it a bounded time. For TCP also checks the accepted connection's
// local address is the one the client dialled (the listener's own address is elsewhere).
::testing::AssertionResult lands_on(const SocketKind& kind, const SocketAddress& destination,
                                    int receiver) {
  Fd client;
  if (kind.tcp()) {
    if (int error = connect_errno(destination, &client); error != 0)
      return ::testing::AssertionFailure()
             << "connect to " << destination.to_string() << ": " << errno_name(error);
  } else {
    auto sender = send_datagram(destination);
    if (!sender) return ::testing::AssertionFailure() << sender.error().message;
    client = std::move(*sender);
  }
  if (!wait_readable(receiver, kArrivalTimeoutMs))
    return ::testing::AssertionFailure()
           << "nothing reached the receiver within " << kArrivalTimeoutMs << " ms";
  if (kind.tcp()) {
    Fd child = accept_pending(receiver);
    if (!child) return ::testing::AssertionFailure() << "accept: " << errno_name(errno);
    auto local = local_address(child.get());
    if (!local || local->to_string() != destination.to_string())
      return ::testing::AssertionFailure()
             << "accepted connection's local address is "
             << (local ? local->to_string() : local.error().message) << ", dialled "
             << destination.to_string();
    return ::testing::AssertionSuccess();
  }
  auto datagram = receive_udp_now(receiver);
  if (datagram != kPayload) return ::testing::AssertionFailure() << "wrong or no datagram";
  return ::testing::AssertionSuccess();
}

// Checks the lookup for `destination` fails: TCP connect gets ECONNREFUSED (RST); a UDP
// datagram is answered with ICMP port unreachable, seen as ECONNREFUSED by the connected
// sender. Either way the lookup is over when this returns.
::testing::AssertionResult refused(const SocketKind& kind, const SocketAddress& destination) {
  if (kind.tcp()) {
    int error = connect_errno(destination);
    if (error == ECONNREFUSED) return ::testing::AssertionSuccess();
    return ::testing::AssertionFailure() << "connect to " << destination.to_string() << ": "
                                         << (error ? errno_name(error) : "succeeded");
  }
  auto sender = send_datagram(destination);
  if (!sender) return ::testing::AssertionFailure() << sender.error().message;
  pollfd waiting{sender->get(), POLLIN | POLLERR, 0};
  if (::poll(&waiting, 1, kArrivalTimeoutMs) != 1)
    return ::testing::AssertionFailure() << "no ICMP error within " << kArrivalTimeoutMs << " ms";
  char byte;
  if (::recv(sender->get(), &byte, 1, MSG_DONTWAIT) < 0 && errno == ECONNREFUSED)
    return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << "sender's recv: " << errno_name(errno);
}

// Nothing is queued on `receiver` (call after the lookup has certainly happened).
bool nothing_queued(const SocketKind& kind, int receiver) {
  if (kind.tcp()) return !accept_pending(receiver);
  return !receive_udp_now(receiver).has_value();
}

// A connected pair: TCP client + accepted child, or two connected UDP sockets.
struct EstablishedPair {
  Fd listener, client, server;
};
Result<EstablishedPair> establish(const SocketKind& kind, const SocketAddress& address) {
  EstablishedPair pair;
  if (kind.tcp()) {
    auto listener = listen_tcp(address);
    if (!listener) return std::unexpected(listener.error());
    pair.listener = std::move(*listener);
    auto client = connect_tcp(address);
    if (!client) return std::unexpected(client.error());
    pair.client = std::move(*client);
    if (!wait_readable(pair.listener.get(), kArrivalTimeoutMs))
      return fail(ETIMEDOUT, "no connection to accept");
    pair.server = accept_pending(pair.listener.get());
    if (!pair.server) return fail_errno("accept");
    return pair;
  }
  auto server = bind_udp(address);
  if (!server) return std::unexpected(server.error());
  auto client = bind_udp(receiver_address(address.family(), 0));
  if (!client) return std::unexpected(client.error());
  auto client_address = local_address(client->get());
  if (!client_address) return std::unexpected(client_address.error());
  if (::connect(server->get(), client_address->data(), client_address->size()) != 0 ||
      ::connect(client->get(), address.data(), address.size()) != 0)
    return fail_errno("connect UDP pair");
  pair.server = std::move(*server);
  pair.client = std::move(*client);
  return pair;
}

// ---- The probe programs ----------------------------------------------------------------

// One loaded probe_sk_lookup: its config, its result and its socket maps.
class LookupProbe {
 public:
  static Result<LookupProbe> load() {
    auto skeleton = ProbeSkLookup::open_and_load("probe_sk_lookup");
    if (!skeleton) return std::unexpected(skeleton.error());
    return LookupProbe(std::move(*skeleton));
  }

  const bpf_program* program() const { return skeleton_->progs.probe_lookup; }
  int program_fd() const { return bpf_program__fd(program()); }

  Result<void> configure(const steer_probe_lookup_config& config) const {
    uint32_t zero = 0;
    int ret = bpf_map_update_elem(bpf_map__fd(skeleton_->maps.lookup_config), &zero, &config, 0);
    if (ret < 0) return fail_errno(-ret, "write lookup_config");
    return {};
  }

  Result<steer_probe_lookup_result> result() const {
    uint32_t zero = 0;
    steer_probe_lookup_result result{};
    int ret = bpf_map_lookup_elem(bpf_map__fd(skeleton_->maps.lookup_result), &zero, &result);
    if (ret < 0) return fail_errno(-ret, "read lookup_result");
    return result;
  }

  // Puts a socket into the probe's SOCKMAP or SOCKHASH at `key`.
  Result<void> hold(steer_probe_map_kind kind, uint32_t key, int socket_fd) const {
    if (kind == STEER_PROBE_SOCKMAP) {
      auto map = bpf::Map::from_fd(bpf_map__fd(skeleton_->maps.probe_sockmap));
      if (!map) return std::unexpected(map.error());
      auto sockmap = SockMap::wrap(std::move(*map));
      if (!sockmap) return std::unexpected(sockmap.error());
      return sockmap->insert(key, socket_fd);
    }
    auto map = bpf::Map::from_fd(bpf_map__fd(skeleton_->maps.probe_sockhash));
    if (!map) return std::unexpected(map.error());
    auto sockhash = SockHash<uint32_t>::wrap(std::move(*map));
    if (!sockhash) return std::unexpected(sockhash.error());
    return sockhash->insert(key, socket_fd);
  }

  // Attaches to the calling thread's network namespace (the test's own).
  Result<Link> attach() const {
    auto netns = NetNamespace::current();
    if (!netns) return std::unexpected(netns.error());
    return bpf::attach_sk_lookup(program(), netns->fd());
  }

 private:
  explicit LookupProbe(ProbeSkLookup skeleton) : skeleton_(std::move(skeleton)) {}
  ProbeSkLookup skeleton_;
};

steer_probe_lookup_config pass_config(uint16_t match_port = kSteeredPort) {
  return {.action = STEER_PROBE_LOOKUP_PASS, .verdict = SK_PASS, .match_port = match_port};
}

steer_probe_lookup_config drop_config(uint16_t match_port = kSteeredPort) {
  return {.action = STEER_PROBE_LOOKUP_DROP, .verdict = SK_DROP, .match_port = match_port};
}

// Assigns the socket at `key` with `flags`, then returns SK_PASS.
steer_probe_lookup_config assign_config(steer_probe_map_kind map, uint32_t key, uint32_t flags = 0,
                                        uint16_t match_port = kSteeredPort) {
  return {.action = STEER_PROBE_LOOKUP_ASSIGN,
          .map_kind = map,
          .key = key,
          .flags = flags,
          .verdict = SK_PASS,
          .match_port = match_port};
}

// A second bpf_sk_assign after the first: of the socket at `key`, or of NULL.
steer_probe_lookup_config with_second_assign(steer_probe_lookup_config config, uint32_t key,
                                             uint32_t flags, bool null_socket = false) {
  config.second_assign = 1;
  config.second_key = key;
  config.second_flags = flags;
  config.second_null = null_socket ? 1 : 0;
  return config;
}

// One loaded probe_reuseport, used as-is: FIXED mode selects the member at `key`.
class ReuseportProbe {
 public:
  static Result<ReuseportProbe> load() {
    auto skeleton = ProbeReuseport::open_and_load("probe_reuseport");
    if (!skeleton) return std::unexpected(skeleton.error());
    return ReuseportProbe(std::move(*skeleton));
  }

  Result<void> select_fixed(steer_probe_map_kind map, uint32_t key) const {
    steer_probe_reuseport_config config{.mode = STEER_PROBE_REUSEPORT_FIXED,
                                        .map_kind = map,
                                        .key = key,
                                        .migrate_key = STEER_PROBE_NO_KEY};
    uint32_t zero = 0;
    int ret = bpf_map_update_elem(bpf_map__fd(skeleton_->maps.reuseport_config), &zero, &config, 0);
    if (ret < 0) return fail_errno(-ret, "write reuseport_config");
    return {};
  }

  Result<steer_probe_reuseport_result> result() const {
    uint32_t zero = 0;
    steer_probe_reuseport_result result{};
    int ret =
        bpf_map_lookup_elem(bpf_map__fd(skeleton_->maps.reuseport_result), &zero, &result);
    if (ret < 0) return fail_errno(-ret, "read reuseport_result");
    return result;
  }

  Result<void> hold(steer_probe_map_kind kind, uint32_t key, int socket_fd) const {
    uint64_t value = static_cast<uint32_t>(socket_fd);
    int map_fd = bpf_map__fd(kind == STEER_PROBE_SOCKMAP ? skeleton_->maps.probe_sockmap
                                                         : skeleton_->maps.probe_sockhash);
    int ret = bpf_map_update_elem(map_fd, &key, &value, BPF_ANY);
    if (ret < 0) return fail_errno(-ret, "put a socket into the reuseport probe's map");
    return {};
  }

  // Attaches to the reuseport group `member_fd` belongs to.
  Result<void> attach(int member_fd) const {
    return bpf::attach_reuseport(skeleton_->progs.probe_select, member_fd);
  }

 private:
  explicit ReuseportProbe(ProbeReuseport skeleton) : skeleton_(std::move(skeleton)) {}
  ProbeReuseport skeleton_;
};

// ---- G.32: attaching -------------------------------------------------------------------

using SkLookupLink = KernelTest;

// G.32: a link on the netns fd attaches the program; it runs for a new connection.
TEST_F(SkLookupLink, LinkOnNetnsRunsTheProgram) {
  STEER_ASSERT_OK_AND_ASSIGN(auto probe, LookupProbe::load());
  STEER_ASSERT_OK(probe.configure(pass_config()));
  STEER_ASSERT_OK_AND_ASSIGN(Link link, probe.attach());
  EXPECT_TRUE(link.valid());
  EXPECT_TRUE(refused({AF_INET, SOCK_STREAM}, steered_address(AF_INET)));
  STEER_ASSERT_OK_AND_ASSIGN(auto result, probe.result());
  EXPECT_EQ(result.runs, 1u);
}

// G.32: at most 64 sk_lookup links per netns; the 65th gets E2BIG.
TEST_F(SkLookupLink, SixtyFifthLinkIsE2big) {
  STEER_ASSERT_OK_AND_ASSIGN(auto probe, LookupProbe::load());
  std::vector<Link> links;
  for (int i = 0; i < 64; ++i) {
    STEER_ASSERT_OK_AND_ASSIGN(Link link, probe.attach());
    links.push_back(std::move(link));
  }
  STEER_EXPECT_ERRNO(probe.attach(), E2BIG);
  // Freeing one slot makes room again.
  links.pop_back();
  STEER_ASSERT_OK(probe.attach());
}

// G.32: BPF_PROG_ATTACH of an sk_lookup program to a netns fd is refused with EINVAL.
TEST_F(SkLookupLink, ProgAttachIsEinval) {
  STEER_ASSERT_OK_AND_ASSIGN(auto probe, LookupProbe::load());
  STEER_ASSERT_OK_AND_ASSIGN(auto netns, NetNamespace::current());
  int ret = bpf_prog_attach(probe.program_fd(), netns.fd(), BPF_SK_LOOKUP, 0);
  EXPECT_EQ(errno_name(-ret), errno_name(EINVAL));
}

// G.32: a pinned link keeps steering after its Link object and the whole skeleton are gone;
// unpinning drops the last reference and detaches it.
TEST_F(SkLookupLink, PinnedLinkOutlivesItsCreator) {
  const SocketKind tcp4{AF_INET, SOCK_STREAM};
  STEER_ASSERT_OK_AND_ASSIGN(Fd receiver, make_receiver(tcp4, receiver_address(AF_INET)));
  const std::string pin_path = bpffs() + "/lookup_link";
  {
    STEER_ASSERT_OK_AND_ASSIGN(auto probe, LookupProbe::load());
    STEER_ASSERT_OK(probe.hold(STEER_PROBE_SOCKMAP, 0, receiver.get()));
    STEER_ASSERT_OK(probe.configure(assign_config(STEER_PROBE_SOCKMAP, 0)));
    STEER_ASSERT_OK_AND_ASSIGN(Link link, probe.attach());
    STEER_ASSERT_OK(link.pin(pin_path));
  }  // the link fd, the program fd and the map fds are all closed here
  EXPECT_TRUE(lands_on(tcp4, steered_address(AF_INET), receiver.get()));
  ASSERT_EQ(::unlink(pin_path.c_str()), 0) << std::strerror(errno);
  // The last reference goes with the bpffs inode, and the kernel frees a link from a work
  // queue: poll (bounded) until connections stop being steered.
  int error = 0;
  for (int attempt = 0; attempt < 200; ++attempt) {
    error = connect_errno(steered_address(AF_INET));
    if (error != 0) break;
    while (accept_pending(receiver.get())) {}
    ::usleep(10'000);
  }
  EXPECT_EQ(errno_name(error), errno_name(ECONNREFUSED));
}

// G.32/G.34: BPF_PROG_QUERY on the netns lists the attached programs in attach order.
TEST_F(SkLookupLink, QueryListsProgramsInAttachOrder) {
  STEER_ASSERT_OK_AND_ASSIGN(auto first, LookupProbe::load());
  STEER_ASSERT_OK_AND_ASSIGN(auto second, LookupProbe::load());
  STEER_ASSERT_OK_AND_ASSIGN(Link first_link, first.attach());
  STEER_ASSERT_OK_AND_ASSIGN(Link second_link, second.attach());
  auto program_id = [](int fd) {
    bpf_prog_info info{};
    uint32_t length = sizeof(info);
    return bpf_obj_get_info_by_fd(fd, &info, &length) == 0 ? info.id : 0u;
  };
  STEER_ASSERT_OK_AND_ASSIGN(auto netns, NetNamespace::current());
  std::array<uint32_t, 8> ids{};
  uint32_t count = ids.size(), attach_flags = 0;
  ASSERT_EQ(bpf_prog_query(netns.fd(), BPF_SK_LOOKUP, 0, &attach_flags, ids.data(), &count), 0);
  ASSERT_EQ(count, 2u);
  EXPECT_EQ(ids[0], program_id(first.program_fd()));
  EXPECT_EQ(ids[1], program_id(second.program_fd()));
}

// ---- G.33 / G.38: when the program runs, and what it sees ------------------------------

class SkLookupScope : public KernelTest, public ::testing::WithParamInterface<SocketKind> {};
INSTANTIATE_TEST_SUITE_P(SkLookup, SkLookupScope, ::testing::ValuesIn(kKinds), KindName());

// G.38: the context carries family, protocol, local port (host order), remote port and the
// ingress interface (lo) of the lookup.
TEST_P(SkLookupScope, ContextDescribesTheLookup) {
  const SocketKind kind = GetParam();
  STEER_ASSERT_OK_AND_ASSIGN(auto probe, LookupProbe::load());
  STEER_ASSERT_OK(probe.configure(pass_config()));
  STEER_ASSERT_OK_AND_ASSIGN(Link link, probe.attach());
  // A client bound to a known port, so the remote port can be checked.
  const uint16_t client_port = 7003;
  STEER_ASSERT_OK_AND_ASSIGN(Fd client, bind_socket(kind.type, receiver_address(kind.family,
                                                                               client_port)));
  SocketAddress destination = steered_address(kind.family);
  // Nothing is bound there: TCP's blocking connect returns on the RST; UDP waits for the ICMP
  // port unreachable. Either way the lookup has run when the error is seen.
  int connected = ::connect(client.get(), destination.data(), destination.size());
  if (kind.tcp()) {
    ASSERT_EQ(errno_name(connected == 0 ? 0 : errno), errno_name(ECONNREFUSED));
  } else {
    ASSERT_GE(::send(client.get(), kPayload, std::strlen(kPayload), 0), 0);
    pollfd waiting{client.get(), POLLERR, 0};
    ASSERT_EQ(::poll(&waiting, 1, kArrivalTimeoutMs), 1) << "no ICMP error";
  }
  STEER_ASSERT_OK_AND_ASSIGN(auto result, probe.result());
  EXPECT_EQ(result.runs, 1u);
  EXPECT_EQ(result.last_family, static_cast<uint32_t>(kind.family));
  EXPECT_EQ(result.last_protocol, static_cast<uint32_t>(kind.protocol()));
  EXPECT_EQ(result.last_local_port, kSteeredPort);
  EXPECT_EQ(result.last_remote_port, client_port);
  EXPECT_EQ(result.last_ingress_ifindex, ::if_nametoindex("lo"));
  EXPECT_EQ(result.saw_selection, 0u);
}

// G.33: established TCP and connected UDP traffic is matched before sk_lookup: a program that
// drops every lookup neither runs nor interferes.
TEST_P(SkLookupScope, EstablishedTrafficBypassesTheProgram) {
  const SocketKind kind = GetParam();
  STEER_ASSERT_OK_AND_ASSIGN(auto pair, establish(kind, receiver_address(kind.family)));
  STEER_ASSERT_OK_AND_ASSIGN(auto probe, LookupProbe::load());
  STEER_ASSERT_OK(probe.configure(drop_config(/*match_port=*/0)));  // every lookup
  STEER_ASSERT_OK_AND_ASSIGN(Link link, probe.attach());
  for (int i = 0; i < 3; ++i) {
    ASSERT_EQ(::send(pair.client.get(), kPayload, std::strlen(kPayload), 0),
              static_cast<ssize_t>(std::strlen(kPayload)));
    ASSERT_TRUE(wait_readable(pair.server.get(), kArrivalTimeoutMs));
    char buffer[64];
    ASSERT_GT(::recv(pair.server.get(), buffer, sizeof(buffer), 0), 0);
    ASSERT_EQ(::send(pair.server.get(), kPayload, std::strlen(kPayload), 0),
              static_cast<ssize_t>(std::strlen(kPayload)));
    ASSERT_TRUE(wait_readable(pair.client.get(), kArrivalTimeoutMs));
    ASSERT_GT(::recv(pair.client.get(), buffer, sizeof(buffer), 0), 0);
  }
  STEER_ASSERT_OK_AND_ASSIGN(auto result, probe.result());
  EXPECT_EQ(result.runs, 0u);
}

// ---- G.33 / G.34: verdicts of one program ----------------------------------------------

using SkLookupVerdict = SkLookupScope;
INSTANTIATE_TEST_SUITE_P(SkLookup, SkLookupVerdict, ::testing::ValuesIn(kKinds), KindName());

// G.33: SK_DROP fails the lookup even though a socket is bound to the very destination.
TEST_P(SkLookupVerdict, DropRefusesEvenWithAMatchingSocket) {
  const SocketKind kind = GetParam();
  STEER_ASSERT_OK_AND_ASSIGN(Fd bound_there, make_receiver(kind, steered_address(kind.family)));
  STEER_ASSERT_OK_AND_ASSIGN(auto probe, LookupProbe::load());
  STEER_ASSERT_OK(probe.configure(drop_config()));
  STEER_ASSERT_OK_AND_ASSIGN(Link link, probe.attach());
  EXPECT_TRUE(refused(kind, steered_address(kind.family)));
  EXPECT_TRUE(nothing_queued(kind, bound_there.get()));
}

// G.34: SK_PASS without a selection is the normal lookup.
TEST_P(SkLookupVerdict, PassWithoutSelectionIsTheNormalLookup) {
  const SocketKind kind = GetParam();
  STEER_ASSERT_OK_AND_ASSIGN(Fd bound_there, make_receiver(kind, steered_address(kind.family)));
  STEER_ASSERT_OK_AND_ASSIGN(auto probe, LookupProbe::load());
  STEER_ASSERT_OK(probe.configure(pass_config()));
  STEER_ASSERT_OK_AND_ASSIGN(Link link, probe.attach());
  EXPECT_TRUE(lands_on(kind, steered_address(kind.family), bound_there.get()));
  STEER_ASSERT_OK_AND_ASSIGN(auto result, probe.result());
  EXPECT_EQ(result.runs, 1u);
}

// G.33: a socket assigned but followed by SK_DROP is not used: the lookup fails.
TEST_P(SkLookupVerdict, AssignThenDropRefuses) {
  const SocketKind kind = GetParam();
  STEER_ASSERT_OK_AND_ASSIGN(Fd receiver, make_receiver(kind, receiver_address(kind.family)));
  STEER_ASSERT_OK_AND_ASSIGN(auto probe, LookupProbe::load());
  STEER_ASSERT_OK(probe.hold(STEER_PROBE_SOCKMAP, 0, receiver.get()));
  auto config = assign_config(STEER_PROBE_SOCKMAP, 0);
  config.verdict = SK_DROP;
  STEER_ASSERT_OK(probe.configure(config));
  STEER_ASSERT_OK_AND_ASSIGN(Link link, probe.attach());
  EXPECT_TRUE(refused(kind, steered_address(kind.family)));
  EXPECT_TRUE(nothing_queued(kind, receiver.get()));
  STEER_ASSERT_OK_AND_ASSIGN(auto result, probe.result());
  EXPECT_EQ(result.first_assign, 0);
}

// ---- G.33 / G.35 / G.36: bpf_sk_assign -------------------------------------------------

class SkLookupAssign : public KernelTest, public ::testing::WithParamInterface<Flavor> {
 protected:
  void SetUp() override {
    KernelTest::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    auto probe = LookupProbe::load();
    ASSERT_TRUE(probe.has_value()) << probe.error().message;
    probe_.emplace(std::move(*probe));
  }
  const SocketKind& kind() const { return GetParam().kind; }
  steer_probe_map_kind map() const { return GetParam().map; }
  SocketAddress destination() const { return steered_address(kind().family); }
  const LookupProbe& probe() const { return *probe_; }

 private:
  std::optional<LookupProbe> probe_;
};
INSTANTIATE_TEST_SUITE_P(SkLookup, SkLookupAssign, ::testing::ValuesIn(all_flavors()),
                         FlavorName());

// G.33/G.36: a socket bound to another address and port receives the connection (TCP) or the
// datagram (UDP) once assigned; a socket bound to the real destination gets nothing.
TEST_P(SkLookupAssign, AssignedSocketReceivesTrafficForAnotherAddress) {
  STEER_ASSERT_OK_AND_ASSIGN(Fd receiver, make_receiver(kind(), receiver_address(kind().family)));
  STEER_ASSERT_OK_AND_ASSIGN(Fd bound_there, make_receiver(kind(), destination()));
  STEER_ASSERT_OK(probe().hold(map(), 3, receiver.get()));
  STEER_ASSERT_OK(probe().configure(assign_config(map(), 3)));
  STEER_ASSERT_OK_AND_ASSIGN(Link link, probe().attach());
  EXPECT_TRUE(lands_on(kind(), destination(), receiver.get()));
  EXPECT_TRUE(nothing_queued(kind(), bound_there.get()));
  STEER_ASSERT_OK_AND_ASSIGN(auto result, probe().result());
  EXPECT_EQ(result.first_assign, 0);
  EXPECT_EQ(result.runs, 1u);
}

// G.35: a second assign without BPF_SK_LOOKUP_F_REPLACE is -EEXIST; the first one stands.
TEST_P(SkLookupAssign, SecondAssignWithoutReplaceIsEexist) {
  STEER_ASSERT_OK_AND_ASSIGN(Fd first, make_receiver(kind(), receiver_address(kind().family)));
  STEER_ASSERT_OK_AND_ASSIGN(Fd second,
                             make_receiver(kind(), receiver_address(kind().family, 8002)));
  STEER_ASSERT_OK(probe().hold(map(), 0, first.get()));
  STEER_ASSERT_OK(probe().hold(map(), 1, second.get()));
  STEER_ASSERT_OK(probe().configure(with_second_assign(assign_config(map(), 0), 1, 0)));
  STEER_ASSERT_OK_AND_ASSIGN(Link link, probe().attach());
  EXPECT_TRUE(lands_on(kind(), destination(), first.get()));
  EXPECT_TRUE(nothing_queued(kind(), second.get()));
  STEER_ASSERT_OK_AND_ASSIGN(auto result, probe().result());
  EXPECT_EQ(result.first_assign, 0);
  EXPECT_EQ(result.second_assign, -EEXIST);
}

// G.35: with BPF_SK_LOOKUP_F_REPLACE the second assign overrides the first.
TEST_P(SkLookupAssign, ReplaceOverridesTheFirstAssign) {
  STEER_ASSERT_OK_AND_ASSIGN(Fd first, make_receiver(kind(), receiver_address(kind().family)));
  STEER_ASSERT_OK_AND_ASSIGN(Fd second,
                             make_receiver(kind(), receiver_address(kind().family, 8002)));
  STEER_ASSERT_OK(probe().hold(map(), 0, first.get()));
  STEER_ASSERT_OK(probe().hold(map(), 1, second.get()));
  STEER_ASSERT_OK(probe().configure(
      with_second_assign(assign_config(map(), 0), 1, BPF_SK_LOOKUP_F_REPLACE)));
  STEER_ASSERT_OK_AND_ASSIGN(Link link, probe().attach());
  EXPECT_TRUE(lands_on(kind(), destination(), second.get()));
  EXPECT_TRUE(nothing_queued(kind(), first.get()));
  STEER_ASSERT_OK_AND_ASSIGN(auto result, probe().result());
  EXPECT_EQ(result.second_assign, 0);
}

// G.35: assigning NULL with F_REPLACE clears the selection; with SK_PASS the lookup then
// proceeds as if nothing had been selected: the socket bound to the destination gets it.
TEST_P(SkLookupAssign, NullWithReplaceClearsTheSelection) {
  STEER_ASSERT_OK_AND_ASSIGN(Fd assigned, make_receiver(kind(), receiver_address(kind().family)));
  STEER_ASSERT_OK_AND_ASSIGN(Fd bound_there, make_receiver(kind(), destination()));
  STEER_ASSERT_OK(probe().hold(map(), 0, assigned.get()));
  STEER_ASSERT_OK(probe().configure(with_second_assign(
      assign_config(map(), 0), 0, BPF_SK_LOOKUP_F_REPLACE, /*null_socket=*/true)));
  STEER_ASSERT_OK_AND_ASSIGN(Link link, probe().attach());
  EXPECT_TRUE(lands_on(kind(), destination(), bound_there.get()));
  EXPECT_TRUE(nothing_queued(kind(), assigned.get()));
  STEER_ASSERT_OK_AND_ASSIGN(auto result, probe().result());
  EXPECT_EQ(result.second_assign, 0);
}

// G.35: NULL with F_REPLACE and nothing bound at the destination: the lookup fails normally.
TEST_P(SkLookupAssign, NullWithReplaceAndNoSocketThereRefuses) {
  STEER_ASSERT_OK_AND_ASSIGN(Fd assigned, make_receiver(kind(), receiver_address(kind().family)));
  STEER_ASSERT_OK(probe().hold(map(), 0, assigned.get()));
  STEER_ASSERT_OK(probe().configure(with_second_assign(
      assign_config(map(), 0), 0, BPF_SK_LOOKUP_F_REPLACE, /*null_socket=*/true)));
  STEER_ASSERT_OK_AND_ASSIGN(Link link, probe().attach());
  EXPECT_TRUE(refused(kind(), destination()));
  EXPECT_TRUE(nothing_queued(kind(), assigned.get()));
}

// G.35: flags other than F_REPLACE | F_NO_REUSEPORT are -EINVAL and select nothing.
TEST_P(SkLookupAssign, UnknownFlagsAreEinval) {
  STEER_ASSERT_OK_AND_ASSIGN(Fd receiver, make_receiver(kind(), receiver_address(kind().family)));
  STEER_ASSERT_OK(probe().hold(map(), 0, receiver.get()));
  const uint32_t unknown_flag = BPF_SK_LOOKUP_F_NO_REUSEPORT << 1;
  STEER_ASSERT_OK(probe().configure(assign_config(map(), 0, unknown_flag)));
  STEER_ASSERT_OK_AND_ASSIGN(Link link, probe().attach());
  EXPECT_TRUE(refused(kind(), destination()));
  STEER_ASSERT_OK_AND_ASSIGN(auto result, probe().result());
  EXPECT_EQ(result.first_assign, -EINVAL);
}

// G.36: an established TCP socket or a connected UDP socket is -ESOCKTNOSUPPORT.
TEST_P(SkLookupAssign, ConnectedSocketIsEsocktnosupport) {
  STEER_ASSERT_OK_AND_ASSIGN(auto pair, establish(kind(), receiver_address(kind().family)));
  STEER_ASSERT_OK(probe().hold(map(), 0, pair.server.get()));
  STEER_ASSERT_OK(probe().configure(assign_config(map(), 0)));
  STEER_ASSERT_OK_AND_ASSIGN(Link link, probe().attach());
  EXPECT_TRUE(refused(kind(), destination()));
  STEER_ASSERT_OK_AND_ASSIGN(auto result, probe().result());
  EXPECT_EQ(result.first_assign, -ESOCKTNOSUPPORT);
}

// G.36: a socket of the other protocol (UDP for a TCP lookup and vice versa) is -EPROTOTYPE.
TEST_P(SkLookupAssign, ProtocolMismatchIsEprototype) {
  const SocketKind other{kind().family, kind().tcp() ? SOCK_DGRAM : SOCK_STREAM};
  STEER_ASSERT_OK_AND_ASSIGN(Fd wrong, make_receiver(other, receiver_address(kind().family)));
  STEER_ASSERT_OK(probe().hold(map(), 0, wrong.get()));
  STEER_ASSERT_OK(probe().configure(assign_config(map(), 0)));
  STEER_ASSERT_OK_AND_ASSIGN(Link link, probe().attach());
  EXPECT_TRUE(refused(kind(), destination()));
  STEER_ASSERT_OK_AND_ASSIGN(auto result, probe().result());
  EXPECT_EQ(result.first_assign, -EPROTOTYPE);
}

// G.36: the other family is -EAFNOSUPPORT: an AF_INET socket for an IPv6 lookup, a v6-only
// AF_INET6 socket for an IPv4 lookup.
TEST_P(SkLookupAssign, FamilyMismatchIsEafnosupport) {
  const SocketKind other{kind().family == AF_INET ? AF_INET6 : AF_INET, kind().type};
  STEER_ASSERT_OK_AND_ASSIGN(Fd wrong, make_receiver(other, receiver_address(other.family),
                                                     SocketOptions{.v6only = true}));
  STEER_ASSERT_OK(probe().hold(map(), 0, wrong.get()));
  STEER_ASSERT_OK(probe().configure(assign_config(map(), 0)));
  STEER_ASSERT_OK_AND_ASSIGN(Link link, probe().attach());
  EXPECT_TRUE(refused(kind(), destination()));
  EXPECT_TRUE(nothing_queued(kind(), wrong.get()));
  STEER_ASSERT_OK_AND_ASSIGN(auto result, probe().result());
  EXPECT_EQ(result.first_assign, -EAFNOSUPPORT);
}

// G.36: the assign order of checks: a connected socket of the wrong protocol is reported as
// -ESOCKTNOSUPPORT (state is checked before protocol and family).
TEST_P(SkLookupAssign, StateIsCheckedBeforeProtocol) {
  const SocketKind other{kind().family, kind().tcp() ? SOCK_DGRAM : SOCK_STREAM};
  STEER_ASSERT_OK_AND_ASSIGN(auto pair, establish(other, receiver_address(kind().family)));
  STEER_ASSERT_OK(probe().hold(map(), 0, pair.server.get()));
  STEER_ASSERT_OK(probe().configure(assign_config(map(), 0)));
  STEER_ASSERT_OK_AND_ASSIGN(Link link, probe().attach());
  EXPECT_TRUE(refused(kind(), destination()));
  STEER_ASSERT_OK_AND_ASSIGN(auto result, probe().result());
  EXPECT_EQ(result.first_assign, -ESOCKTNOSUPPORT);
}

using SkLookupDualStack = SkLookupAssign;
INSTANTIATE_TEST_SUITE_P(SkLookup, SkLookupDualStack, ::testing::ValuesIn(ipv4_flavors()),
                         FlavorName());

// G.36: an IPv4 lookup may select a dual-stack (v6only=0) AF_INET6 socket; it receives the
// IPv4 connection or datagram.
TEST_P(SkLookupDualStack, Ipv4LookupMaySelectDualStackSocket) {
  const SocketKind v6{AF_INET6, kind().type};
  STEER_ASSERT_OK_AND_ASSIGN(
      Fd dual_stack, make_receiver(v6, parse_address(fmt::format("[::ffff:127.0.0.1]:{}",
                                                                 kReceiverPort)),
                                   SocketOptions{.v6only = false}));
  STEER_ASSERT_OK(probe().hold(map(), 0, dual_stack.get()));
  STEER_ASSERT_OK(probe().configure(assign_config(map(), 0)));
  STEER_ASSERT_OK_AND_ASSIGN(Link link, probe().attach());
  if (kind().tcp()) {
    // The accepted child's local address is the IPv4 destination, mapped.
    Fd client;
    ASSERT_EQ(connect_errno(destination(), &client), 0);
    ASSERT_TRUE(wait_readable(dual_stack.get(), kArrivalTimeoutMs));
    Fd child = accept_pending(dual_stack.get());
    ASSERT_TRUE(child.valid());
    STEER_ASSERT_OK_AND_ASSIGN(auto local, local_address(child.get()));
    EXPECT_EQ(local.to_string(), fmt::format("[::ffff:127.0.0.2]:{}", kSteeredPort));
  } else {
    STEER_ASSERT_OK_AND_ASSIGN(Fd sender, send_datagram(destination()));
    ASSERT_TRUE(wait_readable(dual_stack.get(), kArrivalTimeoutMs));
    EXPECT_EQ(receive_udp_now(dual_stack.get()), kPayload);
  }
  STEER_ASSERT_OK_AND_ASSIGN(auto result, probe().result());
  EXPECT_EQ(result.first_assign, 0);
}

// ---- G.34: several programs ------------------------------------------------------------

// Two probes attached in order (first, then second); each assigns from its own maps.
class SkLookupChain : public KernelTest, public ::testing::WithParamInterface<SocketKind> {
 protected:
  void SetUp() override {
    KernelTest::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    for (auto* slot : {&first_, &second_}) {
      auto probe = LookupProbe::load();
      ASSERT_TRUE(probe.has_value()) << probe.error().message;
      slot->emplace(std::move(*probe));
    }
    auto a = make_receiver(kind(), receiver_address(kind().family, 8001));
    auto b = make_receiver(kind(), receiver_address(kind().family, 8002));
    auto there = make_receiver(kind(), destination());
    ASSERT_TRUE(a && b && there);
    socket_a_ = std::move(*a);
    socket_b_ = std::move(*b);
    bound_there_ = std::move(*there);
    STEER_ASSERT_OK(first().hold(STEER_PROBE_SOCKMAP, 0, socket_a_.get()));
    STEER_ASSERT_OK(second().hold(STEER_PROBE_SOCKMAP, 0, socket_b_.get()));
  }
  // Configures both and attaches them, first one first.
  void attach(const steer_probe_lookup_config& first_config,
              const steer_probe_lookup_config& second_config) {
    STEER_ASSERT_OK(first().configure(first_config));
    STEER_ASSERT_OK(second().configure(second_config));
    STEER_ASSERT_OK_AND_ASSIGN(first_link_, first().attach());
    STEER_ASSERT_OK_AND_ASSIGN(second_link_, second().attach());
  }
  const SocketKind& kind() const { return GetParam(); }
  SocketAddress destination() const { return steered_address(kind().family); }
  const LookupProbe& first() const { return *first_; }
  const LookupProbe& second() const { return *second_; }
  // Nothing arrived anywhere but `except`.
  void expect_only(int except) {
    for (int fd : {socket_a_.get(), socket_b_.get(), bound_there_.get()}) {
      if (fd != except) {
        EXPECT_TRUE(nothing_queued(kind(), fd));
      }
    }
  }

  Fd socket_a_, socket_b_, bound_there_;

 private:
  std::optional<LookupProbe> first_, second_;
  Link first_link_, second_link_;
};
INSTANTIATE_TEST_SUITE_P(SkLookup, SkLookupChain, ::testing::ValuesIn(kKinds), KindName());

const steer_probe_lookup_config kAssignA = assign_config(STEER_PROBE_SOCKMAP, 0);

// G.34: both programs select with SK_PASS (the second with F_REPLACE): the last one wins.
// The second program sees the first one's selection in ctx->sk.
TEST_P(SkLookupChain, LastSelectingPassWins) {
  attach(kAssignA, assign_config(STEER_PROBE_SOCKMAP, 0, BPF_SK_LOOKUP_F_REPLACE));
  EXPECT_TRUE(lands_on(kind(), destination(), socket_b_.get()));
  expect_only(socket_b_.get());
  STEER_ASSERT_OK_AND_ASSIGN(auto second_result, second().result());
  EXPECT_EQ(second_result.first_assign, 0);
  EXPECT_EQ(second_result.saw_selection, 1u);
}

// G.34/G.35: the earlier program's selection counts as taken: without F_REPLACE the second
// program's assign is -EEXIST and the first selection stands.
TEST_P(SkLookupChain, LaterAssignWithoutReplaceIsEexist) {
  attach(kAssignA, assign_config(STEER_PROBE_SOCKMAP, 0));
  EXPECT_TRUE(lands_on(kind(), destination(), socket_a_.get()));
  expect_only(socket_a_.get());
  STEER_ASSERT_OK_AND_ASSIGN(auto second_result, second().result());
  EXPECT_EQ(second_result.first_assign, -EEXIST);
}

// G.34: a selection with SK_PASS survives a later program's SK_DROP (the kernel drops only
// when no program selected).
TEST_P(SkLookupChain, SelectionSurvivesALaterDrop) {
  attach(kAssignA, drop_config());
  EXPECT_TRUE(lands_on(kind(), destination(), socket_a_.get()));
  expect_only(socket_a_.get());
  STEER_ASSERT_OK_AND_ASSIGN(auto second_result, second().result());
  EXPECT_EQ(second_result.runs, 1u);
  EXPECT_EQ(second_result.saw_selection, 1u);
}

// G.34: a drop with no selection anywhere fails the lookup, even if the other program passes.
TEST_P(SkLookupChain, DropWithoutSelectionFails) {
  attach(pass_config(), drop_config());
  EXPECT_TRUE(refused(kind(), destination()));
  expect_only(-1);
}

// G.34: a selection returned with SK_DROP is discarded and counts as a drop.
TEST_P(SkLookupChain, SelectionWithDropVerdictIsDiscarded) {
  auto assign_then_drop = kAssignA;
  assign_then_drop.verdict = SK_DROP;
  attach(assign_then_drop, pass_config());
  EXPECT_TRUE(refused(kind(), destination()));
  expect_only(-1);
  STEER_ASSERT_OK_AND_ASSIGN(auto second_result, second().result());
  EXPECT_EQ(second_result.saw_selection, 0u);
}

// G.34: all programs pass without selecting: the normal lookup finds the bound socket.
TEST_P(SkLookupChain, AllPassWithoutSelectionIsTheNormalLookup) {
  attach(pass_config(), pass_config());
  EXPECT_TRUE(lands_on(kind(), destination(), bound_there_.get()));
  expect_only(bound_there_.get());
  STEER_ASSERT_OK_AND_ASSIGN(auto first_result, first().result());
  STEER_ASSERT_OK_AND_ASSIGN(auto second_result, second().result());
  EXPECT_EQ(first_result.runs, 1u);
  EXPECT_EQ(second_result.runs, 1u);
}

// ---- G.37: an assigned socket in a reuseport group -------------------------------------

// Two members of one SO_REUSEPORT group on the receiver address, with probe_select in
// FIXED mode picking member 1; sk_lookup assigns member 0.
class SkLookupReuseport : public KernelTest, public ::testing::WithParamInterface<Flavor> {
 protected:
  void SetUp() override {
    KernelTest::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    auto lookup = LookupProbe::load();
    ASSERT_TRUE(lookup.has_value()) << lookup.error().message;
    lookup_.emplace(std::move(*lookup));
    auto reuseport = ReuseportProbe::load();
    ASSERT_TRUE(reuseport.has_value()) << reuseport.error().message;
    reuseport_.emplace(std::move(*reuseport));
    for (auto* member : {&member0_, &member1_}) {
      auto fd = make_receiver(kind(), receiver_address(kind().family),
                              SocketOptions{.reuseport = true});
      ASSERT_TRUE(fd.has_value()) << fd.error().message;
      *member = std::move(*fd);
    }
    STEER_ASSERT_OK(reuseport_->hold(map(), 0, member0_.get()));
    STEER_ASSERT_OK(reuseport_->hold(map(), 1, member1_.get()));
    STEER_ASSERT_OK(reuseport_->attach(member0_.get()));
    STEER_ASSERT_OK(lookup_->hold(map(), 0, member0_.get()));
  }
  const SocketKind& kind() const { return GetParam().kind; }
  steer_probe_map_kind map() const { return GetParam().map; }
  SocketAddress destination() const { return steered_address(kind().family); }

  std::optional<LookupProbe> lookup_;
  std::optional<ReuseportProbe> reuseport_;
  Fd member0_, member1_;
};
INSTANTIATE_TEST_SUITE_P(SkLookup, SkLookupReuseport, ::testing::ValuesIn(all_flavors()),
                         FlavorName());

// G.37: without F_NO_REUSEPORT the group's program picks: member 1 gets it, not member 0.
TEST_P(SkLookupReuseport, GroupProgramPicksTheMember) {
  STEER_ASSERT_OK(reuseport_->select_fixed(map(), 1));
  STEER_ASSERT_OK(lookup_->configure(assign_config(map(), 0)));
  STEER_ASSERT_OK_AND_ASSIGN(Link link, lookup_->attach());
  EXPECT_TRUE(lands_on(kind(), destination(), member1_.get()));
  EXPECT_TRUE(nothing_queued(kind(), member0_.get()));
  STEER_ASSERT_OK_AND_ASSIGN(auto result, reuseport_->result());
  EXPECT_EQ(result.selections, 1u);
  EXPECT_EQ(result.last_select, 0);
}

// G.37: with BPF_SK_LOOKUP_F_NO_REUSEPORT the assigned socket itself gets it and the group's
// program does not run.
TEST_P(SkLookupReuseport, NoReuseportFlagKeepsTheAssignedSocket) {
  STEER_ASSERT_OK(reuseport_->select_fixed(map(), 1));
  STEER_ASSERT_OK(lookup_->configure(assign_config(map(), 0, BPF_SK_LOOKUP_F_NO_REUSEPORT)));
  STEER_ASSERT_OK_AND_ASSIGN(Link link, lookup_->attach());
  EXPECT_TRUE(lands_on(kind(), destination(), member0_.get()));
  EXPECT_TRUE(nothing_queued(kind(), member1_.get()));
  STEER_ASSERT_OK_AND_ASSIGN(auto result, reuseport_->result());
  EXPECT_EQ(result.selections, 0u);
}

// G.37: the group's program drops (its key is empty: select fails, SK_DROP): the lookup fails,
// with no fallback to the assigned socket.
TEST_P(SkLookupReuseport, GroupProgramDropRefuses) {
  STEER_ASSERT_OK(reuseport_->select_fixed(map(), 7));  // an empty slot
  STEER_ASSERT_OK(lookup_->configure(assign_config(map(), 0)));
  STEER_ASSERT_OK_AND_ASSIGN(Link link, lookup_->attach());
  EXPECT_TRUE(refused(kind(), destination()));
  EXPECT_TRUE(nothing_queued(kind(), member0_.get()));
  EXPECT_TRUE(nothing_queued(kind(), member1_.get()));
  STEER_ASSERT_OK_AND_ASSIGN(auto result, reuseport_->result());
  EXPECT_EQ(result.selections, 1u);
  EXPECT_EQ(result.select_errors, 1u);
}

// ---- G.38: BPF_PROG_TEST_RUN -----------------------------------------------------------

using SkLookupTestRun = KernelTest;

bpf_sk_lookup tcp4_context() {
  return bpf::make_sk_lookup_context(IPPROTO_TCP, parse_address("192.0.2.1:40000"),
                                     steered_address(AF_INET));
}

// The raw syscall, for the argument combinations the wrapper never makes.
struct RawRun {
  int error = 0;  // positive errno, 0 on success
  uint32_t retval = 0;
  uint32_t ctx_size_out = 0;
};
RawRun raw_test_run(int program_fd, const void* ctx_in, uint32_t ctx_size_in, void* ctx_out,
                    uint32_t ctx_size_out) {
  LIBBPF_OPTS(bpf_test_run_opts, options, .ctx_in = ctx_in, .ctx_out = ctx_out,
              .ctx_size_in = ctx_size_in, .ctx_size_out = ctx_size_out);
  int ret = bpf_prog_test_run_opts(program_fd, &options);
  return {ret < 0 ? -ret : 0, options.retval, options.ctx_size_out};
}

// G.38: a test run reports the program's verdict; no selection -> cookie 0.
TEST_F(SkLookupTestRun, ReportsPassAndDrop) {
  STEER_ASSERT_OK_AND_ASSIGN(auto probe, LookupProbe::load());
  STEER_ASSERT_OK(probe.configure(pass_config(0)));
  STEER_ASSERT_OK_AND_ASSIGN(auto passed, bpf::test_run_sk_lookup(probe.program_fd(),
                                                                  tcp4_context(), 10));
  EXPECT_EQ(passed.verdict, static_cast<uint32_t>(SK_PASS));
  EXPECT_EQ(passed.selected_cookie, 0u);
  STEER_ASSERT_OK(probe.configure(drop_config(0)));
  STEER_ASSERT_OK_AND_ASSIGN(auto dropped,
                             bpf::test_run_sk_lookup(probe.program_fd(), tcp4_context()));
  EXPECT_EQ(dropped.verdict, static_cast<uint32_t>(SK_DROP));
  STEER_ASSERT_OK_AND_ASSIGN(auto result, probe.result());
  EXPECT_EQ(result.runs, 11u);
  EXPECT_EQ(result.last_local_port, kSteeredPort);
  EXPECT_EQ(result.last_remote_port, 40000u);
}

// G.38: with separate ctx_in and ctx_out (ctx_size_out = sizeof(struct bpf_sk_lookup)), a run
// that selects a socket succeeds and ctx_out.cookie is that socket's SO_COOKIE.
TEST_F(SkLookupTestRun, CtxOutCookieIsTheSelectedSocket) {
  STEER_ASSERT_OK_AND_ASSIGN(auto probe, LookupProbe::load());
  STEER_ASSERT_OK_AND_ASSIGN(Fd listener, listen_tcp(receiver_address(AF_INET)));
  STEER_ASSERT_OK_AND_ASSIGN(uint64_t cookie, socket_cookie(listener.get()));
  STEER_ASSERT_OK(probe.hold(STEER_PROBE_SOCKHASH, 5, listener.get()));
  STEER_ASSERT_OK(probe.configure(assign_config(STEER_PROBE_SOCKHASH, 5, 0, 0)));

  const bpf_sk_lookup input = tcp4_context();
  bpf_sk_lookup output{};
  RawRun run = raw_test_run(probe.program_fd(), &input, sizeof(input), &output, sizeof(output));
  ASSERT_EQ(errno_name(run.error), errno_name(0));
  EXPECT_EQ(run.retval, static_cast<uint32_t>(SK_PASS));
  EXPECT_EQ(run.ctx_size_out, sizeof(bpf_sk_lookup));
  EXPECT_EQ(output.cookie, cookie);
  // The rest of ctx_out is ctx_in, echoed.
  EXPECT_EQ(output.family, input.family);
  EXPECT_EQ(output.local_port, input.local_port);
  // The wrapper does the same.
  STEER_ASSERT_OK_AND_ASSIGN(auto wrapped, bpf::test_run_sk_lookup(probe.program_fd(), input));
  EXPECT_EQ(wrapped.verdict, static_cast<uint32_t>(SK_PASS));
  EXPECT_EQ(wrapped.selected_cookie, cookie);
}

// G.38, the EINVAL puzzle: ctx_in and ctx_out may be the same buffer, and the first run works;
// but it leaves the cookie in the buffer, and `cookie` shares a union with `sk`, which must be
// zero on input: running again on the same buffer is EINVAL. A run that selects nothing
// writes cookie 0, so only selecting programs trip over it.
TEST_F(SkLookupTestRun, ReusingCtxOutAsCtxInAfterASelectionIsEinval) {
  STEER_ASSERT_OK_AND_ASSIGN(auto probe, LookupProbe::load());
  STEER_ASSERT_OK_AND_ASSIGN(Fd listener, listen_tcp(receiver_address(AF_INET)));
  STEER_ASSERT_OK_AND_ASSIGN(uint64_t cookie, socket_cookie(listener.get()));
  STEER_ASSERT_OK(probe.hold(STEER_PROBE_SOCKMAP, 0, listener.get()));

  STEER_ASSERT_OK(probe.configure(pass_config(0)));
  bpf_sk_lookup shared = tcp4_context();
  for (int i = 0; i < 2; ++i) {
    RawRun run = raw_test_run(probe.program_fd(), &shared, sizeof(shared), &shared, sizeof(shared));
    EXPECT_EQ(errno_name(run.error), errno_name(0)) << "no selection, run " << i;
    EXPECT_EQ(shared.cookie, 0u);
  }

  STEER_ASSERT_OK(probe.configure(assign_config(STEER_PROBE_SOCKMAP, 0, 0, 0)));
  RawRun first = raw_test_run(probe.program_fd(), &shared, sizeof(shared), &shared, sizeof(shared));
  EXPECT_EQ(errno_name(first.error), errno_name(0));
  EXPECT_EQ(shared.cookie, cookie);
  RawRun again = raw_test_run(probe.program_fd(), &shared, sizeof(shared), &shared, sizeof(shared));
  EXPECT_EQ(errno_name(again.error), errno_name(EINVAL));
  // Any non-zero cookie in ctx_in is refused, selection or not.
  STEER_ASSERT_OK(probe.configure(pass_config(0)));
  bpf_sk_lookup stale = tcp4_context();
  stale.cookie = 1;
  EXPECT_EQ(errno_name(raw_test_run(probe.program_fd(), &stale, sizeof(stale), nullptr, 0).error),
            errno_name(EINVAL));
}

// G.38: the other ways a test run's ctx arguments fail.
TEST_F(SkLookupTestRun, CtxArgumentErrors) {
  STEER_ASSERT_OK_AND_ASSIGN(auto probe, LookupProbe::load());
  STEER_ASSERT_OK_AND_ASSIGN(Fd listener, listen_tcp(receiver_address(AF_INET)));
  STEER_ASSERT_OK(probe.hold(STEER_PROBE_SOCKMAP, 0, listener.get()));
  STEER_ASSERT_OK(probe.configure(assign_config(STEER_PROBE_SOCKMAP, 0, 0, 0)));
  const int program = probe.program_fd();
  const bpf_sk_lookup input = tcp4_context();
  bpf_sk_lookup output{};

  // No ctx at all: EINVAL (the run needs a lookup to describe).
  EXPECT_EQ(errno_name(raw_test_run(program, nullptr, 0, nullptr, 0).error), errno_name(EINVAL));
  // ctx_in only: fine (the selection is made, just not reported).
  EXPECT_EQ(errno_name(raw_test_run(program, &input, sizeof(input), nullptr, 0).error),
            errno_name(0));
  // ctx_out without ctx_size_out: EINVAL, checked before the program runs.
  EXPECT_EQ(errno_name(raw_test_run(program, &input, sizeof(input), &output, 0).error),
            errno_name(EINVAL));
  // ctx_out smaller than struct bpf_sk_lookup: ENOSPC, the needed size is reported.
  RawRun short_out = raw_test_run(program, &input, sizeof(input), &output, 8);
  EXPECT_EQ(errno_name(short_out.error), errno_name(ENOSPC));
  EXPECT_EQ(short_out.ctx_size_out, sizeof(bpf_sk_lookup));
  // ctx_out without ctx_in: the kernel starts from a zeroed ctx, family 0: EAFNOSUPPORT.
  EXPECT_EQ(errno_name(raw_test_run(program, nullptr, 0, &output, sizeof(output)).error),
            errno_name(EAFNOSUPPORT));
  // ingress_ifindex (after local_port) must be zero in ctx_in: EINVAL.
  bpf_sk_lookup with_ifindex = input;
  with_ifindex.ingress_ifindex = 1;
  EXPECT_EQ(
      errno_name(raw_test_run(program, &with_ifindex, sizeof(with_ifindex), nullptr, 0).error),
      errno_name(EINVAL));
  STEER_EXPECT_ERRNO(bpf::test_run_sk_lookup(program, with_ifindex), EINVAL);
  // local_port above 65535: ERANGE.
  bpf_sk_lookup big_port = input;
  big_port.local_port = 70000;
  EXPECT_EQ(errno_name(raw_test_run(program, &big_port, sizeof(big_port), nullptr, 0).error),
            errno_name(ERANGE));
}

// G.38/G.37: a test run cannot run a reuseport group's program, so selecting a SO_REUSEPORT
// socket without F_NO_REUSEPORT fails the whole run with EOPNOTSUPP, with or without ctx_out;
// with F_NO_REUSEPORT it succeeds and reports the cookie.
TEST_F(SkLookupTestRun, ReuseportSelectionNeedsNoReuseport) {
  STEER_ASSERT_OK_AND_ASSIGN(auto probe, LookupProbe::load());
  STEER_ASSERT_OK_AND_ASSIGN(Fd listener, listen_tcp(receiver_address(AF_INET),
                                                     SocketOptions{.reuseport = true}));
  STEER_ASSERT_OK_AND_ASSIGN(uint64_t cookie, socket_cookie(listener.get()));
  STEER_ASSERT_OK(probe.hold(STEER_PROBE_SOCKMAP, 0, listener.get()));
  const bpf_sk_lookup input = tcp4_context();
  bpf_sk_lookup output{};

  STEER_ASSERT_OK(probe.configure(assign_config(STEER_PROBE_SOCKMAP, 0, 0, 0)));
  EXPECT_EQ(errno_name(raw_test_run(probe.program_fd(), &input, sizeof(input), nullptr, 0).error),
            errno_name(EOPNOTSUPP));
  EXPECT_EQ(errno_name(raw_test_run(probe.program_fd(), &input, sizeof(input), &output,
                                    sizeof(output)).error),
            errno_name(EOPNOTSUPP));
  STEER_EXPECT_ERRNO(bpf::test_run_sk_lookup(probe.program_fd(), input), EOPNOTSUPP);

  STEER_ASSERT_OK(probe.configure(
      assign_config(STEER_PROBE_SOCKMAP, 0, BPF_SK_LOOKUP_F_NO_REUSEPORT, 0)));
  STEER_ASSERT_OK_AND_ASSIGN(auto run, bpf::test_run_sk_lookup(probe.program_fd(), input));
  EXPECT_EQ(run.verdict, static_cast<uint32_t>(SK_PASS));
  EXPECT_EQ(run.selected_cookie, cookie);
}

// G.38/G.36: bpf_sk_assign's checks apply in a test run too: a UDP socket for a TCP ctx is
// -EPROTOTYPE, nothing is selected, and the run succeeds with cookie 0.
TEST_F(SkLookupTestRun, FailedAssignSelectsNothing) {
  STEER_ASSERT_OK_AND_ASSIGN(auto probe, LookupProbe::load());
  STEER_ASSERT_OK_AND_ASSIGN(Fd udp, bind_udp(receiver_address(AF_INET)));
  STEER_ASSERT_OK(probe.hold(STEER_PROBE_SOCKMAP, 0, udp.get()));
  STEER_ASSERT_OK(probe.configure(assign_config(STEER_PROBE_SOCKMAP, 0, 0, 0)));
  STEER_ASSERT_OK_AND_ASSIGN(auto run, bpf::test_run_sk_lookup(probe.program_fd(),
                                                               tcp4_context()));
  EXPECT_EQ(run.verdict, static_cast<uint32_t>(SK_PASS));
  EXPECT_EQ(run.selected_cookie, 0u);
  STEER_ASSERT_OK_AND_ASSIGN(auto result, probe.result());
  EXPECT_EQ(result.first_assign, -EPROTOTYPE);
}

}  // namespace
}  // namespace steer::testing
