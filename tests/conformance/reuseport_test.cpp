// kernel.md F.25-F.31: an sk_reuseport program choosing group members from a SOCKMAP or
// SOCKHASH with bpf_sk_select_reuseport (the helper's errors, and what happens to the
// connection), and migration of a closing listener's queue (BPF_SK_REUSEPORT_SELECT_OR_MIGRATE).
#include <fcntl.h>
#include <linux/bpf.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/stat.h>

#include <bpf/bpf.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <fstream>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "base/netns.h"
#include "bpf/link.h"
#include "bpf/map.h"
#include "bpf/probe_programs.h"
#include "support/kernel_test.h"

namespace steer::testing {
namespace {

using bpf::SockHash;
using bpf::SockMap;
using namespace std::chrono_literals;

constexpr auto kWaitLimit = 5s;

struct Case {
  int family;
  int type;
  steer_probe_map_kind map_kind;
  const char* name;
};

std::string case_name(const ::testing::TestParamInfo<Case>& info) { return info.param.name; }

SocketAddress loopback(int family, uint16_t port = 0) {
  return family == AF_INET ? SocketAddress::ipv4_loopback(port)
                           : SocketAddress::ipv6_loopback(port);
}

int other_family(int family) { return family == AF_INET ? AF_INET6 : AF_INET; }
int other_type(int type) { return type == SOCK_STREAM ? SOCK_DGRAM : SOCK_STREAM; }

// A socket in the state the maps take: TCP listening, UDP bound (on a port of its own).
// Non-blocking, so that accept_now / accept_all never wait on an empty queue.
Result<Fd> ready_socket(int family, int type, bool reuseport, uint16_t port = 0) {
  SocketOptions options{.reuseport = reuseport};
  auto socket = type == SOCK_STREAM ? listen_tcp(loopback(family, port), options)
                                    : bind_udp(loopback(family, port), options);
  if (socket && ::fcntl(socket->get(), F_SETFL, O_NONBLOCK) != 0)
    return fail_errno("set O_NONBLOCK");
  return socket;
}

// Polls `done` until it holds or kWaitLimit passes: the kernel's work is asynchronous
// (softirq on loopback), so tests wait for a state, never for a fixed time.
bool wait_until(const std::function<bool()>& done) {
  auto deadline = std::chrono::steady_clock::now() + kWaitLimit;
  while (!done()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(1ms);
  }
  return true;
}

// Connections waiting in a listener's accept queue (TCP_INFO reports sk_ack_backlog as
// tcpi_unacked for a listener), read without accepting them.
int accept_queue_length(int listener_fd) {
  tcp_info info{};
  socklen_t length = sizeof(info);
  if (::getsockopt(listener_fd, IPPROTO_TCP, TCP_INFO, &info, &length) != 0) return -1;
  return static_cast<int>(info.tcpi_unacked);
}

int count_datagrams(int socket_fd) {
  int count = 0;
  while (receive_udp_now(socket_fd)) ++count;
  return count;
}

// Drains every member (accepting connections or reading datagrams) until `expected` have
// arrived in total or the wait limit passes; returns how many each member got.
std::vector<int> collect(const std::vector<Fd>& members, int type, int expected) {
  std::vector<int> counts(members.size(), 0);
  auto drain = [&] {
    int total = 0;
    for (size_t i = 0; i < members.size(); ++i) {
      counts[i] += type == SOCK_STREAM ? accept_all(members[i].get())
                                       : count_datagrams(members[i].get());
      total += counts[i];
    }
    return total >= expected;
  };
  wait_until(drain);
  return counts;
}

// The namespace the process started in (read before main, so before any test's unshare):
// the machine's own when run by hand. Sysctls are only ever written elsewhere.
const ino_t kStartingNetnsInode = [] {
  struct stat st {};
  return ::stat("/proc/self/ns/net", &st) == 0 ? st.st_ino : 0;
}();

std::string read_sysctl(const std::string& name) {
  std::ifstream file("/proc/sys/" + name);
  std::string value;
  file >> value;
  return value;
}

class ReuseportTest : public KernelTest {
 protected:
  void SetUp() override {
    KernelTest::SetUp();
    if (HasFatalFailure() || IsSkipped()) return;
    STEER_ASSERT_OK_AND_ASSIGN(skeleton_, bpf::ProbeReuseport::open_and_load("probe_reuseport"));
    STEER_ASSERT_OK_AND_ASSIGN(auto sockmap_fd,
                               bpf::Map::from_fd(bpf_map__fd(skel()->maps.probe_sockmap)));
    STEER_ASSERT_OK_AND_ASSIGN(sockmap_, SockMap::wrap(std::move(sockmap_fd)));
    STEER_ASSERT_OK_AND_ASSIGN(auto sockhash_fd,
                               bpf::Map::from_fd(bpf_map__fd(skel()->maps.probe_sockhash)));
    STEER_ASSERT_OK_AND_ASSIGN(sockhash_, SockHash<uint32_t>::wrap(std::move(sockhash_fd)));
  }

