// The fast readers of bindings files (core/binding_fast.h): they take the usual shapes, leave
// everything else to the full parsers, and never disagree with them (generated files, edge
// cases). tests/fuzz/bindings_fast_fuzz.cpp runs the same comparison on mutated inputs.
#include <gtest/gtest.h>

#include <cstdint>
#include <string>
#include <vector>

#include "core/binding.h"
#include "core/binding_fast.h"
#include "fuzz/bindings_differential.h"
#include "fuzz/splitmix.h"

namespace steer::core {
namespace {

using testing::bindings_difference;
using namespace std::string_view_literals;

constexpr const char* kToml = R"(# bindings
[[binding]]
label = "web"
protocol = "tcp"
prefix = "192.0.2.0/24"
ports = "80"

[[binding]]   # every port
  ports = 0
	prefix = "2001:db8::/64"
protocol = "udp"
label = "dns"

[[binding]]
label="api"
protocol="tcp"
prefix="10.0.0.0/8"
ports=8000
)";

constexpr const char* kJson = R"({"bindings": [
  {"label": "web", "protocol": "tcp", "prefix": "192.0.2.0/24", "ports": "80"},
  {"ports": 0, "prefix": "2001:db8::/64", "protocol": "udp", "label": "dns"},
  {"label":"api","protocol":"tcp","prefix":"10.0.0.0/8","ports":8000}
]}
)";

const std::vector<std::string> kExpected = {"web tcp 192.0.2.0/24 80", "dns udp 2001:db8::/64 0",
                                            "api tcp 10.0.0.0/8 8000"};

std::vector<std::string> texts(const std::vector<Binding>& bindings) {
  std::vector<std::string> out;
  for (const auto& binding : bindings) out.push_back(binding.to_string());
  return out;
}

TEST(FastBindings, ReadTheUsualShapes) {
  auto toml = fast::toml_bindings(kToml);
  ASSERT_TRUE(toml.has_value());
  EXPECT_EQ(texts(*toml), kExpected);
  auto json = fast::json_bindings(kJson);
  ASSERT_TRUE(json.has_value());
  EXPECT_EQ(texts(*json), kExpected);
  std::string crlf;
  for (char c : std::string(kToml)) crlf += c == '\n' ? std::string("\r\n") : std::string(1, c);
  EXPECT_TRUE(fast::toml_bindings(crlf).has_value());
  EXPECT_TRUE(fast::toml_bindings("").has_value());
  EXPECT_TRUE(fast::toml_bindings("# nothing yet\n").has_value());
  EXPECT_TRUE(fast::json_bindings(R"({"bindings": []})").has_value());
  for (const char* text : {kToml, kJson}) EXPECT_EQ(bindings_difference(text, BindingsFormat::Detect), "");
}

