#include <gtest/gtest.h>

#include "base/socket.h"

namespace steer {
namespace {

TEST(SocketAddress, ParsesIpv4AndIpv6) {
  auto v4 = SocketAddress::parse("192.0.2.7:80");
  ASSERT_TRUE(v4.has_value()) << v4.error().message;
  EXPECT_EQ(v4->family(), AF_INET);
  EXPECT_EQ(v4->port(), 80);
  EXPECT_EQ(v4->to_string(), "192.0.2.7:80");

  auto v6 = SocketAddress::parse("[2001:db8::1]:8443");
  ASSERT_TRUE(v6.has_value()) << v6.error().message;
  EXPECT_EQ(v6->family(), AF_INET6);
  EXPECT_EQ(v6->port(), 8443);
  EXPECT_EQ(v6->to_string(), "[2001:db8::1]:8443");
}

struct BadAddress {
  const char* text;
  const char* hint;  // a piece of the message that tells the user what to do
};

class SocketAddressRejects : public ::testing::TestWithParam<BadAddress> {};

TEST_P(SocketAddressRejects, WithAMessageThatHelps) {
  auto parsed = SocketAddress::parse(GetParam().text);
  ASSERT_FALSE(parsed.has_value()) << GetParam().text;
  EXPECT_EQ(parsed.error().code, EINVAL);
  EXPECT_NE(parsed.error().message.find(GetParam().hint), std::string::npos)
      << parsed.error().message;
}

INSTANTIATE_TEST_SUITE_P(
    Cases, SocketAddressRejects,
    ::testing::Values(BadAddress{"192.0.2.7", "ADDRESS:PORT"},
                      BadAddress{"192.0.2.7:65536", "0 to 65535"},
                      BadAddress{"192.0.2.7:-1", "0 to 65535"},
                      BadAddress{"192.0.2.7:http", "0 to 65535"},
                      BadAddress{"192.0.2.300:80", "not an IPv4 address"},
                      BadAddress{"2001:db8::1:80", "brackets"},
                      BadAddress{"[2001:db8::1]80", "[ADDRESS]:PORT"},
                      BadAddress{"[192.0.2.1]:80", "not an IPv6 address"}));

}  // namespace
}  // namespace steer