  // The group: `size` SO_REUSEPORT sockets of one kind on one loopback port.
  void make_group(int family, int type, int size) {
    for (int i = 0; i < size; ++i) {
      uint16_t port = group_.empty() ? 0 : group_address_.port();
      STEER_ASSERT_OK_AND_ASSIGN(Fd member, ready_socket(family, type, true, port));
      if (group_.empty()) {
        STEER_ASSERT_OK_AND_ASSIGN(group_address_, local_address(member.get()));
      }
      group_.push_back(std::move(member));
    }
  }

  Result<void> insert(steer_probe_map_kind kind, uint32_t key, int socket_fd) {
    return kind == STEER_PROBE_SOCKMAP ? sockmap_->insert(key, socket_fd)
                                       : sockhash_->insert(key, socket_fd);
  }

  void configure(const steer_probe_reuseport_config& config) {
    uint32_t zero = 0;
    ASSERT_EQ(bpf_map_update_elem(bpf_map__fd(skel()->maps.reuseport_config), &zero, &config,
                                  BPF_ANY),
              0);
  }

  steer_probe_reuseport_result result() {
    uint32_t zero = 0;
    steer_probe_reuseport_result value{};
    EXPECT_EQ(bpf_map_lookup_elem(bpf_map__fd(skel()->maps.reuseport_result), &zero, &value),
              0);
    return value;
  }

  // Sends `count` connections (kept open in clients_) or datagrams to the group.
  void deliver(int type, int count) {
    for (int i = 0; i < count; ++i) {
      if (type == SOCK_STREAM) {
        STEER_ASSERT_OK_AND_ASSIGN(Fd client, connect_tcp(group_address_));
        clients_.push_back(std::move(client));
      } else {
        STEER_ASSERT_OK(send_udp(group_address_, fmt::format("datagram {}", i)));
      }
    }
  }

  bool wait_for_selections(uint64_t count) {
    return wait_until([&] { return result().selections >= count; });
  }

  probe_reuseport* skel() const { return skeleton_->get(); }

  std::optional<bpf::ProbeReuseport> skeleton_;
  std::optional<SockMap> sockmap_;
  std::optional<SockHash<uint32_t>> sockhash_;
  std::vector<Fd> group_;
  SocketAddress group_address_;
  std::vector<Fd> clients_;
};

// ---- Selecting members: TCP/UDP x IPv4/IPv6 x SOCKMAP/SOCKHASH ---------------------------

class ReuseportSelect : public ReuseportTest, public ::testing::WithParamInterface<Case> {
 protected:
  void SetUp() override {
    ReuseportTest::SetUp();
    if (HasFatalFailure() || IsSkipped()) return;
    const Case& c = GetParam();
    make_group(c.family, c.type, kMembers);
    if (HasFatalFailure()) return;
    for (uint32_t key = 0; key < kMembers; ++key)
      STEER_ASSERT_OK(insert(c.map_kind, key, group_[key].get()));
    STEER_ASSERT_OK(bpf::attach_reuseport(skel()->progs.probe_select, group_[0].get()));
  }

  // The program selects `foreign` (at key 7) for one connection or datagram: the helper's
  // error is recorded, the program returns SK_DROP, and nothing reaches any member.
  void expect_selection_error(int foreign_fd, int expected_errno) {
    const Case& c = GetParam();
    STEER_ASSERT_OK(insert(c.map_kind, 7, foreign_fd));
    configure({.mode = STEER_PROBE_REUSEPORT_FIXED, .map_kind = c.map_kind, .key = 7});
    expect_dropped();
    EXPECT_EQ(result().last_select, -expected_errno)
        << "expected -" << errno_name(expected_errno) << ", got "
        << errno_name(static_cast<int>(-result().last_select));
    EXPECT_EQ(result().select_errors, 1u);
    if (c.type == SOCK_STREAM) EXPECT_EQ(accept_all(foreign_fd), 0);
    else EXPECT_EQ(count_datagrams(foreign_fd), 0);
  }

