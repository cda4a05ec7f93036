#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

#include <fstream>

#include "core/binding.h"

namespace steer::core {
namespace {

TEST(Prefix, ParsesAddressesAndPrefixes) {
  auto v4 = Prefix::parse("192.0.2.0/24");
  ASSERT_TRUE(v4.has_value()) << v4.error().message;
  EXPECT_EQ(v4->family, AF_INET);
  EXPECT_EQ(v4->length, 24);
  EXPECT_EQ(v4->to_string(), "192.0.2.0/24");
  auto host = Prefix::parse("192.0.2.7");
  ASSERT_TRUE(host.has_value());
  EXPECT_EQ(host->length, 32);
  auto v6 = Prefix::parse("2001:db8::/64");
  ASSERT_TRUE(v6.has_value());
  EXPECT_EQ(v6->family, AF_INET6);
  EXPECT_EQ(v6->to_string(), "2001:db8::/64");
  EXPECT_EQ(Prefix::parse("::1")->length, 128);
  EXPECT_EQ(Prefix::parse("0.0.0.0/0")->length, 0);
}

TEST(Prefix, HostBitsAreRefusedWithTheRightPrefix) {
  auto bad = Prefix::parse("192.0.2.7/24");
  ASSERT_FALSE(bad.has_value());
  EXPECT_NE(bad.error().message.find("did you mean 192.0.2.0/24"), std::string::npos)
      << bad.error().message;
  auto bad6 = Prefix::parse("2001:db8::1/64");
  ASSERT_FALSE(bad6.has_value());
  EXPECT_NE(bad6.error().message.find("2001:db8::/64"), std::string::npos);
}

TEST(Prefix, Containment) {
  auto wide = *Prefix::parse("10.0.0.0/8");
  EXPECT_TRUE(wide.contains(*Prefix::parse("10.1.2.0/24")));
  EXPECT_TRUE(wide.contains(wide));
  EXPECT_FALSE(wide.contains(*Prefix::parse("11.0.0.0/24")));
  EXPECT_FALSE(Prefix::parse("10.1.2.0/24")->contains(wide));
  EXPECT_FALSE(wide.contains(*Prefix::parse("::/0")));
}

struct BadWords {
  const char *label, *protocol, *prefix, *ports, *hint;
};
class BindingRejects : public ::testing::TestWithParam<BadWords> {};
TEST_P(BindingRejects, WithAMessageThatNamesTheProblem) {
  const auto& words = GetParam();
  auto binding = Binding::parse(words.label, words.protocol, words.prefix, words.ports);
  ASSERT_FALSE(binding.has_value());
  EXPECT_NE(binding.error().message.find(words.hint), std::string::npos) << binding.error().message;
}
INSTANTIATE_TEST_SUITE_P(
    Cases, BindingRejects,
    ::testing::Values(BadWords{"web", "sctp", "192.0.2.0/24", "80", "unknown protocol"},
                      BadWords{"", "tcp", "192.0.2.0/24", "80", "empty"},
                      BadWords{"web", "tcp", "192.0.2.0/33", "80", "0 to 32"},
                      BadWords{"web", "tcp", "2001:db8::/129", "80", "0 to 128"},
                      BadWords{"web", "tcp", "300.0.2.0/24", "80", "not an IPv4 or IPv6"},
                      BadWords{"web", "tcp", "192.0.2.0/24", "65536", "ports are N (1-65535)"},
                      BadWords{"web", "tcp", "192.0.2.0/24", "90-80", "reversed; write 80-90"},
                      BadWords{"web", "tcp", "192.0.2.0/24", "0-10", "1 <= N <= M"},
                      BadWords{"web", "tcp", "192.0.2.0/24", "http", "ports are N (1-65535)"}),
    [](const ::testing::TestParamInfo<BadWords>& info) {
      std::string name = std::to_string(info.index);
      for (char c : std::string(info.param.hint))
        name += std::isalnum(static_cast<unsigned char>(c)) ? c : '_';
      return name;
    });

TEST(Binding, LabelLimits) {
  EXPECT_TRUE(validate_label(std::string(255, 'a')).has_value());
  auto long_label = validate_label(std::string(256, 'a'));
  ASSERT_FALSE(long_label.has_value());
  EXPECT_NE(long_label.error().message.find("255"), std::string::npos);
  EXPECT_FALSE(validate_label(std::string("we\0b", 4)).has_value());
}

TEST(PortRange, Forms) {
  EXPECT_TRUE(PortRange::parse("0")->is_all());
  EXPECT_TRUE(PortRange::parse("80")->is_single());
  auto range = *PortRange::parse("8000-8999");
  EXPECT_EQ(range.first, 8000);
  EXPECT_EQ(range.last, 8999);
  EXPECT_EQ(range.width(), 1000u);
  EXPECT_EQ(range.to_string(), "8000-8999");
}

std::vector<Binding> parse_all(std::initializer_list<std::array<const char*, 4>> rows) {
  std::vector<Binding> bindings;
  for (const auto& row : rows) bindings.push_back(*Binding::parse(row[0], row[1], row[2], row[3]));
  return bindings;
}

TEST(BindingSet, NestedAndDisjointRangesAreFine) {
  EXPECT_TRUE(validate_binding_set(parse_all({{"a", "tcp", "10.0.0.0/8", "8000-8999"},
                                              {"b", "tcp", "10.0.0.0/8", "8100-8199"},
                                              {"c", "tcp", "10.0.0.0/8", "9000-9999"},
                                              {"d", "tcp", "10.0.0.0/8", "0"},
                                              {"e", "tcp", "10.0.0.0/8", "8150"}}))
                  .has_value());
}

TEST(BindingSet, PartialOverlapIsRefused) {
  auto result = validate_binding_set(parse_all({{"a", "tcp", "10.0.0.0/8", "8000-8999"},
                                                {"b", "tcp", "10.0.0.0/8", "8500-9499"}}));
  ASSERT_FALSE(result.has_value());
  EXPECT_NE(result.error().message.find("overlap"), std::string::npos);
}

TEST(BindingSet, DuplicatesAreRefusedEvenForAnotherProtocolOnly) {
  EXPECT_FALSE(validate_binding_set(parse_all({{"a", "tcp", "10.0.0.0/8", "80"},
                                               {"b", "tcp", "10.0.0.0/8", "80"}}))
                   .has_value());
  EXPECT_TRUE(validate_binding_set(parse_all({{"a", "tcp", "10.0.0.0/8", "80"},
                                              {"b", "udp", "10.0.0.0/8", "80"}}))
                  .has_value());
}

TEST(BindingSet, TooManyRangesOnOnePrefix) {
  std::vector<Binding> bindings;
  for (int i = 0; i <= STEER_RANGES_PER_PREFIX; ++i)
    bindings.push_back(*Binding::parse("a", "tcp", "10.0.0.0/8",
                                       fmt::format("{}-{}", 1000 + i * 10, 1005 + i * 10)));
  auto result = validate_binding_set(bindings);
  ASSERT_FALSE(result.has_value());
  EXPECT_EQ(result.error().code, E2BIG);
}

class BindingsFile : public ::testing::Test {
 protected:
  std::string write(const std::string& name, const std::string& content) {
    std::string path = ::testing::TempDir() + name;
    std::ofstream(path) << content;
    return path;
  }
};

TEST_F(BindingsFile, ReadsToml) {
  auto path = write("good.toml", R"([[binding]]
label = "web"
protocol = "tcp"
prefix = "192.0.2.0/24"
ports = "80"

[[binding]]
label = "dns"
protocol = "udp"
prefix = "2001:db8::/64"
ports = 0
)");
  auto bindings = read_bindings_file(path);
  ASSERT_TRUE(bindings.has_value()) << bindings.error().message;
  ASSERT_EQ(bindings->size(), 2u);
  EXPECT_EQ((*bindings)[0].to_string(), "web tcp 192.0.2.0/24 80");
  EXPECT_EQ((*bindings)[1].to_string(), "dns udp 2001:db8::/64 0");
}

TEST_F(BindingsFile, ReadsJson) {
  auto path = write("good.json", R"({"bindings": [
    {"label": "web", "protocol": "tcp", "prefix": "192.0.2.0/24", "ports": "8000-8999"},
    {"label": "web", "protocol": "tcp", "prefix": "192.0.2.0/24", "ports": 443}]})");
  auto bindings = read_bindings_file(path);
  ASSERT_TRUE(bindings.has_value()) << bindings.error().message;
  ASSERT_EQ(bindings->size(), 2u);
  EXPECT_EQ((*bindings)[1].ports.first, 443);
}

