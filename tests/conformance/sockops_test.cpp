// kernel.md H.39-40: updating socket maps from BPF. A sockops program attached to a
// temporary child cgroup (never the root) inserts sockets from its callbacks; the sockets
// are created by a child process inside that cgroup and handed to the test. Plain
// bpf_map_update_elem on a socket map: allowed from sk_lookup, refused by the verifier in
// sockops.
#include <bpf/libbpf.h>
#include <linux/bpf.h>
#include <poll.h>
#include <sys/socket.h>

#include <array>
#include <chrono>
#include <functional>
#include <optional>
#include <string>
#include <thread>

#include "bpf/libbpf_log.h"
#include "bpf/link.h"
#include "bpf/map.h"
#include "bpf/probe_programs.h"
#include "bpf/test_run.h"
#include "support/cgroup.h"
#include "support/kernel_test.h"

namespace steer::testing {
namespace {

using bpf::ProbeMapUpdate;
using bpf::ProbeSockops;

// Fresh netns per test: any fixed port is free.
constexpr uint16_t kWatchedPort = 40123;

SocketAddress loopback(int family, uint16_t port) {
  return family == AF_INET ? SocketAddress::ipv4_loopback(port)
                           : SocketAddress::ipv6_loopback(port);
}

const char* map_kind_name(steer_probe_map_kind kind) {
  return kind == STEER_PROBE_SOCKHASH ? "SOCKHASH" : "SOCKMAP";
}

// Polls `condition` every millisecond for up to two seconds: for work the kernel finishes
// in softirq after the syscall that started it has returned.
bool eventually(const std::function<bool()>& condition) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(2);
  while (std::chrono::steady_clock::now() < deadline) {
    if (condition()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return condition();
}

Result<void> bind_and_listen(int fd, const SocketAddress& address) {
  int one = 1;
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  if (address.family() == AF_INET6 &&
      ::setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one)) != 0)
    return fail_errno("set IPV6_V6ONLY");
  if (::bind(fd, address.data(), address.size()) != 0)
    return fail_errno("bind " + address.to_string());
  if (::listen(fd, 16) != 0) return fail_errno("listen on " + address.to_string());
  return {};
}

Result<void> connect_fd(int fd, const SocketAddress& address) {
  if (::connect(fd, address.data(), address.size()) != 0)
    return fail_errno("connect to " + address.to_string());
  return {};
}

// Waits (bounded) for a connection in the listener's accept queue and accepts it.
Result<Fd> accept_within_two_seconds(int listener_fd) {
  pollfd waiting{listener_fd, POLLIN, 0};
  int ready = ::poll(&waiting, 1, 2000);
  if (ready < 0) return fail_errno("poll the listener");
  if (ready == 0) return fail(ETIMEDOUT, "no connection reached the accept queue in 2 s");
  Fd accepted = accept_now(listener_fd);
  if (!accepted) return fail_errno("accept");
  return accepted;
}

// ---- H.39: bpf_sock_map_update / bpf_sock_hash_update from sockops callbacks ----

struct SockopsCase {
  int family;
  steer_probe_map_kind map_kind;
};

std::string sockops_case_name(const ::testing::TestParamInfo<SockopsCase>& info) {
  return fmt::format("tcp{}_{}", info.param.family == AF_INET ? 4 : 6,
                     map_kind_name(info.param.map_kind));
}

// The probe attached to a fresh child cgroup, and a process in it that makes the sockets.
class SockopsMapUpdate : public KernelTest, public ::testing::WithParamInterface<SockopsCase> {
 protected:
  void SetUp() override {
    KernelTest::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    STEER_ASSERT_OK_AND_ASSIGN(auto cgroup, TestCgroup::create());
    cgroup_.emplace(std::move(cgroup));
    STEER_ASSERT_OK_AND_ASSIGN(auto maker, SocketMakerInCgroup::start(*cgroup_));
    maker_.emplace(std::move(maker));
    STEER_ASSERT_OK_AND_ASSIGN(auto probe, ProbeSockops::open("probe_sockops"));
    probe->rodata->watched_port = kWatchedPort;
    probe->rodata->map_kind = GetParam().map_kind;
    STEER_ASSERT_OK(probe.load());
    probe_.emplace(std::move(probe));
    STEER_ASSERT_OK_AND_ASSIGN(auto link,
                               bpf::attach_sockops((*probe_)->progs.probe_sockops, cgroup_->fd()));
    link_.emplace(std::move(link));
  }
  void TearDown() override {
    link_.reset();   // detach first
    maker_.reset();  // the child exits, so the cgroup empties...
    cgroup_.reset(); // ...and can be removed
    probe_.reset();
    KernelTest::TearDown();
  }

