// Binding precedence end to end: a table of {bindings, where curl connects, who answers}.
// Three python servers a, b, c (dual-stack, so each serves IPv4 and IPv6 bindings of its
// label) answer with their name; "real" listens on 127.0.0.42:8042 without steer; label
// "empty" has bindings but no socket. Each row loads its bindings with `steer load-bindings`,
// connects with curl, and checks that `steer explain` and the counters agree.
#include <gtest/gtest.h>

#include <map>

#include "support/kernel_test.h"
#include "support/peers.h"

namespace steer::testing {
namespace {

using nlohmann::json;

struct BindingRow {
  std::string label;
  std::string prefix;
  std::string ports;
  std::string protocol = "tcp";
};

struct PrecedenceCase {
  std::string name;
  std::vector<BindingRow> bindings;
  std::string connect_to;  // "127.0.1.5:80", "[2001:db8::5]:80"
  std::string expected;    // a, b, c (steered), real (the kernel's own lookup), refused
};

void PrintTo(const PrecedenceCase& row, std::ostream* out) { *out << row.name; }

const std::vector<BindingRow> kNestedPrefixes{{"a", "127.0.0.0/8", "80"},
                                              {"b", "127.0.1.0/24", "80"},
                                              {"c", "127.0.1.5/32", "80"}};
const std::vector<BindingRow> kNestedRanges{{"a", "127.0.0.0/24", "8000-8999"},
                                            {"b", "127.0.0.0/24", "8000-8099"},
                                            {"c", "127.0.0.0/24", "8050-8059"}};
const std::vector<BindingRow> kNestedPrefixesV6{{"a", "2001:db8::/64", "80"},
                                                {"b", "2001:db8::/120", "80"},
                                                {"c", "2001:db8::5/128", "80"}};

const std::vector<PrecedenceCase> kCases{
    // Longer prefix wins.
    {"prefix_32_beats_24_and_8", kNestedPrefixes, "127.0.1.5:80", "c"},
    {"prefix_24_beats_8", kNestedPrefixes, "127.0.1.6:80", "b"},
    {"prefix_8_when_nothing_longer_matches", kNestedPrefixes, "127.0.2.1:80", "a"},
    {"order_in_the_file_does_not_matter",
     {kNestedPrefixes[2], kNestedPrefixes[0], kNestedPrefixes[1]}, "127.0.1.5:80", "c"},
    {"longer_prefix_on_all_ports_beats_shorter_on_one_port",
     {{"a", "127.0.1.0/24", "80"}, {"b", "127.0.1.5/32", "0"}}, "127.0.1.5:80", "b"},
    // On an equal prefix: a single port beats a range beats all ports.
    {"single_port_beats_range",
     {{"a", "127.0.0.0/24", "8000-8100"}, {"b", "127.0.0.0/24", "8080"}}, "127.0.0.3:8080", "b"},
    {"single_port_beats_all_ports",
     {{"a", "127.0.0.0/24", "0"}, {"b", "127.0.0.0/24", "8080"}}, "127.0.0.3:8080", "b"},
    {"range_beats_all_ports",
     {{"a", "127.0.0.0/24", "0"}, {"b", "127.0.0.0/24", "8000-8100"}}, "127.0.0.3:8050", "b"},
    {"all_ports_outside_the_range",
     {{"a", "127.0.0.0/24", "0"}, {"b", "127.0.0.0/24", "8000-8100"}}, "127.0.0.3:9000", "a"},
    // Nested ranges: the narrowest that holds the port wins.
    {"narrowest_nested_range_wins", kNestedRanges, "127.0.0.3:8055", "c"},
    {"middle_nested_range", kNestedRanges, "127.0.0.3:8090", "b"},
    {"outer_nested_range", kNestedRanges, "127.0.0.3:8500", "a"},
    // No binding matches: the kernel's normal lookup finds the real listener.
    {"no_binding_matches_normal_lookup", {{"a", "127.0.0.0/24", "80"}}, "127.0.0.42:8042", "real"},
    {"udp_binding_does_not_take_tcp",
     {{"a", "127.0.0.42/32", "8042", "udp"}}, "127.0.0.42:8042", "real"},
    {"binding_takes_over_a_real_listener", {{"a", "127.0.0.0/8", "0"}}, "127.0.0.42:8042", "a"},
    // A binding whose label has no socket: refused, and no fallback to a shorter prefix.
    {"binding_without_socket_is_refused", {{"empty", "127.0.0.0/24", "80"}}, "127.0.0.3:80",
     "refused"},
    {"longest_match_without_socket_refuses_no_fallback",
     {{"a", "127.0.0.0/8", "80"}, {"empty", "127.0.0.3/32", "80"}}, "127.0.0.3:80", "refused"},
    // The same rules over IPv6 (2001:db8::/64 is routed to lo as local in the test's netns).
    {"ipv6_prefix_128_beats_120_and_64", kNestedPrefixesV6, "[2001:db8::5]:80", "c"},
    {"ipv6_prefix_120_beats_64", kNestedPrefixesV6, "[2001:db8::6]:80", "b"},
    {"ipv6_prefix_64_when_nothing_longer_matches", kNestedPrefixesV6, "[2001:db8::1:1]:80", "a"},
    {"ipv6_single_port_beats_range_beats_all_ports",
     {{"a", "2001:db8::/64", "0"}, {"b", "2001:db8::/64", "8000-8100"},
      {"c", "2001:db8::/64", "8080"}}, "[2001:db8::9]:8080", "c"},
    {"ipv6_range_beats_all_ports",
     {{"a", "2001:db8::/64", "0"}, {"b", "2001:db8::/64", "8000-8100"},
      {"c", "2001:db8::/64", "8080"}}, "[2001:db8::9]:8081", "b"},
};

std::string bindings_toml(const std::vector<BindingRow>& bindings) {
  std::string toml;
  for (const auto& row : bindings)
    toml += fmt::format("[[binding]]\nlabel = \"{}\"\nprotocol = \"{}\"\nprefix = \"{}\"\n"
                        "ports = \"{}\"\n\n", row.label, row.protocol, row.prefix, row.ports);
  return toml;
}

class PrecedenceTable : public KernelTest,
                        public ::testing::WithParamInterface<PrecedenceCase> {};

// Checks: kernel.md G.33, G.34, G.38; issue 3: longer prefix wins; on an equal prefix a single
// port beats a range beats all ports; no binding -> the normal lookup; binding without a
// socket -> refused, counted.
TEST_P(PrecedenceTable, CurlReachesTheExpectedServer) {
  const auto& row = GetParam();
  SteerCli steer(bpffs());
  auto routed = run_command({"ip", "-6", "route", "add", "local", "2001:db8::/64", "dev", "lo"});
  ASSERT_EQ(routed.exit_code, 0) << routed.err;
  auto loaded = steer.run({"load"});
  ASSERT_EQ(loaded.exit_code, 0) << loaded.err;

  // Start every server first, then wait for them all: python starts in parallel.
  std::map<std::string, uint16_t> port_of;
  std::vector<std::pair<std::string, BackgroundProcess>> servers;
  for (const char* name : {"a", "b", "c"}) {
    port_of[name] = unused_port(Transport::Tcp);
    servers.emplace_back(name, BackgroundProcess({kPython, name_server_script(), "--name", name,
                                                  "--address", "::", "--port",
                                                  std::to_string(port_of[name]), "--dual-stack"}));
  }
  port_of["real"] = 8042;
  servers.emplace_back("real", BackgroundProcess({kPython, name_server_script(), "--name", "real",
                                                  "--address", "127.0.0.42", "--port", "8042"}));
  for (auto& [name, server] : servers) {
    ASSERT_TRUE(server.wait_for_port(Transport::Tcp, port_of[name]))
        << server.describe() << " did not come up:\n" << server.output();
    if (name == "real") continue;
    auto registered = steer.run({"register-pid", std::to_string(server.pid()), name});
    ASSERT_EQ(registered.exit_code, 0) << registered.out << registered.err;
  }

  TempDir files;
  auto loaded_bindings =
      steer.run({"load-bindings", files.write("bindings.toml", bindings_toml(row.bindings))});
  ASSERT_EQ(loaded_bindings.exit_code, 0) << loaded_bindings.err;

  auto response = curl_get("http://" + row.connect_to + "/");
  auto status = steer.status();
  std::string family = row.connect_to.starts_with("[") ? "ipv6" : "ipv4";
  if (row.expected == "refused") {
    EXPECT_EQ(response.exit_code, 7) << "curl: " << response.body << response.error;
    std::string label = row.bindings.back().label;
    auto destination = find_destination(status, label, "tcp", family);
    ASSERT_FALSE(destination.is_null()) << status.dump(2);
    EXPECT_EQ(destination.at("counters").at("no_socket"), 1) << destination.dump(2);
  } else {
    ASSERT_EQ(response.exit_code, 0) << response.error;
    EXPECT_EQ(response.http_status, 200);
    EXPECT_EQ(response.body, row.expected);
  }
  // Only the expected destination saw the connection (none for the kernel's own lookup).
  for (const auto& destination : status.at("destinations")) {
    bool expected_here = destination.at("family") == family &&
                         (destination.at("label") == row.expected ||
                          (row.expected == "refused" &&
                           destination.at("label") == row.bindings.back().label));
    EXPECT_EQ(destination.at("counters").at("lookups"), expected_here ? 1 : 0)
        << destination.dump(2);
  }

  // explain tells the same story.
  std::string source = family == "ipv6" ? "[::1]:40000" : "127.0.0.1:40000";
  auto explained = steer.json({"explain", "tcp", source, row.connect_to});
  if (row.expected == "real") {
    EXPECT_EQ(explained.at("outcome"), "pass") << explained.dump(2);
  } else if (row.expected == "refused") {
    EXPECT_EQ(explained.at("outcome"), "refused") << explained.dump(2);
    EXPECT_EQ(explained.at("verdict"), "SK_DROP");
  } else {
    ASSERT_EQ(explained.at("outcome"), "steered") << explained.dump(2);
    EXPECT_EQ(explained.at("destination").at("label"), row.expected);
    uint16_t port = port_of[row.expected];
    EXPECT_EQ(explained.at("socket").at("address"), fmt::format("[::]:{}", port));
  }
}

INSTANTIATE_TEST_SUITE_P(Precedence, PrecedenceTable, ::testing::ValuesIn(kCases),
                         [](const auto& info) { return info.param.name; });

}  // namespace
}  // namespace steer::testing
