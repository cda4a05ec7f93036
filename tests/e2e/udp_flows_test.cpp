// Issue 7: a UDP flow keeps the socket of its first datagram while it lives, even after that
// socket is drained by a promote; new flows reach the new generation. The datagrams come
// from socat, a real peer, from fixed source ports (one 4-tuple, one flow).
#include <poll.h>
#include <sys/socket.h>

#include <string>

#include <nlohmann/json.hpp>

#include "base/socket.h"
#include "support/kernel_test.h"
#include "support/steer_cli.h"
#include "support/steer_test.h"

namespace steer::testing {
namespace {

class UdpFlows : public SteerTest {
 protected:
  // One datagram from socat, from 127.0.0.1:source_port to the binding.
  void send_from(uint16_t source_port, const std::string& payload) {
    auto sent = run_command({"socat", "-u", "SYSTEM:printf " + payload,
                             fmt::format("UDP-SENDTO:127.0.0.1:5353,sourceport={},reuseaddr",
                                         source_port)});
    ASSERT_EQ(sent.exit_code, 0) << sent.err;
  }
  // What `socket` received next ("" when nothing within a second).
  static std::string received(int socket) {
    pollfd ready{socket, POLLIN, 0};
    if (::poll(&ready, 1, 1000) != 1) return "";
    char buffer[64] = {};
    ssize_t got = ::recv(socket, buffer, sizeof(buffer), 0);
    return got > 0 ? std::string(buffer, static_cast<size_t>(got)) : "";
  }
};

TEST_F(UdpFlows, AFlowKeepsItsDrainingSocketAndNewFlowsGoToTheNewGeneration) {
  STEER_ASSERT_OK_AND_ASSIGN(Fd old_generation, bind_udp(SocketAddress::ipv4_loopback(0)));
  STEER_ASSERT_OK_AND_ASSIGN(Fd new_generation, bind_udp(SocketAddress::ipv4_loopback(0)));
  run_ok({"load"});
  run_ok({"bind", "dns", "udp", "127.0.0.1/32", "5353"});
  run_ok({"register", "dns", "--fd", "3"}, {{old_generation.get(), 3}});

  send_from(40001, "first");
  EXPECT_EQ(received(old_generation.get()), "first");

  run_ok({"register", "dns", "--fd", "3", "--generation", "2"}, {{new_generation.get(), 3}});
  run_ok({"promote", "dns", "2"});
  // The flow that began on generation 1 stays there while it lives...
  send_from(40001, "second");
  EXPECT_EQ(received(old_generation.get()), "second");
  EXPECT_EQ(received(new_generation.get()), "") << "the flow moved to the new generation";
  // ...and a new flow goes to generation 2 only.
  for (uint16_t port = 40002; port < 40012; ++port) {
    send_from(port, "new");
    EXPECT_EQ(received(new_generation.get()), "new") << "flow from port " << port;
  }
  EXPECT_EQ(received(old_generation.get()), "");

  // explain says why the old flow's datagram goes where it goes.
  auto explained = run({"--json", "explain", "udp", "127.0.0.1:40001", "127.0.0.1:5353"});
  ASSERT_EQ(explained.exit_code, 0) << explained.err;
  EXPECT_EQ(nlohmann::json::parse(explained.out).at("udp_flow"), true) << explained.out;

  // Once the old socket is gone, its flow follows the policy to the new generation.
  old_generation = Fd();
  send_from(40001, "third");
  EXPECT_EQ(received(new_generation.get()), "third");
}

// least-queue for UDP reads each socket's receive queue: datagrams of new flows go to the
// socket with nothing waiting, not to one whose reader has stalled.
TEST_F(UdpFlows, LeastQueueAvoidsASocketWhoseReaderStalled) {
  STEER_ASSERT_OK_AND_ASSIGN(Fd stalled, bind_udp(SocketAddress::ipv4_loopback(0)));
  STEER_ASSERT_OK_AND_ASSIGN(Fd reading, bind_udp(SocketAddress::ipv4_loopback(0)));
  run_ok({"load"});
  run_ok({"bind", "dns", "udp", "127.0.0.1/32", "5353"});
  run_ok({"register", "dns", "--fd", "3", "--fd", "4"}, {{stalled.get(), 3}, {reading.get(), 4}});
  run_ok({"policy", "dns", "least-queue"});
  // Five datagrams wait in the stalled socket's queue (sent to it directly, no binding).
  STEER_ASSERT_OK_AND_ASSIGN(auto stalled_address, local_address(stalled.get()));
  STEER_ASSERT_OK_AND_ASSIGN(Fd direct, bind_udp(SocketAddress::ipv4_loopback(0)));
  for (int i = 0; i < 5; ++i)
    ASSERT_EQ(::sendto(direct.get(), "x", 1, 0, stalled_address.data(), stalled_address.size()), 1);
  auto binding = *SocketAddress::parse("127.0.0.1:5353");
  int to_reading = 0;
  for (int flow = 0; flow < 20; ++flow) {  // a new source port each time: a new flow
    STEER_ASSERT_OK_AND_ASSIGN(Fd client, bind_udp(SocketAddress::ipv4_loopback(0)));
    ASSERT_EQ(::sendto(client.get(), "q", 1, 0, binding.data(), binding.size()), 1);
    if (received(reading.get()) == "q") ++to_reading;
  }
  EXPECT_EQ(to_reading, 20);
}

}  // namespace
}  // namespace steer::testing