  int family() const { return GetParam().family; }

  // A TCP socket of the cgroup: the probe sees it whatever process binds or connects it.
  Result<Fd> cgroup_socket() const { return maker_->make_socket(family(), SOCK_STREAM); }

  Result<Fd> cgroup_listener() const {
    auto listener = cgroup_socket();
    if (!listener) return listener;
    if (auto listening = bind_and_listen(listener->get(), loopback(family(), kWatchedPort));
        !listening)
      return std::unexpected(listening.error());
    return listener;
  }

  // What the probe recorded for callback `op`.
  steer_probe_sockops_result result_of(uint32_t op) const {
    steer_probe_sockops_result result{};
    int ret = bpf_map__lookup_elem((*probe_)->maps.sockops_result, &op, sizeof(op), &result,
                                   sizeof(result), 0);
    EXPECT_EQ(ret, 0) << "read sockops_result[" << op << "]";
    return result;
  }

  // The cookie of the socket the probe inserted at key `op`.
  Result<uint64_t> cookie_at(uint32_t op) const {
    const bpf_map* map = GetParam().map_kind == STEER_PROBE_SOCKHASH
                             ? (*probe_)->maps.probe_sockhash
                             : (*probe_)->maps.probe_sockmap;
    uint64_t cookie = 0;
    int ret = bpf_map__lookup_elem(map, &op, sizeof(op), &cookie, sizeof(cookie), 0);
    if (ret < 0) return fail_errno(-ret, fmt::format("look up key {} in the probe's map", op));
    return cookie;
  }

  // A connection from a cgroup client to a cgroup listener on the watched port.
  struct Connection {
    Fd listener, client, accepted;
  };
  Result<Connection> connect_through_watched_port() const {
    Connection connection;
    auto listener = cgroup_listener();
    if (!listener) return std::unexpected(listener.error());
    connection.listener = std::move(*listener);
    auto client = cgroup_socket();
    if (!client) return std::unexpected(client.error());
    connection.client = std::move(*client);
    if (auto connected = connect_fd(connection.client.get(), loopback(family(), kWatchedPort));
        !connected)
      return std::unexpected(connected.error());
    auto accepted = accept_within_two_seconds(connection.listener.get());
    if (!accepted) return std::unexpected(accepted.error());
    connection.accepted = std::move(*accepted);
    return connection;
  }

  // PASSIVE_ESTABLISHED_CB runs in softirq when the final ACK arrives, which can trail
  // accept() by a moment; ACTIVE_ESTABLISHED_CB has run when connect() returns.
  bool established_callbacks_ran() const {
    return eventually([&] {
      return result_of(BPF_SOCK_OPS_PASSIVE_ESTABLISHED_CB).calls > 0 &&
             result_of(BPF_SOCK_OPS_ACTIVE_ESTABLISHED_CB).calls > 0;
    });
  }