  // One connection (TCP: refused) or datagram (UDP: never delivered) that the program drops.
  void expect_dropped() {
    const Case& c = GetParam();
    if (c.type == SOCK_STREAM) {
      EXPECT_EQ(errno_name(tcp_connect_errno(group_address_)), errno_name(ECONNREFUSED));
    } else {
      STEER_ASSERT_OK(send_udp(group_address_, "dropped"));
    }
    // The verdict is given when the program runs, so once it has run the drop is final.
    ASSERT_TRUE(wait_for_selections(1)) << "the sk_reuseport program never ran";
    for (const Fd& member : group_) {
      if (c.type == SOCK_STREAM) EXPECT_EQ(accept_all(member.get()), 0);
      else EXPECT_EQ(count_datagrams(member.get()), 0);
    }
  }

  static constexpr uint32_t kMembers = 3;
  static constexpr int kConnections = 20;
};

// F.25/F.29: FIXED key 1 -> every connection (TCP listener) or datagram (bound UDP) reaches
// member 1; md->sk is a member of the group, bound to the group's port.
TEST_P(ReuseportSelect, FixedKeyGetsEverything) {
  const Case& c = GetParam();
  configure({.mode = STEER_PROBE_REUSEPORT_FIXED, .map_kind = c.map_kind, .key = 1});
  deliver(c.type, kConnections);
  auto counts = collect(group_, c.type, kConnections);
  EXPECT_EQ(counts, (std::vector<int>{0, kConnections, 0}));
  auto seen = result();
  EXPECT_EQ(seen.selections, static_cast<uint64_t>(kConnections));
  EXPECT_EQ(seen.select_errors, 0u);
  EXPECT_EQ(seen.last_select, 0);
  EXPECT_EQ(seen.last_sk_port, group_address_.port());
  std::vector<uint64_t> cookies;
  for (const Fd& member : group_) cookies.push_back(*socket_cookie(member.get()));
  EXPECT_NE(std::find(cookies.begin(), cookies.end(), seen.last_sk_cookie), cookies.end())
      << "md->sk is not a member of the group";
}

// F.25/F.29: ROUND_ROBIN over keys 0 and 1 -> exactly half each, member 2 (not chosen) none.
TEST_P(ReuseportSelect, RoundRobinSpreadsAsTheProgramSays) {
  const Case& c = GetParam();
  configure({.mode = STEER_PROBE_REUSEPORT_ROUND_ROBIN, .map_kind = c.map_kind, .count = 2});
  deliver(c.type, kConnections);
  auto counts = collect(group_, c.type, kConnections);
  EXPECT_EQ(counts, (std::vector<int>{kConnections / 2, kConnections / 2, 0}));
  EXPECT_EQ(result().select_errors, 0u);
}

// F.26: an empty key -> -ENOENT; with SK_DROP the connection is refused / datagram dropped.
TEST_P(ReuseportSelect, MissingKeyIsEnoentAndDrops) {
  const Case& c = GetParam();
  configure({.mode = STEER_PROBE_REUSEPORT_FIXED, .map_kind = c.map_kind, .key = 5});
  expect_dropped();
  EXPECT_EQ(result().last_select, -ENOENT);
}

// F.27: a socket with no reuseport group (no SO_REUSEPORT, same kind) -> -EINVAL.
TEST_P(ReuseportSelect, SocketWithoutGroupIsEinval) {
  const Case& c = GetParam();
  STEER_ASSERT_OK_AND_ASSIGN(Fd loner, ready_socket(c.family, c.type, false));
  expect_selection_error(loner.get(), EINVAL);
}

// F.28: a member of another group (same kind, another port) -> -EBADFD.
TEST_P(ReuseportSelect, OtherGroupIsEbadfd) {
  const Case& c = GetParam();
  STEER_ASSERT_OK_AND_ASSIGN(Fd stranger, ready_socket(c.family, c.type, true));
  expect_selection_error(stranger.get(), EBADFD);
}

// F.28: another protocol (UDP for a TCP group, TCP for a UDP group) -> -EPROTOTYPE.
TEST_P(ReuseportSelect, OtherProtocolIsEprototype) {
  const Case& c = GetParam();
  STEER_ASSERT_OK_AND_ASSIGN(Fd stranger, ready_socket(c.family, other_type(c.type), true));
  expect_selection_error(stranger.get(), EPROTOTYPE);
}

// F.28: another family, same protocol -> -EAFNOSUPPORT.
TEST_P(ReuseportSelect, OtherFamilyIsEafnosupport) {
  const Case& c = GetParam();
  STEER_ASSERT_OK_AND_ASSIGN(Fd stranger, ready_socket(other_family(c.family), c.type, true));
  expect_selection_error(stranger.get(), EAFNOSUPPORT);
}

// F.28: protocol and family both differ -> the protocol is checked first: -EPROTOTYPE.
TEST_P(ReuseportSelect, ProtocolIsCheckedBeforeFamily) {
  const Case& c = GetParam();
  STEER_ASSERT_OK_AND_ASSIGN(
      Fd stranger, ready_socket(other_family(c.family), other_type(c.type), true));
  expect_selection_error(stranger.get(), EPROTOTYPE);
}

constexpr Case kSelectCases[] = {
    {AF_INET, SOCK_STREAM, STEER_PROBE_SOCKMAP, "tcp4_SOCKMAP"},
    {AF_INET, SOCK_STREAM, STEER_PROBE_SOCKHASH, "tcp4_SOCKHASH"},
    {AF_INET6, SOCK_STREAM, STEER_PROBE_SOCKMAP, "tcp6_SOCKMAP"},
    {AF_INET6, SOCK_STREAM, STEER_PROBE_SOCKHASH, "tcp6_SOCKHASH"},
    {AF_INET, SOCK_DGRAM, STEER_PROBE_SOCKMAP, "udp4_SOCKMAP"},
    {AF_INET, SOCK_DGRAM, STEER_PROBE_SOCKHASH, "udp4_SOCKHASH"},
    {AF_INET6, SOCK_DGRAM, STEER_PROBE_SOCKMAP, "udp6_SOCKMAP"},
    {AF_INET6, SOCK_DGRAM, STEER_PROBE_SOCKHASH, "udp6_SOCKHASH"},
};
INSTANTIATE_TEST_SUITE_P(Reuseport, ReuseportSelect, ::testing::ValuesIn(kSelectCases), case_name);

// ---- TCP only: established sockets and migration -----------------------------------------

class ReuseportTcp : public ReuseportTest, public ::testing::WithParamInterface<Case> {
 protected:
  // Members A (key 0) and B (key 1) with `program` attached; new connections go to A.
  void SetUpGroup(const bpf_program* program) {
    const Case& c = GetParam();
    make_group(c.family, SOCK_STREAM, 2);
    if (HasFatalFailure()) return;
    STEER_ASSERT_OK(insert(c.map_kind, 0, group_[0].get()));
    STEER_ASSERT_OK(insert(c.map_kind, 1, group_[1].get()));
    STEER_ASSERT_OK(bpf::attach_reuseport(program, group_[0].get()));
    config_ = {.mode = STEER_PROBE_REUSEPORT_FIXED, .map_kind = c.map_kind, .key = 0};
    configure(config_);
  }

