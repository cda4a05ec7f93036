// kernel.md E.21-22: an sk_msg program attached to a socket map redirects what an established
// client sends (bpf_msg_redirect_map / bpf_msg_redirect_hash) to the socket at target_key.
// The client sits at kClientKey, so its sendmsg runs the program.
#include <bpf/libbpf.h>
#include <linux/bpf.h>
#include <poll.h>
#include <sys/socket.h>

#include <optional>
#include <string>

#include "bpf/link.h"
#include "bpf/map.h"
#include "bpf/probe_programs.h"
#include "support/kernel_test.h"

namespace steer::testing {
namespace {

using bpf::ProbeSkMsg;

constexpr uint32_t kClientKey = 0;
constexpr uint32_t kTargetKey = 1;
constexpr uint32_t kEmptyKey = 7;
const std::string kPayload = "hello";

SocketAddress loopback(int family) {
  return family == AF_INET ? SocketAddress::ipv4_loopback(0) : SocketAddress::ipv6_loopback(0);
}

struct SkMsgCase {
  int family;
  steer_probe_map_kind map_kind;
};

std::string case_name(const ::testing::TestParamInfo<SkMsgCase>& info) {
  return fmt::format("tcp{}_{}", info.param.family == AF_INET ? 4 : 6,
                     info.param.map_kind == STEER_PROBE_SOCKHASH ? "SOCKHASH" : "SOCKMAP");
}

// Both ends of an established TCP connection over loopback.
struct Connection {
  Fd listener, client, server;
};

// Waits (bounded) until `fd` is readable.
bool readable_within_two_seconds(int fd) {
  pollfd waiting{fd, POLLIN, 0};
  return ::poll(&waiting, 1, 2000) == 1;
}

// Nothing queued right now; used after a send that returned an error, so nothing is on the way.
bool nothing_queued(int fd) {
  char buffer[64];
  return ::recv(fd, buffer, sizeof(buffer), MSG_DONTWAIT) < 0 && errno == EAGAIN;
}

std::optional<std::string> receive_now(int fd) {
  char buffer[256];
  ssize_t length = ::recv(fd, buffer, sizeof(buffer), MSG_DONTWAIT);
  if (length < 0) return std::nullopt;
  return std::string(buffer, static_cast<size_t>(length));
}

// sendmsg's errno, 0 when the whole payload went.
int send_errno(int fd, const std::string& payload) {
  ssize_t sent = ::send(fd, payload.data(), payload.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
  if (sent < 0) return errno;
  return sent == static_cast<ssize_t>(payload.size()) ? 0 : EMSGSIZE;
}

class SkMsgRedirect : public KernelTest, public ::testing::WithParamInterface<SkMsgCase> {
 protected:
  void TearDown() override {
    probe_.reset();  // the map goes, and the program is detached with it
    KernelTest::TearDown();
  }

  int family() const { return GetParam().family; }

  // Loads the probe redirecting to `target_key` with `flags`, attached to the case's map.
  Result<void> load_probe(uint32_t target_key, uint64_t flags = BPF_F_INGRESS) {
    auto probe = ProbeSkMsg::open("probe_sk_msg");
    if (!probe) return std::unexpected(probe.error());
    (*probe)->rodata->target_key = target_key;
    (*probe)->rodata->map_kind = GetParam().map_kind;
    (*probe)->rodata->redirect_flags = flags;
    if (auto loaded = probe->load(); !loaded) return loaded;
    probe_.emplace(std::move(*probe));
    // Attach before inserting: a socket takes the map's programs when it is inserted.
    return bpf::attach_to_sockmap((*probe_)->progs.probe_msg_redirect, bpf_map__fd(map()));
  }

  const bpf_map* map() const {
    return GetParam().map_kind == STEER_PROBE_SOCKHASH ? (*probe_)->maps.probe_sockhash
                                                       : (*probe_)->maps.probe_sockmap;
  }

  Result<void> insert(uint32_t key, int socket_fd) const {
    uint64_t value = static_cast<uint32_t>(socket_fd);
    int ret = bpf_map__update_elem(map(), &key, sizeof(key), &value, sizeof(value), BPF_ANY);
    if (ret < 0) return fail_errno(-ret, fmt::format("insert fd {} at key {}", socket_fd, key));
    return {};
  }

  Result<Connection> connect_pair() const {
    Connection connection;
    auto listener = listen_tcp(loopback(family()));
    if (!listener) return std::unexpected(listener.error());
    connection.listener = std::move(*listener);
    auto address = local_address(connection.listener.get());
    if (!address) return std::unexpected(address.error());
    auto client = connect_tcp(*address);
    if (!client) return std::unexpected(client.error());
    connection.client = std::move(*client);
    if (!readable_within_two_seconds(connection.listener.get()))
      return fail(ETIMEDOUT, "no connection reached the accept queue in 2 s");
    connection.server = accept_now(connection.listener.get());
    if (!connection.server) return fail_errno("accept");
    return connection;
  }

  // A client at kClientKey whose sendmsg runs the program.
  Result<Connection> client_in_map() const {
    auto connection = connect_pair();
    if (!connection) return connection;
    if (auto inserted = insert(kClientKey, connection->client.get()); !inserted)
      return std::unexpected(inserted.error());
    return connection;
  }

  steer_probe_msg_result result() const {
    auto result = bpf::load_single<steer_probe_msg_result>((*probe_)->maps.msg_result);
    EXPECT_TRUE(result.has_value()) << result.error().message;
    return result.value_or(steer_probe_msg_result{});
  }

 private:
  std::optional<ProbeSkMsg> probe_;
};

INSTANTIATE_TEST_SUITE_P(SkMsg, SkMsgRedirect,
                         ::testing::Values(SkMsgCase{AF_INET, STEER_PROBE_SOCKMAP},
                                           SkMsgCase{AF_INET, STEER_PROBE_SOCKHASH},
                                           SkMsgCase{AF_INET6, STEER_PROBE_SOCKMAP},
                                           SkMsgCase{AF_INET6, STEER_PROBE_SOCKHASH}),
                         case_name);

// E.21: redirecting to a LISTENING socket -> SK_DROP, and the sender's sendmsg fails EACCES.
TEST_P(SkMsgRedirect, RedirectToListenerDropsWithEacces) {
  STEER_ASSERT_OK(load_probe(kTargetKey));
  STEER_ASSERT_OK_AND_ASSIGN(Fd target, listen_tcp(loopback(family())));
  STEER_ASSERT_OK(insert(kTargetKey, target.get()));
  STEER_ASSERT_OK_AND_ASSIGN(auto connection, client_in_map());
  EXPECT_EQ(errno_name(send_errno(connection.client.get(), kPayload)), errno_name(EACCES));
  auto verdict = result();
  EXPECT_EQ(verdict.runs, 1u);
  EXPECT_EQ(verdict.last_verdict, SK_DROP);
  EXPECT_TRUE(nothing_queued(connection.server.get()));
}

// E.21 (positive control): redirecting with BPF_F_INGRESS to a connected socket puts the data
// in that socket's receive queue; the client's own peer gets nothing.
TEST_P(SkMsgRedirect, IngressRedirectToConnectedSocketReachesItsReceiveQueue) {
  STEER_ASSERT_OK(load_probe(kTargetKey));
  STEER_ASSERT_OK_AND_ASSIGN(auto target, connect_pair());
  STEER_ASSERT_OK(insert(kTargetKey, target.server.get()));
  STEER_ASSERT_OK_AND_ASSIGN(auto connection, client_in_map());
  EXPECT_EQ(errno_name(send_errno(connection.client.get(), kPayload)), errno_name(0));
  auto verdict = result();
  EXPECT_EQ(verdict.runs, 1u);
  EXPECT_EQ(verdict.last_verdict, SK_PASS);
  ASSERT_TRUE(readable_within_two_seconds(target.server.get())) << "nothing arrived in 2 s";
  EXPECT_EQ(receive_now(target.server.get()), kPayload);
  EXPECT_TRUE(nothing_queued(connection.server.get()));
  EXPECT_TRUE(nothing_queued(target.client.get()));
}

// E.22: flags 0 (egress) to a connected TCP socket is allowed: the data leaves through the
// target, so the target's peer receives it.
TEST_P(SkMsgRedirect, EgressRedirectSendsThroughTheTarget) {
  STEER_ASSERT_OK(load_probe(kTargetKey, 0));
  STEER_ASSERT_OK_AND_ASSIGN(auto target, connect_pair());
  STEER_ASSERT_OK(insert(kTargetKey, target.server.get()));
  STEER_ASSERT_OK_AND_ASSIGN(auto connection, client_in_map());
  EXPECT_EQ(errno_name(send_errno(connection.client.get(), kPayload)), errno_name(0));
  EXPECT_EQ(result().last_verdict, SK_PASS);
  ASSERT_TRUE(readable_within_two_seconds(target.client.get())) << "nothing arrived in 2 s";
  EXPECT_EQ(receive_now(target.client.get()), kPayload);
  EXPECT_TRUE(nothing_queued(connection.server.get()));
}

// E.22: a missing key -> SK_DROP, sendmsg fails with EACCES.
TEST_P(SkMsgRedirect, RedirectToMissingKeyDropsWithEacces) {
  STEER_ASSERT_OK(load_probe(kEmptyKey));
  STEER_ASSERT_OK_AND_ASSIGN(auto connection, client_in_map());
  EXPECT_EQ(errno_name(send_errno(connection.client.get(), kPayload)), errno_name(EACCES));
  EXPECT_EQ(result().last_verdict, SK_DROP);
  EXPECT_TRUE(nothing_queued(connection.server.get()));
}

// E.22: flags other than BPF_F_INGRESS -> SK_DROP, even towards a connected socket.
TEST_P(SkMsgRedirect, UnknownFlagsDropWithEacces) {
  STEER_ASSERT_OK(load_probe(kTargetKey, BPF_F_INGRESS | 2));
  STEER_ASSERT_OK_AND_ASSIGN(auto target, connect_pair());
  STEER_ASSERT_OK(insert(kTargetKey, target.server.get()));
  STEER_ASSERT_OK_AND_ASSIGN(auto connection, client_in_map());
  EXPECT_EQ(errno_name(send_errno(connection.client.get(), kPayload)), errno_name(EACCES));
  EXPECT_EQ(result().last_verdict, SK_DROP);
  EXPECT_TRUE(nothing_queued(target.server.get()));
}

// E.22: the target must be connected: a bound, unconnected UDP socket -> SK_DROP (EACCES).
TEST_P(SkMsgRedirect, RedirectToUnconnectedUdpDropsWithEacces) {
  STEER_ASSERT_OK(load_probe(kTargetKey));
  STEER_ASSERT_OK_AND_ASSIGN(Fd target, bind_udp(loopback(family())));
  STEER_ASSERT_OK(insert(kTargetKey, target.get()));
  STEER_ASSERT_OK_AND_ASSIGN(auto connection, client_in_map());
  EXPECT_EQ(errno_name(send_errno(connection.client.get(), kPayload)), errno_name(EACCES));
  EXPECT_EQ(result().last_verdict, SK_DROP);
}

}  // namespace
}  // namespace steer::testing
