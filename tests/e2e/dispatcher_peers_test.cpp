// The dispatcher end to end with real peers: the steer binary, curl, python3 http.server,
// socat and systemd-socket-activate, each test in a fresh network namespace + private bpffs.
#include <gtest/gtest.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <map>
#include <optional>
#include <set>
#include <thread>

#include "support/kernel_test.h"
#include "support/peers.h"

namespace steer::testing {
namespace {

using nlohmann::json;

#define EXPECT_STEER_OK(result_expression)                                              \
  do {                                                                                 \
    auto steer_run_ = (result_expression);                                             \
    EXPECT_EQ(steer_run_.exit_code, 0) << #result_expression << "\n"                   \
                                       << steer_run_.out << steer_run_.err;            \
  } while (0)
#define ASSERT_STEER_OK(result_expression)                                              \
  do {                                                                                 \
    auto steer_run_ = (result_expression);                                             \
    ASSERT_EQ(steer_run_.exit_code, 0) << #result_expression << "\n"                   \
                                       << steer_run_.out << steer_run_.err;            \
  } while (0)

constexpr int kCurlCouldNotConnect = 7;

std::string url(const std::string& host, uint16_t port) {
  return "http://" + host + ":" + std::to_string(port) + "/";
}

// Each test: a fresh netns and bpffs with steer loaded in it.
class Peers : public KernelTest {
 protected:
  void SetUp() override {
    KernelTest::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    steer_.emplace(bpffs());
    ASSERT_STEER_OK(steer().run({"load"}));
  }

  const SteerCli& steer() const { return *steer_; }

  // The socket entries of a destination in a fresh `steer --json status`.
  json sockets_of(const std::string& label, const std::string& protocol,
                  const std::string& family) const {
    auto destination = find_destination(steer().status(), label, protocol, family);
    return destination.is_null() ? json::array() : destination.at("sockets");
  }