  // kQueued connections established and waiting, unaccepted, in A's queue.
  void QueueOnA() {
    deliver(SOCK_STREAM, kQueued);
    if (HasFatalFailure()) return;
    ASSERT_TRUE(wait_until([&] { return accept_queue_length(group_[0].get()) == kQueued; }))
        << "A's accept queue holds " << accept_queue_length(group_[0].get());
    ASSERT_EQ(accept_queue_length(group_[1].get()), 0);
  }

  // Closes A; its queue is migrated or reset inside close().
  void CloseA() {
    a_cookie_ = *socket_cookie(group_[0].get());
    group_[0].reset();
  }

  // Every client can talk with the socket B accepted for it, both ways; B accepted kQueued.
  void ExpectAllMigratedToB() {
    std::vector<Fd> accepted;
    wait_until([&] {
      while (Fd child = accept_now(group_[1].get())) accepted.push_back(std::move(child));
      return accepted.size() >= static_cast<size_t>(kQueued);
    });
    ASSERT_EQ(accepted.size(), static_cast<size_t>(kQueued));
    std::map<uint16_t, int> accepted_by_peer_port;
    for (size_t i = 0; i < accepted.size(); ++i) {
      sockaddr_storage peer{};
      socklen_t length = sizeof(peer);
      ASSERT_EQ(::getpeername(accepted[i].get(), reinterpret_cast<sockaddr*>(&peer), &length), 0);
      accepted_by_peer_port[SocketAddress::from_sockaddr(reinterpret_cast<sockaddr*>(&peer),
                                                         length).port()] = static_cast<int>(i);
    }
    for (size_t i = 0; i < clients_.size(); ++i) {
      SCOPED_TRACE(fmt::format("client {}", i));
      STEER_ASSERT_OK_AND_ASSIGN(SocketAddress client_address, local_address(clients_[i].get()));
      auto found = accepted_by_peer_port.find(client_address.port());
      ASSERT_NE(found, accepted_by_peer_port.end()) << "B accepted no socket for this client";
      int server_fd = accepted[found->second].get();
      std::string message = fmt::format("hello from client {}", i);
      ASSERT_EQ(::send(clients_[i].get(), message.data(), message.size(), MSG_NOSIGNAL),
                static_cast<ssize_t>(message.size()))
          << std::strerror(errno);
      EXPECT_EQ(receive_stream(server_fd, message.size()), message);
      ASSERT_EQ(::send(server_fd, "ok", 2, MSG_NOSIGNAL), 2) << std::strerror(errno);
      EXPECT_EQ(receive_stream(clients_[i].get(), 2), "ok");
    }
  }