// Whatever the fast readers do not take goes to the full parsers, which give the bindings or
// the error with its line, as before.
TEST(FastBindings, LeaveEverythingElseToTheFullParsers) {
  const std::string entry = "[[binding]]\nlabel = \"web\"\nprotocol = \"tcp\"\nprefix = \"10.0.0.0/8\"\n";
  const std::vector<std::string> toml = {
      entry + "ports = 080\n", entry + "ports = +80\n", entry + "ports = 1_000\n",
      entry + "ports = 0x50\n", entry + "ports = 65536\n", entry + "ports = 99999999\n",
      entry + "ports = -1\n", entry + "ports = 80.0\n", entry + "ports = true\n",
      entry + "ports = '80'\n", entry + "ports = \"\"\"80\"\"\"\n", entry + "ports = \"8\\u0030\"\n",
      entry + "ports = \"80\"\nlabel = \"x\"\n", entry, entry + "ports = 80\ncolour = \"red\"\n",
      entry + "ports = 80\r", entry + "ports = 80\rx\n", entry + "\"ports\" = 80\n",
      entry + "ports.x = 80\n", entry + "ports = 80 80\n", entry + "ports = 80 # caf\xc3\xa9\n",
      "label = \"web\"\n" + entry, "binding = []\n", "[[ binding ]]\n", "[binding]\n",
      "[[binding]]\nlabel = \"caf\xc3\xa9\"\nprotocol = \"tcp\"\nprefix = \"10.0.0.0/8\"\nports = 1\n",
      "[[binding]]\nlabel = \"a\x7f\"\nprotocol = \"tcp\"\nprefix = \"10.0.0.0/8\"\nports = 1\n",
      "[[binding]]\nlabel = \"\"\nprotocol = \"tcp\"\nprefix = \"10.0.0.0/8\"\nports = 1\n",
      entry + "ports = \"90-80\"\n", std::string("\xef\xbb\xbf") + entry + "ports = 1\n",
      entry + std::string("ports = 1\n\0", 11)};
  for (const auto& text : toml) {
    EXPECT_FALSE(fast::toml_bindings(text).has_value()) << text;
    EXPECT_EQ(bindings_difference(text, BindingsFormat::Toml), "") << text;
  }
  const std::string fields = R"("label": "web", "protocol": "tcp", "prefix": "10.0.0.0/8")";
  auto json_with = [&](const std::string& ports) {
    return "{\"bindings\": [{" + fields + ", \"ports\": " + ports + "}]}";
  };
  const std::vector<std::string> json = {
      json_with("080"), json_with("-0"), json_with("-1"), json_with("1.0"), json_with("1e2"),
      json_with("65536"), json_with("true"), json_with("null"), json_with("[80]"),
      json_with("\"8\\u0030\""), json_with("\"80\"") + " x", json_with("\"80\"") + "{}",
      json_with("\"80\", \"ports\": 81"), json_with("\"80\", \"port\": 81"),
      "{\"bindings\": [{" + fields + "}]}", "{\"bindings\": [], \"bindings\": []}",
      "{\"bindings\": [], \"x\": 1}", "{}", "[]", "{\"bindings\": {}}", "{\"bindings\": [7]}",
      "{\"bindings\": [{\"l\\u0061bel\": \"web\", \"protocol\": \"tcp\", \"prefix\": \"10.0.0.0/8\", \"ports\": 1}]}",
      "{\"bindings\": [{\"label\": \"caf\xc3\xa9\", \"protocol\": \"tcp\", \"prefix\": \"10.0.0.0/8\", \"ports\": 1}]}",
      "{\"bindings\": [{\"label\": \"a\tb\", \"protocol\": \"tcp\", \"prefix\": \"10.0.0.0/8\", \"ports\": 1}]}",
      "{\"bindings\": [{\"label\": \"a\xff\", \"protocol\": \"tcp\", \"prefix\": \"10.0.0.0/8\", \"ports\": 1}]}",
      "{\"bindings\": [{" + fields + ", \"ports\": 1},]}", "{\"bindings\": [{" + fields + ", \"ports\": 1}]",
      "{\"bindings\": [{" + fields + ", \"ports\": 1}]}}", "{\"bindings\": [{" + fields + " \"ports\": 1}]}",
      "{\"bindings\": [{" + fields + ", \"ports\": \"90-80\"}]}",
      // simdjson let this through when a value was looked at but not read.
      R"({"bindings":[{"label":"a","protocol":"tcp","prefix":"10.0.0.0/8","ports":1},{"label":"a","protocol":"tcp":"10.0.0.0/8","ports":"1"},"prefix":"10.0.0.0/8","ports":"1"}]})"};
  for (const auto& text : json) {
    EXPECT_FALSE(fast::json_bindings(text).has_value()) << text;
    EXPECT_EQ(bindings_difference(text, BindingsFormat::Json), "") << text;
  }
}

using Random = steer::testing::SplitMix;

// A bindings file of random entries in either format. Values come mostly from what both
// readers take, sometimes from what sends the file to the full parser (an escape, UTF-8, a
// bad prefix or port, a missing or repeated key); `clean` keeps to the first kind.
struct Generated {
  std::string text;
  bool json = false;
};