 private:
  std::optional<TestCgroup> cgroup_;
  std::optional<SocketMakerInCgroup> maker_;
  std::optional<ProbeSockops> probe_;
  std::optional<bpf::Link> link_;
};

INSTANTIATE_TEST_SUITE_P(Sockops, SockopsMapUpdate,
                         ::testing::Values(SockopsCase{AF_INET, STEER_PROBE_SOCKMAP},
                                           SockopsCase{AF_INET, STEER_PROBE_SOCKHASH},
                                           SockopsCase{AF_INET6, STEER_PROBE_SOCKMAP},
                                           SockopsCase{AF_INET6, STEER_PROBE_SOCKHASH}),
                         sockops_case_name);

// H.39: TCP_LISTEN_CB runs on listen() and may insert the listener; its cookie is in the map.
TEST_P(SockopsMapUpdate, ListenCallbackInsertsTheListener) {
  STEER_ASSERT_OK_AND_ASSIGN(Fd listener, cgroup_listener());
  STEER_ASSERT_OK_AND_ASSIGN(uint64_t cookie, socket_cookie(listener.get()));
  auto listen_result = result_of(BPF_SOCK_OPS_TCP_LISTEN_CB);
  EXPECT_EQ(listen_result.calls, 1u);
  EXPECT_EQ(listen_result.update_ret, 0);
  EXPECT_EQ(listen_result.last_cookie, cookie);
  STEER_ASSERT_OK_AND_ASSIGN(uint64_t stored, cookie_at(BPF_SOCK_OPS_TCP_LISTEN_CB));
  EXPECT_EQ(stored, cookie);
}

// H.39: PASSIVE_ESTABLISHED_CB inserts the accepted socket, ACTIVE_ESTABLISHED_CB the client.
TEST_P(SockopsMapUpdate, EstablishedCallbacksInsertBothEnds) {
  STEER_ASSERT_OK_AND_ASSIGN(auto connection, connect_through_watched_port());
  ASSERT_TRUE(established_callbacks_ran()) << "no ESTABLISHED callback within 2 s";
  STEER_ASSERT_OK_AND_ASSIGN(uint64_t client_cookie, socket_cookie(connection.client.get()));
  STEER_ASSERT_OK_AND_ASSIGN(uint64_t accepted_cookie, socket_cookie(connection.accepted.get()));

  auto active = result_of(BPF_SOCK_OPS_ACTIVE_ESTABLISHED_CB);
  EXPECT_EQ(active.calls, 1u);
  EXPECT_EQ(active.update_ret, 0);
  EXPECT_EQ(active.last_cookie, client_cookie);
  STEER_ASSERT_OK_AND_ASSIGN(uint64_t stored_active,
                             cookie_at(BPF_SOCK_OPS_ACTIVE_ESTABLISHED_CB));
  EXPECT_EQ(stored_active, client_cookie);

  auto passive = result_of(BPF_SOCK_OPS_PASSIVE_ESTABLISHED_CB);
  EXPECT_EQ(passive.calls, 1u);
  EXPECT_EQ(passive.update_ret, 0);
  EXPECT_EQ(passive.last_cookie, accepted_cookie);
  STEER_ASSERT_OK_AND_ASSIGN(uint64_t stored_passive,
                             cookie_at(BPF_SOCK_OPS_PASSIVE_ESTABLISHED_CB));
  EXPECT_EQ(stored_passive, accepted_cookie);
}

// H.39: every other callback is refused with -EOPNOTSUPP (connect, SYN timeout, window...).
TEST_P(SockopsMapUpdate, OtherCallbacksAreRefusedWithEopnotsupp) {
  STEER_ASSERT_OK_AND_ASSIGN(auto connection, connect_through_watched_port());
  ASSERT_TRUE(established_callbacks_ran()) << "no ESTABLISHED callback within 2 s";
  // These three run on every connection without any bpf_sock_ops_cb_flags: the client's
  // TCP_CONNECT_CB, and TIMEOUT_INIT / RWND_INIT for the client and the request socket.
  for (uint32_t op : {BPF_SOCK_OPS_TIMEOUT_INIT, BPF_SOCK_OPS_RWND_INIT,
                      BPF_SOCK_OPS_TCP_CONNECT_CB}) {
    SCOPED_TRACE(fmt::format("op {}", op));
    auto result = result_of(op);
    EXPECT_GT(result.calls, 0u) << "the callback never ran";
    EXPECT_EQ(result.update_ret, -EOPNOTSUPP);
    STEER_EXPECT_ERRNO(cookie_at(op), ENOENT);
  }
  // Whatever else ran (NEEDS_ECN, ...) was refused too.
  for (uint32_t op = 0; op < STEER_PROBE_SOCKOPS_OPS; ++op) {
    if (op == BPF_SOCK_OPS_TCP_LISTEN_CB || op == BPF_SOCK_OPS_ACTIVE_ESTABLISHED_CB ||
        op == BPF_SOCK_OPS_PASSIVE_ESTABLISHED_CB)
      continue;
    auto result = result_of(op);
    if (result.calls > 0) {
      EXPECT_EQ(result.update_ret, -EOPNOTSUPP) << "op " << op;
    }
  }
}

// H.39 with D.18: the listener the sockops program inserted leaves the map when closed.
TEST_P(SockopsMapUpdate, ClosingTheListenerRemovesIt) {
  STEER_ASSERT_OK_AND_ASSIGN(Fd listener, cgroup_listener());
  STEER_ASSERT_OK(cookie_at(BPF_SOCK_OPS_TCP_LISTEN_CB));
  listener.reset();
  STEER_EXPECT_ERRNO(cookie_at(BPF_SOCK_OPS_TCP_LISTEN_CB), ENOENT);
}

// H.39 (scope): a socket the test process created itself (outside the cgroup) is never seen,
// even on the watched port; it is the creating process's cgroup that counts.
TEST_P(SockopsMapUpdate, SocketsCreatedOutsideTheCgroupAreNotSeen) {
  STEER_ASSERT_OK_AND_ASSIGN(Fd listener, listen_tcp(loopback(family(), kWatchedPort)));
  STEER_ASSERT_OK_AND_ASSIGN(Fd client, connect_tcp(loopback(family(), kWatchedPort)));
  STEER_ASSERT_OK_AND_ASSIGN(Fd accepted, accept_within_two_seconds(listener.get()));
  for (uint32_t op = 0; op < STEER_PROBE_SOCKOPS_OPS; ++op)
    EXPECT_EQ(result_of(op).calls, 0u) << "op " << op;
  STEER_EXPECT_ERRNO(cookie_at(BPF_SOCK_OPS_TCP_LISTEN_CB), ENOENT);
}

// ---- H.40: plain bpf_map_update_elem on a socket map ----

struct SkLookupUpdateCase {
  int family;
  int type;
  steer_probe_map_kind target_kind;
};

std::string sk_lookup_update_case_name(const ::testing::TestParamInfo<SkLookupUpdateCase>& info) {
  return fmt::format("{}{}_{}", info.param.type == SOCK_STREAM ? "tcp" : "udp",
                     info.param.family == AF_INET ? 4 : 6, map_kind_name(info.param.target_kind));
}

class SockopsPlainUpdateFromSkLookup
    : public KernelTest,
      public ::testing::WithParamInterface<SkLookupUpdateCase> {};

INSTANTIATE_TEST_SUITE_P(
    Sockops, SockopsPlainUpdateFromSkLookup,
    ::testing::Values(SkLookupUpdateCase{AF_INET, SOCK_STREAM, STEER_PROBE_SOCKMAP},
                      SkLookupUpdateCase{AF_INET, SOCK_STREAM, STEER_PROBE_SOCKHASH},
                      SkLookupUpdateCase{AF_INET6, SOCK_STREAM, STEER_PROBE_SOCKMAP},
                      SkLookupUpdateCase{AF_INET6, SOCK_STREAM, STEER_PROBE_SOCKHASH},
                      SkLookupUpdateCase{AF_INET, SOCK_DGRAM, STEER_PROBE_SOCKMAP},
                      SkLookupUpdateCase{AF_INET, SOCK_DGRAM, STEER_PROBE_SOCKHASH},
                      SkLookupUpdateCase{AF_INET6, SOCK_DGRAM, STEER_PROBE_SOCKMAP},
                      SkLookupUpdateCase{AF_INET6, SOCK_DGRAM, STEER_PROBE_SOCKHASH}),
    sk_lookup_update_case_name);

// H.40: an sk_lookup program may bpf_map_update_elem a socket (looked up from a SOCKMAP) into
// a SOCKMAP or SOCKHASH; run through BPF_PROG_TEST_RUN, the socket lands at the new key.
TEST_P(SockopsPlainUpdateFromSkLookup, SkLookupProgramInsertsASocket) {
  const auto& param = GetParam();
  STEER_ASSERT_OK_AND_ASSIGN(auto probe, ProbeMapUpdate::open("probe_map_update"));
  bpf_program__set_autoload(probe->progs.update_from_sockops, false);
  bpf_program__set_autoload(probe->progs.delete_from_sockops, false);
  probe->rodata->source_key = 0;
  probe->rodata->target_key = 1;
  probe->rodata->map_kind = param.target_kind;
  STEER_ASSERT_OK(probe.load());

  STEER_ASSERT_OK_AND_ASSIGN(Fd socket, param.type == SOCK_STREAM
                                            ? listen_tcp(loopback(param.family, 0))
                                            : bind_udp(loopback(param.family, 0)));
  STEER_ASSERT_OK_AND_ASSIGN(uint64_t cookie, socket_cookie(socket.get()));
  uint32_t source_key = 0;
  uint64_t socket_value = static_cast<uint32_t>(socket.get());
  ASSERT_EQ(bpf_map__update_elem(probe->maps.probe_sockmap, &source_key, sizeof(source_key),
                                 &socket_value, sizeof(socket_value), BPF_ANY),
            0);

  STEER_ASSERT_OK_AND_ASSIGN(SocketAddress local, local_address(socket.get()));
  auto context = bpf::make_sk_lookup_context(
      param.type == SOCK_STREAM ? IPPROTO_TCP : IPPROTO_UDP, loopback(param.family, 40000), local);
  STEER_ASSERT_OK_AND_ASSIGN(auto run,
                             bpf::test_run_sk_lookup(bpf_program__fd(probe->progs.update_from_sk_lookup),
                                                     context));
  EXPECT_EQ(run.verdict, static_cast<uint32_t>(SK_PASS));

  STEER_ASSERT_OK_AND_ASSIGN(auto result,
                             bpf::load_single<steer_probe_map_update_result>(
                                 probe->maps.map_update_result));
  EXPECT_EQ(result.runs, 1u);
  EXPECT_EQ(result.update_ret, 0);
  const bpf_map* target = param.target_kind == STEER_PROBE_SOCKHASH ? probe->maps.probe_sockhash
                                                                     : probe->maps.probe_sockmap;
  uint32_t target_key = 1;
  uint64_t stored = 0;
  ASSERT_EQ(bpf_map__lookup_elem(target, &target_key, sizeof(target_key), &stored,
                                 sizeof(stored), 0),
            0);
  EXPECT_EQ(stored, cookie);
}

class SockopsPlainUpdate : public KernelTest {
 protected:
  void TearDown() override {
    bpf::set_libbpf_log(bpf::LibbpfLog::Warnings);
    KernelTest::TearDown();
  }
};

// H.40: the verifier refuses bpf_map_update_elem on a SOCKMAP in a sockops program (only
// bpf_sock_map_update / bpf_sock_hash_update, which check the callback, may insert there).
TEST_F(SockopsPlainUpdate, SockopsProgramIsRefusedByTheVerifier) {
  bpf::set_libbpf_log(bpf::LibbpfLog::Quiet);
  STEER_ASSERT_OK_AND_ASSIGN(auto probe, ProbeMapUpdate::open("probe_map_update"));
  bpf_program__set_autoload(probe->progs.update_from_sk_lookup, false);
  bpf_program__set_autoload(probe->progs.delete_from_sockops, false);
  std::string log(64 * 1024, '\0');
  ASSERT_EQ(bpf_program__set_log_buf(probe->progs.update_from_sockops, log.data(), log.size()), 0);
  STEER_EXPECT_ERRNO(probe.load(), EINVAL);
  log.resize(log.find('\0'));
  EXPECT_NE(log.find("cannot update sockmap in this context"), std::string::npos) << log;
}

// H.40: deleting is another matter: bpf_map_delete_elem on a SOCKMAP loads fine in sockops.
TEST_F(SockopsPlainUpdate, SockopsProgramMayDelete) {
  STEER_ASSERT_OK_AND_ASSIGN(auto probe, ProbeMapUpdate::open("probe_map_update"));
  bpf_program__set_autoload(probe->progs.update_from_sk_lookup, false);
  bpf_program__set_autoload(probe->progs.update_from_sockops, false);
  STEER_ASSERT_OK(probe.load());
}

}  // namespace
}  // namespace steer::testing