  // What each client sees once its queued connection was dropped: the errno of recv().
  void ExpectClientsReset() {
    for (size_t i = 0; i < clients_.size(); ++i) {
      SCOPED_TRACE(fmt::format("client {}", i));
      pollfd waiter{.fd = clients_[i].get(), .events = POLLIN, .revents = 0};
      ASSERT_EQ(::poll(&waiter, 1, 5000), 1) << "the client heard nothing";
      char byte = 0;
      errno = 0;
      EXPECT_EQ(::recv(clients_[i].get(), &byte, 1, MSG_DONTWAIT), -1);
      EXPECT_EQ(errno_name(errno), errno_name(ECONNRESET));
    }
  }

  // Reads exactly `size` bytes (or what came before an error / timeout).
  static std::string receive_stream(int fd, size_t size) {
    std::string data;
    while (data.size() < size) {
      pollfd waiter{.fd = fd, .events = POLLIN, .revents = 0};
      if (::poll(&waiter, 1, 5000) != 1) break;
      char buffer[256];
      ssize_t got = ::recv(fd, buffer, std::min(sizeof(buffer), size - data.size()), MSG_DONTWAIT);
      if (got <= 0) break;
      data.append(buffer, static_cast<size_t>(got));
    }
    return data;
  }

  static constexpr int kQueued = 10;
  steer_probe_reuseport_config config_{};
  uint64_t a_cookie_ = 0;
};

// F.27: an accepted (ESTABLISHED) child has no reuseport group -> -EINVAL, connection refused.
TEST_P(ReuseportTcp, EstablishedChildIsEinval) {
  SetUpGroup(skel()->progs.probe_select);
  ASSERT_FALSE(HasFatalFailure());
  deliver(SOCK_STREAM, 1);
  Fd child;
  ASSERT_TRUE(wait_until([&] { return (child = accept_now(group_[0].get())).valid(); }));
  STEER_ASSERT_OK(insert(GetParam().map_kind, 7, child.get()));
  configure({.mode = STEER_PROBE_REUSEPORT_FIXED, .map_kind = config_.map_kind, .key = 7});
  EXPECT_EQ(errno_name(tcp_connect_errno(group_address_)), errno_name(ECONNREFUSED));
  auto seen = result();
  EXPECT_EQ(seen.selections, 2u);
  EXPECT_EQ(seen.last_select, -EINVAL);
  EXPECT_EQ(accept_all(group_[0].get()) + accept_all(group_[1].get()), 0);
}

// F.31: with a SELECT_OR_MIGRATE program and tcp_migrate_req at 0 (a fresh netns's value),
// closing A moves its whole accept queue to the member the program picks (B): none lost, none
// reset. md->sk is the closing listener; migrating_sk the established child.
TEST_P(ReuseportTcp, MigrateProgramMovesTheQueueToItsChoice) {
  ASSERT_EQ(read_sysctl("net/ipv4/tcp_migrate_req"), "0");
  SetUpGroup(skel()->progs.probe_select_or_migrate);
  ASSERT_FALSE(HasFatalFailure());
  QueueOnA();
  ASSERT_FALSE(HasFatalFailure());
  config_.migrate_key = 1;
  configure(config_);
  CloseA();
  ExpectAllMigratedToB();
  auto seen = result();
  EXPECT_EQ(seen.selections, static_cast<uint64_t>(kQueued));
  EXPECT_EQ(seen.migrations, static_cast<uint64_t>(kQueued));
  EXPECT_EQ(seen.last_migrate, 0);
  EXPECT_EQ(seen.migrate_sk_cookie, a_cookie_) << "md->sk is not the closing listener";
  EXPECT_EQ(seen.migrating_state, static_cast<uint32_t>(TCP_ESTABLISHED));
}

// F.31: SK_PASS without a selection -> the kernel picks by hash (B, the only member left).
TEST_P(ReuseportTcp, MigrateWithoutSelectionLetsTheKernelPick) {
  SetUpGroup(skel()->progs.probe_select_or_migrate);
  ASSERT_FALSE(HasFatalFailure());
  QueueOnA();
  ASSERT_FALSE(HasFatalFailure());
  config_.migrate_key = STEER_PROBE_NO_KEY;
  configure(config_);
  CloseA();
  ExpectAllMigratedToB();
  EXPECT_EQ(result().migrations, static_cast<uint64_t>(kQueued));
}

// F.31: the migrate program's selection fails (empty key: -ENOENT) but it returns SK_PASS ->
// the kernel falls back to its hash pick (B): nothing is lost.
TEST_P(ReuseportTcp, MigrateSelectionErrorFallsBackToTheKernelsPick) {
  SetUpGroup(skel()->progs.probe_select_or_migrate);
  ASSERT_FALSE(HasFatalFailure());
  QueueOnA();
  ASSERT_FALSE(HasFatalFailure());
  config_.migrate_key = 5;
  configure(config_);
  CloseA();
  ExpectAllMigratedToB();
  EXPECT_EQ(result().migrations, static_cast<uint64_t>(kQueued));
  EXPECT_EQ(result().last_migrate, -ENOENT);
}

// F.31: SK_DROP on migration cancels it: B gets nothing, every queued client is reset.
TEST_P(ReuseportTcp, MigrateDropResetsTheQueue) {
  SetUpGroup(skel()->progs.probe_select_or_migrate);
  ASSERT_FALSE(HasFatalFailure());
  QueueOnA();
  ASSERT_FALSE(HasFatalFailure());
  config_.migrate_key = 1;
  config_.migrate_drop = 1;
  configure(config_);
  CloseA();
  EXPECT_EQ(result().migrations, static_cast<uint64_t>(kQueued));
  EXPECT_EQ(accept_queue_length(group_[1].get()), 0);
  ExpectClientsReset();
  EXPECT_EQ(accept_all(group_[1].get()), 0);
}

// F.31: a plain sk_reuseport program and tcp_migrate_req 0 -> no migration: the program is not
// run for the closing listener, B gets nothing, the queued clients are reset.
TEST_P(ReuseportTcp, PlainProgramDoesNotMigrate) {
  ASSERT_EQ(read_sysctl("net/ipv4/tcp_migrate_req"), "0");
  SetUpGroup(skel()->progs.probe_select);
  ASSERT_FALSE(HasFatalFailure());
  QueueOnA();
  ASSERT_FALSE(HasFatalFailure());
  CloseA();
  EXPECT_EQ(result().migrations, 0u);
  EXPECT_EQ(result().selections, static_cast<uint64_t>(kQueued));
  ExpectClientsReset();
  EXPECT_EQ(accept_all(group_[1].get()), 0);
}

// F.31: tcp_migrate_req=1 (set in this test's own netns) migrates without a migrate program;
// the kernel picks by hash among the members left (B).
TEST_P(ReuseportTcp, SysctlMigratesWithAPlainProgram) {
  auto here = current_netns_inode();
  ASSERT_TRUE(here.has_value());
  ASSERT_NE(kStartingNetnsInode, 0u);
  ASSERT_NE(*here, kStartingNetnsInode) << "refusing to write a sysctl of the host namespace";
  {
    std::ofstream sysctl("/proc/sys/net/ipv4/tcp_migrate_req");
    sysctl << "1\n";
  }
  ASSERT_EQ(read_sysctl("net/ipv4/tcp_migrate_req"), "1");
  SetUpGroup(skel()->progs.probe_select);
  ASSERT_FALSE(HasFatalFailure());
  QueueOnA();
  ASSERT_FALSE(HasFatalFailure());
  CloseA();
  ExpectAllMigratedToB();
  EXPECT_EQ(result().selections, static_cast<uint64_t>(kQueued));  // not run for migration
}

constexpr Case kTcpCases[] = {
    {AF_INET, SOCK_STREAM, STEER_PROBE_SOCKMAP, "tcp4_SOCKMAP"},
    {AF_INET, SOCK_STREAM, STEER_PROBE_SOCKHASH, "tcp4_SOCKHASH"},
    {AF_INET6, SOCK_STREAM, STEER_PROBE_SOCKMAP, "tcp6_SOCKMAP"},
    {AF_INET6, SOCK_STREAM, STEER_PROBE_SOCKHASH, "tcp6_SOCKHASH"},
};
INSTANTIATE_TEST_SUITE_P(Reuseport, ReuseportTcp, ::testing::ValuesIn(kTcpCases), case_name);

// ---- Is a program attached to a group? ---------------------------------------------------

class ReuseportAttached : public ReuseportTest {};

// No socket option tells whether a group has a program: there is no getsockopt for
// SO_ATTACH_REUSEPORT_EBPF/CBPF (ENOPROTOOPT), and SO_DETACH_REUSEPORT_BPF answers 0 when it
// removed one and ENOENT when there was none, so asking that way takes the program away.
// (steer reads the group's program from the kernel with a socket iterator instead:
// reuseport.bpf.c, and `Reuseport.AttachRefusesAnotherProgramUnlessReplace` in e2e.)
// SO_DETACH_REUSEPORT_BPF reads no value, but like every SOL_SOCKET option it wants an
// int-sized one: a zero length is EINVAL.
TEST_F(ReuseportAttached, NoSocketOptionTellsWhetherAProgramIsAttached) {
  make_group(AF_INET, SOCK_STREAM, 2);
  ASSERT_FALSE(HasFatalFailure());
  int member = group_[1].get();
  int value = 0;
  socklen_t length = sizeof(value);
  for (int option : {SO_ATTACH_REUSEPORT_EBPF, SO_ATTACH_REUSEPORT_CBPF}) {
    errno = 0;
    EXPECT_EQ(::getsockopt(member, SOL_SOCKET, option, &value, &length), -1);
    EXPECT_EQ(errno_name(errno), errno_name(ENOPROTOOPT)) << "option " << option;
  }
  int none = 0;
  EXPECT_EQ(::setsockopt(member, SOL_SOCKET, SO_DETACH_REUSEPORT_BPF, nullptr, 0), -1);
  EXPECT_EQ(errno_name(errno), errno_name(EINVAL)) << "no int-sized value: EINVAL";
  EXPECT_EQ(::setsockopt(member, SOL_SOCKET, SO_DETACH_REUSEPORT_BPF, &none, sizeof(none)), -1);
  EXPECT_EQ(errno_name(errno), errno_name(ENOENT)) << "no program: ENOENT";
  // Attached through one member, it is the group's: detaching through another finds it.
  STEER_ASSERT_OK(bpf::attach_reuseport(skel()->progs.probe_select, group_[0].get()));
  EXPECT_EQ(::setsockopt(member, SOL_SOCKET, SO_DETACH_REUSEPORT_BPF, &none, sizeof(none)), 0);
  EXPECT_EQ(::setsockopt(member, SOL_SOCKET, SO_DETACH_REUSEPORT_BPF, &none, sizeof(none)), -1);
  EXPECT_EQ(errno_name(errno), errno_name(ENOENT)) << "detached: gone for the whole group";
}

}  // namespace
}  // namespace steer::testing