TEST_F(BindingsFile, OneBadLineRejectsTheFileAndSaysWhere) {
  auto path = write("bad.toml", R"([[binding]]
label = "web"
protocol = "tcp"
prefix = "192.0.2.0/24"
ports = "80"

[[binding]]
label = "web"
protocol = "tcp"
prefix = "192.0.2.9/24"
ports = "81"
)");
  auto bindings = read_bindings_file(path);
  ASSERT_FALSE(bindings.has_value());
  EXPECT_NE(bindings.error().message.find("binding #2"), std::string::npos) << bindings.error().message;
  EXPECT_NE(bindings.error().message.find(":7:"), std::string::npos) << bindings.error().message;
  EXPECT_NE(bindings.error().message.find("host bits"), std::string::npos);
}

TEST_F(BindingsFile, SyntaxErrorsAndMissingFiles) {
  auto toml = read_bindings_file(write("syntax.toml", "[[binding]\nlabel = \n"));
  ASSERT_FALSE(toml.has_value());
  EXPECT_NE(toml.error().message.find("not valid TOML"), std::string::npos);
  auto json = read_bindings_file(write("syntax.json", "{\"bindings\": [}"));
  ASSERT_FALSE(json.has_value());
  EXPECT_NE(json.error().message.find("not valid JSON"), std::string::npos);
  auto missing = read_bindings_file("/nonexistent/bindings.toml");
  ASSERT_FALSE(missing.has_value());
  EXPECT_EQ(missing.error().code, ENOENT);
  auto field = read_bindings_file(write("field.json", R"([{"label": "a", "protocol": "tcp", "prefix": "10.0.0.0/8"}])"));
  ASSERT_FALSE(field.has_value());
  EXPECT_NE(field.error().message.find("missing \"ports\""), std::string::npos);
}

}  // namespace
}  // namespace steer::core