Generated generate(Random& random, bool clean) {
  const std::vector<std::string> labels = {"web", "dns", "a", "svc-12", "x_y.z", "A b", "w#b"};
  const std::vector<std::string> odd_labels = {"caf\xc3\xa9", "a\\u0041", "", "a\tb", "q\"", "\x7f"};
  const std::vector<std::string> protocols = {"tcp", "udp"};
  const std::vector<std::string> odd_protocols = {"TCP", "sctp", ""};
  const std::vector<std::string> prefixes = {"10.0.0.0/8", "192.0.2.7", "192.0.2.0/24", "::/0",
                                             "2001:db8::/64", "fe80::1", "0.0.0.0/0"};
  const std::vector<std::string> odd_prefixes = {"10.0.0.1/8", "::ffff:10.0.0.0/104", "300.1.1.1",
                                                 "10.0.0.0/33", "x"};
  const std::vector<std::string> ports = {"\"80\"", "\"8000-8999\"", "\"0\"", "0", "443", "65535", "1"};
  const std::vector<std::string> odd_ports = {"\"90-80\"", "65536", "080", "-1", "1.5", "\"x\"", "true", "+1"};
  const std::vector<std::string> spaces = {"", " ", "  ", "\t"};
  const std::vector<std::string> comments = {"", "", " # note", "\t#", " # a = \"b\""};
  bool json = random.below(2) == 0;
  bool crlf = !json && random.below(4) == 0;
  std::string newline = crlf ? "\r\n" : "\n";
  std::string text;
  size_t count = random.below(6);
  if (json) text = "{" + random.pick(spaces) + "\"bindings\":" + random.pick(spaces) + "[";
  if (!json && random.below(3) == 0) text += "# generated" + newline + newline;
  for (size_t i = 0; i < count; ++i) {
    auto odd = [&](size_t one_in) { return !clean && random.below(one_in) == 0; };
    std::vector<std::pair<std::string, std::string>> fields = {
        {"label", "\"" + (odd(12) ? random.pick(odd_labels) : random.pick(labels)) + "\""},
        {"protocol", "\"" + (odd(20) ? random.pick(odd_protocols) : random.pick(protocols)) + "\""},
        {"prefix", "\"" + (odd(12) ? random.pick(odd_prefixes) : random.pick(prefixes)) + "\""},
        {"ports", odd(12) ? random.pick(odd_ports) : random.pick(ports)}};
    for (size_t j = fields.size(); j > 1; --j) std::swap(fields[j - 1], fields[random.below(j)]);
    if (odd(25)) fields.pop_back();
    if (odd(25)) fields.push_back(fields.front());
    if (odd(40)) fields.push_back({"colour", "\"red\""});
    if (json) {
      text += (i ? "," : "") + random.pick(spaces) + (random.below(2) ? "\n" : "") + "{";
      for (size_t j = 0; j < fields.size(); ++j)
        text += (j ? "," + random.pick(spaces) : "") + "\"" + fields[j].first + "\":" +
                random.pick(spaces) + fields[j].second;
      text += "}";
    } else {
      text += random.pick(spaces) + "[[binding]]" + random.pick(comments) + newline;
      for (const auto& [key, value] : fields)
        text += random.pick(spaces) + key + random.pick(spaces) + "=" + random.pick(spaces) +
                value + random.pick(comments) + newline;
      if (random.below(2)) text += newline;
    }
  }
  if (json) text += "]" + random.pick(spaces) + "}" + (random.below(2) ? "\n" : "");
  return {text, json};
}

TEST(FastBindings, AgreeWithTheFullParsersOnGeneratedFiles) {
  Random random(20261208);
  size_t taken = 0;
  for (int i = 0; i < 3000; ++i) {
    bool clean = i % 3 == 0;
    auto file = generate(random, clean);
    // Now and then a byte changed, dropped or added: a syntax error, or a new shape.
    if (!clean && random.below(3) == 0 && !file.text.empty()) {
      static constexpr std::string_view kBytes = "\"'{}[],:=#\\ \t\r\n0a-.\x7f\xc3\x00"sv;
      size_t at = random.below(file.text.size());
      char byte = kBytes[random.below(kBytes.size())];
      switch (random.below(3)) {
        case 0: file.text[at] = byte; break;
        case 1: file.text.erase(at, 1); break;
        default: file.text.insert(at, 1, byte);
      }
    }
    auto format = random.below(3) == 0 ? BindingsFormat::Detect
                  : file.json           ? BindingsFormat::Json
                                        : BindingsFormat::Toml;
    ASSERT_EQ(bindings_difference(file.text, format), "") << file.text;
    auto quick = file.json ? fast::json_bindings(file.text) : fast::toml_bindings(file.text);
    // A clean file is of the shape the fast readers are for, unless its set is not valid
    // bindings (it may still repeat a binding: that is the set check's, not the reader's).
    if (clean && !quick) {
      auto full = fast::parse_bindings_full(file.text, "f",
                                            file.json ? BindingsFormat::Json : BindingsFormat::Toml);
      EXPECT_FALSE(full.has_value()) << "the fast reader declined a clean file:\n" << file.text;
    }
    taken += quick.has_value();
  }
  EXPECT_GT(taken, 1000u);  // the comparison is not vacuous
}

// The padded entry point (what read_bindings_file uses) reads the same as a copy.
TEST(FastBindings, PaddedTextIsReadInPlace) {
  std::string text(kJson);
  size_t size = text.size();
  text.append(fast::kJsonPadding, '\0');
  auto json = fast::json_bindings(std::string_view(text).substr(0, size), text.size());
  ASSERT_TRUE(json.has_value());
  EXPECT_EQ(texts(*json), kExpected);
}

}  // namespace
}  // namespace steer::core