 private:
  std::optional<SteerCli> steer_;
};

// ---- curl and python3 -m http.server ------------------------------------------------------

// register-pid takes a running http.server's socket; every address of 127/8 on every port
// reaches it, and each request is counted once for the destination and once for the socket.
// Checks: kernel.md G.33, G.36 (TCP listener assigned); issue 3: register-pid, counters.
TEST_F(Peers, CurlReachesHttpServerRegisteredByPid) {
  TempDir site;
  site.write("index.html", "hello from behind steer\n");
  uint16_t port = unused_port(Transport::Tcp);
  auto server = start_server({kPython, "-m", "http.server", std::to_string(port), "--bind",
                              "127.0.0.1", "--directory", site.path().string()},
                             Transport::Tcp, port);
  ASSERT_STEER_OK(steer().run({"bind", "web", "tcp", "127.0.0.0/8", "0"}));
  ASSERT_STEER_OK(steer().run({"register-pid", std::to_string(server.pid()), "web"}));

  const int requests = 3;
  for (int i = 0; i < requests; ++i) {
    auto response = curl_get(url("127.0.0.7", 8888));
    ASSERT_EQ(response.exit_code, 0) << response.error;
    EXPECT_EQ(response.http_status, 200);
    EXPECT_EQ(response.body, "hello from behind steer\n");
  }

  auto web = find_destination(steer().status(), "web", "tcp", "ipv4");
  ASSERT_FALSE(web.is_null());
  EXPECT_EQ(web.at("counters").at("lookups"), requests);
  EXPECT_EQ(web.at("counters").at("selected"), requests);
  EXPECT_EQ(web.at("counters").at("no_socket"), 0);
  ASSERT_EQ(web.at("sockets").size(), 1u) << web.dump(2);
  const auto& socket = web.at("sockets")[0];
  EXPECT_EQ(socket.at("pid"), server.pid());
  EXPECT_EQ(socket.at("command"), "python3");
  EXPECT_EQ(socket.at("address"), fmt::format("127.0.0.1:{}", port));
  EXPECT_EQ(socket.at("selected"), requests);
}

// A /32 and one port: that address:port is steered, its neighbour port is the kernel's (nothing
// listens there: refused), and the server's own address still works without steer.
// Checks: kernel.md G.34 (no selection: the normal lookup).
TEST_F(Peers, SingleAddressAndPortIsSteeredAndNothingElse) {
  uint16_t port = unused_port(Transport::Tcp);
  auto server = start_name_server("alpha", "127.0.0.1", port);
  ASSERT_STEER_OK(steer().run({"bind", "web", "tcp", "127.0.0.7/32", "8888"}));
  ASSERT_STEER_OK(steer().run({"register-pid", std::to_string(server.pid()), "web", "tcp",
                               fmt::format("127.0.0.1:{}", port)}));

  auto steered = curl_get(url("127.0.0.7", 8888));
  ASSERT_EQ(steered.exit_code, 0) << steered.error;
  EXPECT_EQ(steered.http_status, 200);
  EXPECT_EQ(steered.body, "alpha");
  EXPECT_EQ(curl_get(url("127.0.0.7", 8889)).exit_code, kCurlCouldNotConnect);
  EXPECT_EQ(curl_get(url("127.0.0.8", 8888)).exit_code, kCurlCouldNotConnect);
  EXPECT_EQ(curl_get(url("127.0.0.1", port)).body, "alpha");

  auto web = find_destination(steer().status(), "web", "tcp", "ipv4");
  ASSERT_FALSE(web.is_null());
  EXPECT_EQ(web.at("counters").at("lookups"), 1) << "only 127.0.0.7:8888 matches a binding";
  EXPECT_EQ(web.at("counters").at("selected"), 1);
}

// ---- systemd-socket-activate -> steer register -> python ----------------------------------

// Serves HTTP on an inherited fd 3 (LISTEN_FDS), answering its name.
std::vector<std::string> activated_server(const std::string& name) {
  return {kPython, name_server_script(), "--name", name, "--fd", "3"};
}

// The activator listens and, on the first connection, execs `steer register`, which registers
// the passed socket (LISTEN_PID is its own pid) and execs python with the fd still open.
// Checks: issue 3: register honours LISTEN_FDS/LISTEN_PID; kernel.md D.18 (the fd stays open).
TEST_F(Peers, SocketActivationHandsTheSocketToRegister) {
  uint16_t port = unused_port(Transport::Tcp);
  ASSERT_STEER_OK(steer().run({"bind", "web", "tcp", "127.0.0.8/32", "80"}));
  std::vector<std::string> argv{"/usr/bin/systemd-socket-activate", "-l",
                                fmt::format("127.0.0.1:{}", port)};
  for (auto& word : steer().argv({"register", "web", "--"})) argv.push_back(word);
  for (auto& word : activated_server("activated")) argv.push_back(word);
  auto activator = start_server(argv, Transport::Tcp, port);

  // The first connection starts steer register, then python, which answers it.
  auto direct = curl_get(url("127.0.0.1", port));
  ASSERT_EQ(direct.exit_code, 0) << direct.error << activator.output();
  EXPECT_EQ(direct.body, "activated");

  auto steered = curl_get(url("127.0.0.8", 80));
  ASSERT_EQ(steered.exit_code, 0) << steered.error << activator.output();
  EXPECT_EQ(steered.http_status, 200);
  EXPECT_EQ(steered.body, "activated");

  auto sockets = sockets_of("web", "tcp", "ipv4");
  ASSERT_EQ(sockets.size(), 1u);
  EXPECT_EQ(sockets[0].at("address"), fmt::format("127.0.0.1:{}", port));
  EXPECT_EQ(sockets[0].at("selected"), 1);
  // steer execs into the command under the same pid: the owner shown is the command.
  EXPECT_EQ(sockets[0].at("command"), "python3");
  EXPECT_NE(activator.output().find("registered 1 socket for 'web'"), std::string::npos)
      << activator.output();
}

// Two sockets passed, named web and other: `register --fdname web` takes only the first.
// Checks: issue 3: register honours LISTEN_FDNAMES.
TEST_F(Peers, SocketActivationFdnameSelectsOneSocket) {
  uint16_t web_port = unused_port(Transport::Tcp);
  uint16_t other_port = unused_port(Transport::Tcp);
  ASSERT_STEER_OK(steer().run({"bind", "web", "tcp", "127.0.0.8/32", "80"}));
  std::vector<std::string> argv{"/usr/bin/systemd-socket-activate",
                                "-l", fmt::format("127.0.0.1:{}", web_port),
                                "-l", fmt::format("127.0.0.1:{}", other_port),
                                "--fdname=web:other"};
  for (auto& word : steer().argv({"register", "web", "--fdname", "web", "--"}))
    argv.push_back(word);
  for (auto& word : activated_server("named")) argv.push_back(word);
  auto activator = start_server(argv, Transport::Tcp, web_port);
  ASSERT_TRUE(activator.wait_for_port(Transport::Tcp, other_port));

  auto direct = curl_get(url("127.0.0.1", web_port));
  ASSERT_EQ(direct.exit_code, 0) << direct.error << activator.output();
  auto steered = curl_get(url("127.0.0.8", 80));
  ASSERT_EQ(steered.exit_code, 0) << steered.error << activator.output();
  EXPECT_EQ(steered.body, "named");

  auto sockets = sockets_of("web", "tcp", "ipv4");
  ASSERT_EQ(sockets.size(), 1u) << sockets.dump(2);
  EXPECT_EQ(sockets[0].at("address"), fmt::format("127.0.0.1:{}", web_port));
}

// ---- UDP with socat -------------------------------------------------------------------------

// Sends `payload` with socat from a fixed (or any, 0) source port; no answer awaited.
CommandResult socat_send(const std::string& destination, const std::string& payload,
                         uint16_t source_port = 0) {
  std::string address = "UDP4-SENDTO:" + destination;
  if (destination.starts_with("[")) address = "UDP6-SENDTO:" + destination;
  if (source_port != 0) address += ",sourceport=" + std::to_string(source_port);
  return run_command({"sh", "-c", "printf '%s\\n' \"$1\" | socat -u - \"$2\"", "socat_send",
                      payload, address});
}

// Lines a socat UDP4-RECV server printed.
size_t line_count(const std::string& text) { return std::ranges::count(text, '\n'); }

// A datagram to a bound address reaches socat's UDP socket listening elsewhere.
// Checks: kernel.md G.33, G.36 (unconnected UDP assigned).
TEST_F(Peers, UdpDatagramReachesSocatServer) {
  uint16_t port = unused_port(Transport::Udp);
  auto server = start_server({"socat", "-u", fmt::format("UDP4-RECV:{},bind=127.0.0.1", port),
                              "STDOUT"},
                             Transport::Udp, port);
  ASSERT_STEER_OK(steer().run({"bind", "dns", "udp", "127.0.0.0/8", "53"}));
  ASSERT_STEER_OK(steer().run({"register-pid", std::to_string(server.pid()), "dns"}));

  auto sent = socat_send("127.0.0.9:53", "hello over udp");
  ASSERT_EQ(sent.exit_code, 0) << sent.err;
  ASSERT_TRUE(server.wait_for_output("hello over udp\n")) << server.output();

  auto sockets = sockets_of("dns", "udp", "ipv4");
  ASSERT_EQ(sockets.size(), 1u);
  EXPECT_EQ(sockets[0].at("command"), "socat");
  EXPECT_EQ(sockets[0].at("selected"), 1);
}

// A socat echo server answers through its steered socket; an unconnected socat client takes
// the answer (it comes from the server's own address, 127.0.0.1:P, not from 127.0.0.9:53).
// Checks: kernel.md G.36 (UDP); the reply leaves from the socket's own address.
TEST_F(Peers, UdpEchoServerAnswersThroughItsSteeredSocket) {
  uint16_t port = unused_port(Transport::Udp);
  auto server = start_server({"socat", fmt::format("UDP4-RECVFROM:{},bind=127.0.0.1,fork", port),
                              "EXEC:cat"},
                             Transport::Udp, port);
  ASSERT_STEER_OK(steer().run({"bind", "dns", "udp", "127.0.0.0/8", "53"}));
  ASSERT_STEER_OK(steer().run({"register-pid", std::to_string(server.pid()), "dns"}));

  // socat waits half a second for answers after its input ends; retry a few times if slow.
  CommandResult answer;
  for (int attempt = 0; attempt < 5 && answer.out.empty(); ++attempt)
    answer = run_command({"sh", "-c", "printf 'ping\\n' | socat - UDP4-DATAGRAM:127.0.0.9:53"});
  EXPECT_EQ(answer.exit_code, 0) << answer.err;
  EXPECT_EQ(answer.out.substr(0, 5), "ping\n");
  auto sockets = sockets_of("dns", "udp", "ipv4");
  ASSERT_EQ(sockets.size(), 1u);
  EXPECT_GE(sockets[0].at("selected"), 1);
}

// Two servers in the pool: 20 datagrams of one flow (fixed source port) all reach the same
// server; flows from 32 source ports reach both.
// Checks: issue 3: Maglev keeps a datagram flow on its socket.
TEST_F(Peers, UdpFlowKeepsItsSocketAndFlowsSpreadOverThePool) {
  std::array<uint16_t, 2> ports{unused_port(Transport::Udp), unused_port(Transport::Udp)};
  std::vector<BackgroundProcess> servers;
  for (uint16_t port : ports) {
    servers.push_back(start_server(
        {"socat", "-u", fmt::format("UDP4-RECV:{},bind=127.0.0.1", port), "STDOUT"},
        Transport::Udp, port));
    ASSERT_STEER_OK(steer().run({"register-pid", std::to_string(servers.back().pid()), "dns"}));
  }
  ASSERT_STEER_OK(steer().run({"bind", "dns", "udp", "127.0.0.0/8", "53"}));

  const int datagrams = 20;
  for (int i = 0; i < datagrams; ++i)
    ASSERT_EQ(socat_send("127.0.0.9:53", fmt::format("flow-{}", i), 40000).exit_code, 0);
  auto received = [&] { return line_count(servers[0].output()) + line_count(servers[1].output()); };
  for (int i = 0; i < 2000 && received() < datagrams; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  ASSERT_EQ(received(), static_cast<size_t>(datagrams))
      << servers[0].output() << "--\n" << servers[1].output();
  size_t first = line_count(servers[0].output());
  EXPECT_TRUE(first == 0 || first == static_cast<size_t>(datagrams))
      << "one flow was split: " << first << " / " << datagrams - first;

  // The pool counters agree: one socket took every datagram of the flow.
  std::set<int> selected;
  for (const auto& socket : sockets_of("dns", "udp", "ipv4"))
    selected.insert(socket.at("selected").get<int>());
  EXPECT_EQ(selected, (std::set<int>{0, datagrams}));

  const int flows = 32;
  for (int i = 0; i < flows; ++i)
    ASSERT_EQ(socat_send("127.0.0.9:53", fmt::format("spread-{}", i), 40100 + i).exit_code, 0);
  for (int i = 0; i < 2000 && received() < datagrams + flows; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  ASSERT_EQ(received(), static_cast<size_t>(datagrams + flows));
  size_t spread_to_first = line_count(servers[0].output()) - first;
  EXPECT_GT(spread_to_first, 0u) << "no flow reached the first server";
  EXPECT_LT(spread_to_first, static_cast<size_t>(flows)) << "no flow reached the second server";
}

// ---- IPv6 -----------------------------------------------------------------------------------

// An IPv6-only server on [::1]:P serves a binding of ::1/128 on another port.
// Checks: kernel.md G.36 (IPv6 TCP listener).
TEST_F(Peers, Ipv6TcpServerServesABindingOnAnotherPort) {
  uint16_t port = unused_port(Transport::Tcp);
  auto server = start_name_server("six", "::1", port);
  ASSERT_STEER_OK(steer().run({"bind", "web", "tcp", "::1/128", "8080"}));
  ASSERT_STEER_OK(steer().run({"register-pid", std::to_string(server.pid()), "web"}));

  auto response = curl_get("http://[::1]:8080/");
  ASSERT_EQ(response.exit_code, 0) << response.error;
  EXPECT_EQ(response.body, "six");
  auto sockets = sockets_of("web", "tcp", "ipv6");
  ASSERT_EQ(sockets.size(), 1u);
  EXPECT_EQ(sockets[0].at("address"), fmt::format("[::1]:{}", port));
  EXPECT_EQ(sockets[0].at("selected"), 1);
  EXPECT_TRUE(find_destination(steer().status(), "web", "tcp", "ipv4").is_null())
      << "a v6-only socket must not create an IPv4 pool";
}

// A UDP datagram to [::1]:5353 reaches socat's IPv6 socket on another port.
// Checks: kernel.md G.36 (IPv6 unconnected UDP).
TEST_F(Peers, Ipv6UdpDatagramReachesSocatServer) {
  uint16_t port = unused_port(Transport::Udp);
  auto server = start_server({"socat", "-u", fmt::format("UDP6-RECV:{},bind=[::1]", port),
                              "STDOUT"},
                             Transport::Udp, port);
  ASSERT_STEER_OK(steer().run({"bind", "dns", "udp", "::1/128", "5353"}));
  ASSERT_STEER_OK(steer().run({"register-pid", std::to_string(server.pid()), "dns"}));
  ASSERT_EQ(socat_send("[::1]:5353", "hello six").exit_code, 0);
  ASSERT_TRUE(server.wait_for_output("hello six\n")) << server.output();
  auto sockets = sockets_of("dns", "udp", "ipv6");
  ASSERT_EQ(sockets.size(), 1u);
  EXPECT_EQ(sockets[0].at("selected"), 1);
}

// A dual-stack socket ([::]:P, IPV6_V6ONLY=0) registered once joins the label's IPv4 and IPv6
// pools and serves bindings of both families.
// Checks: kernel.md G.36 (an IPv4 packet may go to a dual-stack IPv6 socket).
TEST_F(Peers, DualStackSocketServesIpv4AndIpv6Bindings) {
  uint16_t port = unused_port(Transport::Tcp);
  auto server = start_name_server("dual", "::", port, Transport::Tcp, /*dual_stack=*/true);
  ASSERT_STEER_OK(steer().run({"register-pid", std::to_string(server.pid()), "web"}));
  ASSERT_STEER_OK(steer().run({"bind", "web", "tcp", "127.0.0.0/8", "80"}));
  ASSERT_STEER_OK(steer().run({"bind", "web", "tcp", "::1/128", "80"}));

  auto over_ipv4 = curl_get(url("127.0.0.5", 80));
  ASSERT_EQ(over_ipv4.exit_code, 0) << over_ipv4.error;
  EXPECT_EQ(over_ipv4.body, "dual");
  auto over_ipv6 = curl_get("http://[::1]:80/");
  ASSERT_EQ(over_ipv6.exit_code, 0) << over_ipv6.error;
  EXPECT_EQ(over_ipv6.body, "dual");

  auto status = steer().status();
  auto ipv4 = find_destination(status, "web", "tcp", "ipv4");
  auto ipv6 = find_destination(status, "web", "tcp", "ipv6");
  ASSERT_FALSE(ipv4.is_null());
  ASSERT_FALSE(ipv6.is_null());
  ASSERT_EQ(ipv4.at("sockets").size(), 1u);
  ASSERT_EQ(ipv6.at("sockets").size(), 1u);
  EXPECT_EQ(ipv4.at("sockets")[0].at("cookie"), ipv6.at("sockets")[0].at("cookie"))
      << "the same socket in both pools";
  EXPECT_EQ(ipv4.at("counters").at("selected"), 1);
  EXPECT_EQ(ipv6.at("counters").at("selected"), 1);
}

// A v6-only socket does not serve IPv4: the label's IPv4 binding has no socket, so refused.
// Checks: kernel.md G.36 (v6-only: -EAFNOSUPPORT for IPv4, so steer keeps it out).
TEST_F(Peers, V6OnlySocketDoesNotServeIpv4Bindings) {
  uint16_t port = unused_port(Transport::Tcp);
  auto server = start_name_server("six", "::", port);
  ASSERT_STEER_OK(steer().run({"register-pid", std::to_string(server.pid()), "web"}));
  ASSERT_STEER_OK(steer().run({"bind", "web", "tcp", "127.0.0.0/8", "80"}));
  EXPECT_EQ(curl_get(url("127.0.0.5", 80)).exit_code, kCurlCouldNotConnect);
  auto ipv4 = find_destination(steer().status(), "web", "tcp", "ipv4");
  ASSERT_FALSE(ipv4.is_null());
  EXPECT_EQ(ipv4.at("sockets").size(), 0u);
  EXPECT_EQ(ipv4.at("counters").at("no_socket"), 1);
}

// ---- sockets closing, steer exiting ---------------------------------------------------------

// The only socket closes: connections are refused (not passed on) and counted; a new server
// registered under the label takes over.
// Checks: kernel.md D.18 (close removes it from the map), G.33 (SK_DROP: ECONNREFUSED).
TEST_F(Peers, ClosedSocketIsRefusedAndCountedUntilANewOneRegisters) {
  uint16_t port = unused_port(Transport::Tcp);
  auto first = start_name_server("first", "127.0.0.1", port);
  ASSERT_STEER_OK(steer().run({"bind", "web", "tcp", "127.0.0.0/8", "80"}));
  ASSERT_STEER_OK(steer().run({"register-pid", std::to_string(first.pid()), "web"}));
  ASSERT_EQ(curl_get(url("127.0.0.5", 80)).body, "first");

  first.kill();
  auto refused = curl_get(url("127.0.0.5", 80));
  EXPECT_EQ(refused.exit_code, kCurlCouldNotConnect) << refused.body << refused.error;
  auto web = find_destination(steer().status(), "web", "tcp", "ipv4");
  ASSERT_FALSE(web.is_null());
  EXPECT_EQ(web.at("sockets").size(), 0u) << web.dump(2);
  EXPECT_EQ(web.at("counters").at("no_socket"), 1);
  EXPECT_EQ(web.at("counters").at("selected"), 1);

  uint16_t second_port = unused_port(Transport::Tcp);
  auto second = start_name_server("second", "127.0.0.1", second_port);
  ASSERT_STEER_OK(steer().run({"register-pid", std::to_string(second.pid()), "web"}));
  auto response = curl_get(url("127.0.0.5", 80));
  ASSERT_EQ(response.exit_code, 0) << response.error;
  EXPECT_EQ(response.body, "second");
  auto sockets = sockets_of("web", "tcp", "ipv4");
  ASSERT_EQ(sockets.size(), 1u);
  EXPECT_EQ(sockets[0].at("pid"), second.pid());
}

// Connects from 127.0.0.1:source_port to `destination`; the connect errno (0 on success).
int connect_from(uint16_t source_port, const SocketAddress& destination) {
  auto client = make_socket(destination.family(), SOCK_STREAM);
  if (!client) return client.error().code;
  int one = 1;
  ::setsockopt(client->get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  auto source = SocketAddress::ipv4_loopback(source_port);
  if (::bind(client->get(), source.data(), source.size()) != 0) return errno;
  if (::connect(client->get(), destination.data(), destination.size()) != 0) return errno;
  linger reset{.l_onoff = 1, .l_linger = 0};  // close with RST: no TIME_WAIT left behind
  ::setsockopt(client->get(), SOL_SOCKET, SO_LINGER, &reset, sizeof(reset));
  return 0;
}

// One of two sockets closes and no steer runs to rebuild the pool: every flow, including
// those the closed socket had, reaches the survivor.
// Checks: kernel.md D.18; issue 3: nothing depends on a steer process.
TEST_F(Peers, SurvivorTakesEveryFlowWhenOneOfTwoSocketsCloses) {
  std::array<uint16_t, 2> ports{unused_port(Transport::Tcp), unused_port(Transport::Tcp)};
  auto doomed = start_name_server("doomed", "127.0.0.1", ports[0]);
  auto survivor = start_name_server("survivor", "127.0.0.1", ports[1]);
  ASSERT_STEER_OK(steer().run({"register-pid", std::to_string(doomed.pid()), "web"}));
  ASSERT_STEER_OK(steer().run({"register-pid", std::to_string(survivor.pid()), "web"}));
  ASSERT_STEER_OK(steer().run({"bind", "web", "tcp", "127.0.0.9/32", "80"}));
  doomed.kill();

  const int flows = 1000;
  std::vector<int> refused_ports;
  for (int i = 0; i < flows; ++i)
    if (connect_from(static_cast<uint16_t>(20000 + i), *SocketAddress::parse("127.0.0.9:80")) != 0)
      refused_ports.push_back(20000 + i);
  EXPECT_TRUE(refused_ports.empty())
      << refused_ports.size() << " of " << flows << " flows refused, e.g. from port "
      << refused_ports.front();
  auto web = find_destination(steer().status(), "web", "tcp", "ipv4");
  ASSERT_FALSE(web.is_null());
  EXPECT_EQ(web.at("counters").at("selected"), flows - static_cast<int>(refused_ports.size()));
  EXPECT_GT(web.at("counters").at("dead_slot"), 0) << "the closed socket's flows moved";
  auto sockets = web.at("sockets");
  ASSERT_EQ(sockets.size(), 1u);
  EXPECT_EQ(sockets[0].at("pid"), survivor.pid());
}

// Two of three sockets close: the last one takes every flow, even those whose table entry
// and its next neighbours all pointed at the closed two.
// Checks: kernel.md D.18; issue 3: refused only when no usable socket is left.
TEST_F(Peers, LastSocketTakesEveryFlowWhenTwoOfThreeClose) {
  std::vector<BackgroundProcess> servers;
  for (const char* name : {"doomed-1", "doomed-2", "survivor"}) {
    servers.push_back(start_name_server(name, "127.0.0.1", unused_port(Transport::Tcp)));
    ASSERT_STEER_OK(steer().run({"register-pid", std::to_string(servers.back().pid()), "web"}));
  }
  ASSERT_STEER_OK(steer().run({"bind", "web", "tcp", "127.0.0.9/32", "80"}));
  servers[0].kill();
  servers[1].kill();

  const int flows = 1000;
  std::vector<int> refused_ports;
  for (int i = 0; i < flows; ++i)
    if (connect_from(static_cast<uint16_t>(20000 + i), *SocketAddress::parse("127.0.0.9:80")) != 0)
      refused_ports.push_back(20000 + i);
  EXPECT_TRUE(refused_ports.empty())
      << refused_ports.size() << " of " << flows << " flows refused with a live socket in the "
      << "pool, e.g. from port " << refused_ports.front();
  auto web = find_destination(steer().status(), "web", "tcp", "ipv4");
  ASSERT_FALSE(web.is_null());
  EXPECT_EQ(web.at("counters").at("no_socket"), static_cast<int>(refused_ports.size()));
  ASSERT_EQ(web.at("sockets").size(), 1u);
}

// Steering lives in the kernel: with no steer process left in the namespace, connections are
// still steered, and status (a new steer) still reads the state.
// Checks: kernel.md G.32 (a pinned link survives its creator).
TEST_F(Peers, SteeringGoesOnWithNoSteerProcessAlive) {
  uint16_t port = unused_port(Transport::Tcp);
  auto server = start_name_server("kept", "127.0.0.1", port);
  ASSERT_STEER_OK(steer().run({"bind", "web", "tcp", "127.0.0.0/8", "0"}));
  ASSERT_STEER_OK(steer().run({"register-pid", std::to_string(server.pid()), "web"}));

  EXPECT_TRUE(processes_in_this_netns("steer").empty());
  for (uint16_t to_port : {80, 443, 8080}) {
    auto response = curl_get(url("127.0.0.3", to_port));
    ASSERT_EQ(response.exit_code, 0) << response.error;
    EXPECT_EQ(response.body, "kept");
  }
  EXPECT_TRUE(processes_in_this_netns("steer").empty());
  EXPECT_EQ(sockets_of("web", "tcp", "ipv4")[0].at("selected"), 3);
}

// ---- upgrade under load ---------------------------------------------------------------------

// `steer upgrade` five times while a client connects without pause: no connection fails or
// lands anywhere but the registered listener, and each upgrade installs a new program.
// Checks: kernel.md G.32 (the link is updated in place); issue 3: upgrade refuses nothing.
TEST_F(Peers, UpgradeWhileClientsConnectRefusesNothing) {
  STEER_ASSERT_OK_AND_ASSIGN(auto listener, listen_tcp(SocketAddress::ipv4_loopback(0),
                                                       {.backlog = 4096}));
  STEER_ASSERT_OK_AND_ASSIGN(auto listening_at, local_address(listener.get()));
  ASSERT_STEER_OK(steer().run({"bind", "web", "tcp", "127.0.0.9/32", "80"}));
  ASSERT_STEER_OK(steer().run({"register-pid", std::to_string(::getpid()), "web", "tcp",
                               listening_at.to_string()}));
  auto target = *SocketAddress::parse("127.0.0.9:80");

  std::atomic<bool> upgrades_done{false};
  uint64_t syn_retransmits_before = tcp_ext_counters()["TCPSynRetrans"];
  std::atomic<int> connects{0}, failures{0}, not_accepted{0};
  std::string first_failure;
  const int minimum_connects = 2000;
  std::thread client([&] {
    while ((!upgrades_done || connects < minimum_connects) && connects < 500000) {
      auto fd = connect_tcp(target);
      ++connects;
      if (!fd) {
        if (failures++ == 0) first_failure = fd.error().message;
        continue;
      }
      linger reset{.l_onoff = 1, .l_linger = 0};
      ::setsockopt(fd->get(), SOL_SOCKET, SO_LINGER, &reset, sizeof(reset));
      pollfd ready{listener.get(), POLLIN, 0};
      if (::poll(&ready, 1, 2000) != 1 || !accept_now(listener.get())) ++not_accepted;
    }
  });

  std::set<int64_t> program_ids{steer().status().at("program_id").get<int64_t>()};
  for (int i = 0; i < 5; ++i) {
    EXPECT_STEER_OK(steer().run({"upgrade"}));
    program_ids.insert(steer().status().at("program_id").get<int64_t>());
  }
  int connects_during_upgrades = connects;
  upgrades_done = true;
  client.join();

  EXPECT_EQ(failures, 0) << "of " << connects << " connects; first: " << first_failure;
  EXPECT_EQ(not_accepted, 0) << "connections that did not reach the registered listener";
  EXPECT_GE(connects, minimum_connects);
  EXPECT_GT(connects_during_upgrades, 0);
  EXPECT_EQ(program_ids.size(), 6u) << "each upgrade installs a new program";
  // One selection per SYN the program ran on: a SYN retransmitted under load runs it again
  // for the same connection, and the kernel counts those.
  uint64_t retransmitted = tcp_ext_counters()["TCPSynRetrans"] - syn_retransmits_before;
  auto web = find_destination(steer().status(), "web", "tcp", "ipv4");
  EXPECT_EQ(web.at("counters").at("selected").get<uint64_t>(),
            static_cast<uint64_t>(connects.load()) + retransmitted);
}

// ---- explain agrees with reality ------------------------------------------------------------

// For flows from several source ports, the socket explain names is the server that answers
// curl from that exact source address:port.
// Checks: kernel.md G.38 (BPF_PROG_TEST_RUN on sk_lookup).
TEST_F(Peers, ExplainNamesTheSocketThatAnswers) {
  std::map<std::string, std::string> address_of;  // server name -> bound address
  std::vector<BackgroundProcess> servers;
  for (const char* name : {"left", "right"}) {
    uint16_t port = unused_port(Transport::Tcp);
    servers.push_back(start_name_server(name, "127.0.0.1", port));
    address_of[name] = fmt::format("127.0.0.1:{}", port);
    ASSERT_STEER_OK(steer().run({"register-pid", std::to_string(servers.back().pid()), "web"}));
  }
  ASSERT_STEER_OK(steer().run({"bind", "web", "tcp", "127.0.0.0/8", "80"}));
  std::map<std::string, uint64_t> cookie_of;  // bound address -> cookie, from status
  for (const auto& socket : sockets_of("web", "tcp", "ipv4"))
    cookie_of[socket.at("address")] = socket.at("cookie");
  ASSERT_EQ(cookie_of.size(), 2u);

  std::set<std::string> answered;
  int checked = 0;
  for (uint16_t source_port = 41000; source_port < 41032; ++source_port) {
    if (checked >= 8 && answered.size() == 2) break;
    SCOPED_TRACE(fmt::format("from 127.0.0.1:{}", source_port));
    auto explained = steer().json({"explain", "tcp", fmt::format("127.0.0.1:{}", source_port),
                                   "127.0.0.9:80"});
    ASSERT_EQ(explained.at("outcome"), "steered") << explained.dump(2);
    auto response = curl_get(url("127.0.0.9", 80), {"--interface", "127.0.0.1", "--local-port",
                                                    std::to_string(source_port)});
    ASSERT_EQ(response.exit_code, 0) << response.error;
    ASSERT_TRUE(address_of.contains(response.body)) << response.body;
    EXPECT_EQ(explained.at("socket").at("address"), address_of[response.body]);
    EXPECT_EQ(explained.at("socket").at("cookie"), cookie_of[address_of[response.body]]);
    answered.insert(response.body);
    ++checked;
  }
  EXPECT_EQ(answered.size(), 2u) << "32 flows all went to one of two servers";
}

}  // namespace
}  // namespace steer::testing
