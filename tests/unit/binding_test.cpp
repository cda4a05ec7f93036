#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/stat.h>
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

// inet_pton reads a C string: without a check, "10.0.0.0\0junk/8" would load as 10.0.0.0/8
// (found by reading the fuzz target's inputs).
TEST(Prefix, ANulByteIsRefused) {
  using namespace std::string_view_literals;
  for (auto text : {"10.0.0.0\0 anything/8"sv, "192.0.2.0\0junk"sv, "2001:db8::\0/64"sv}) {
    auto prefix = Prefix::parse(text);
    ASSERT_FALSE(prefix) << "accepted " << prefix->to_string();
    EXPECT_NE(prefix.error().message.find("NUL"), std::string::npos);
  }
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

// Issue 6: a binding inside ::ffff:0:0/96 can never match (the kernel looks those
// connections up as IPv4); refused with the IPv4 form to write instead.
TEST(Prefix, Ipv4MappedPrefixesAreRefusedWithTheIpv4Form) {
  struct Case {
    const char *text, *suggestion;
  };
  for (auto [text, suggestion] : {Case{"::ffff:192.0.2.0/120", "write 192.0.2.0/24"},
                                  Case{"::ffff:192.0.2.1", "write 192.0.2.1/32"},
                                  Case{"::ffff:192.0.2.1/128", "write 192.0.2.1/32"},
                                  Case{"::ffff:0:0/96", "write 0.0.0.0/0"},
                                  Case{"::ffff:10.0.0.0/104", "write 10.0.0.0/8"},
                                  Case{"::ffff:192.0.2.7/120", "write 192.0.2.0/24"}}) {
    auto prefix = Prefix::parse(text);
    ASSERT_FALSE(prefix.has_value()) << text;
    EXPECT_NE(prefix.error().message.find("IPv4-mapped"), std::string::npos)
        << prefix.error().message;
    EXPECT_NE(prefix.error().message.find(suggestion), std::string::npos)
        << prefix.error().message;
  }
  // Prefixes that only partly overlap the mapped range, or look alike, are fine.
  for (const char* fine : {"::/0", "::/95", "::fffe:0:0/96", "64:ff9b::/96", "::1", "::ffff:0/112"})
    EXPECT_TRUE(Prefix::parse(fine).has_value()) << fine << ": " << Prefix::parse(fine).error().message;
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

// Issue 6, defect 7: labels reach terminals and JSON, so they are printable UTF-8.
TEST(Label, PrintableUtf8IsAccepted) {
  for (const char* label : {"web", "web-1.example_com", "caf\xc3\xa9",       // café
                            "\xe6\x97\xa5\xe6\x9c\xac",                        // 日本
                            "\xf0\x9f\x90\xb3", "a b", "back\\slash", "\xc2\xa0nbsp",
                            "\xef\xbf\xbd"})                                // U+FFFD
    EXPECT_TRUE(validate_label(label).has_value()) << validate_label(label).error().message;
  // 255 bytes of two-byte characters and one ASCII byte: the limit counts bytes.
  std::string accents;
  for (int i = 0; i < 127; ++i) accents += "\xc3\xa9";
  EXPECT_TRUE(validate_label(accents + "a").has_value());
  EXPECT_FALSE(validate_label(accents + "\xc3\xa9").has_value());
}

struct BadLabel {
  std::string name, label, expected;
};
class LabelRefuses : public ::testing::TestWithParam<BadLabel> {};
TEST_P(LabelRefuses, SayingWhatAndWhere) {
  auto valid = validate_label(GetParam().label);
  ASSERT_FALSE(valid.has_value());
  EXPECT_EQ(valid.error().code, EINVAL);
  EXPECT_NE(valid.error().message.find(GetParam().expected), std::string::npos)
      << valid.error().message;
  if (!GetParam().label.empty() && GetParam().label.size() <= 255) {
    EXPECT_NE(valid.error().message.find("labels are 1..255 bytes of printable UTF-8"),
              std::string::npos)
        << valid.error().message;
  }
}
INSTANTIATE_TEST_SUITE_P(
    Classes, LabelRefuses,
    ::testing::Values(
        BadLabel{"nul", std::string("we\0b", 4), "cannot contain a NUL byte (at byte 3)"},
        BadLabel{"escape", "bad\x1b[31m", "control character (0x1b) at byte 4"},
        BadLabel{"newline", "web\n", "control character (0x0a) at byte 4"},
        BadLabel{"tab", "w\teb", "control character (0x09) at byte 2"},
        BadLabel{"carriage_return", "web\r", "control character (0x0d)"},
        BadLabel{"del", "web\x7f", "control character (0x7f)"},
        BadLabel{"c1_next_line", "web\xc2\x85", "control character (U+0085) at byte 4"},
        BadLabel{"c1_csi", "\xc2\x9b" "31m", "control character (U+009B) at byte 1"},
        BadLabel{"line_separator", "a\xe2\x80\xa8" "b", "non-printable character (U+2028)"},
        BadLabel{"bidi_override", "abc\xe2\x80\xaegpj.exe", "non-printable character (U+202E)"},
        BadLabel{"bidi_isolate", "\xe2\x81\xa6x", "non-printable character (U+2066)"},
        BadLabel{"byte_ff", "bad\xff", "not valid UTF-8 (byte 0xff at byte 4)"},
        BadLabel{"lone_continuation", "\x80web", "not valid UTF-8 (byte 0x80 at byte 1)"},
        BadLabel{"overlong_slash", "a\xc0\xaf" "b", "not valid UTF-8 (byte 0xc0 at byte 2)"},
        BadLabel{"overlong_three_bytes", "\xe0\x80\xaf", "not valid UTF-8 (byte 0xe0"},
        BadLabel{"overlong_four_bytes", "\xf0\x8f\xbf\xbf", "not valid UTF-8 (byte 0xf0"},
        BadLabel{"surrogate", "\xed\xa0\x80", "not valid UTF-8 (byte 0xed"},
        BadLabel{"above_10ffff", "\xf4\x90\x80\x80", "not valid UTF-8 (byte 0xf4"},
        BadLabel{"lead_f5", "\xf5\x80\x80\x80", "not valid UTF-8 (byte 0xf5"},
        BadLabel{"truncated", "web\xe6\x97", "not valid UTF-8 (byte 0xe6 at byte 4)"},
        BadLabel{"missing_continuation", "\xe6\x97x", "not valid UTF-8 (byte 0xe6 at byte 1)"},
        BadLabel{"too_long", std::string(256, 'a'), "label is 256 bytes long; the limit is 255"},
        BadLabel{"empty", "", "a label cannot be empty"}),
    [](const ::testing::TestParamInfo<BadLabel>& info) { return info.param.name; });

TEST(Utf8, DecodesStrictly) {
  auto step = decode_utf8("\xe6\x97\xa5", 0);
  EXPECT_TRUE(step.valid);
  EXPECT_EQ(step.code_point, U'\u65e5');
  EXPECT_EQ(step.length, 3u);
  step = decode_utf8("\xf0\x9f\x90\xb3", 0);
  EXPECT_TRUE(step.valid);
  EXPECT_EQ(step.code_point, U'\U0001f433');
  EXPECT_EQ(step.length, 4u);
  EXPECT_EQ(decode_utf8("\xf4\x8f\xbf\xbf", 0).code_point, U'\U0010ffff');
  EXPECT_EQ(decode_utf8("\xed\x9f\xbf", 0).code_point, U'\ud7ff');  // just below surrogates
  EXPECT_TRUE(decode_utf8("\xee\x80\x80", 0).valid);                // just above them
  for (std::string_view bad : {"\xc0\x80", "\xc1\xbf", "\xe0\x9f\xbf", "\xed\xbf\xbf",
                               "\xf0\x8f\xbf\xbf", "\xf4\x90\x80\x80", "\xf8\x88\x80\x80\x80",
                               "\xe6\x97", "\xe6\x41\x41"}) {
    step = decode_utf8(bad, 0);
    EXPECT_FALSE(step.valid) << testing::PrintToString(bad);
    EXPECT_EQ(step.length, 1u);
    EXPECT_EQ(step.code_point, static_cast<uint8_t>(bad[0]));
  }
}

// Issue 6, defect 11: what steer prints cannot carry a terminal escape. The CLI's printable()
// and printable_lines() are this function.
TEST(Escape, KeepsPrintableTextAndEscapesTheRest) {
  EXPECT_EQ(escape_unprintable("web"), "web");
  EXPECT_EQ(escape_unprintable("caf\xc3\xa9 \xe6\x97\xa5"), "caf\xc3\xa9 \xe6\x97\xa5");
  EXPECT_EQ(escape_unprintable("a\x1b[31mred"), "a\\x1b[31mred");
  EXPECT_EQ(escape_unprintable("bad\xff"), "bad\\xff");
  EXPECT_EQ(escape_unprintable("x\ty\r\n"), "x\\x09y\\x0d\\x0a");
  EXPECT_EQ(escape_unprintable("x\ty\n", true), "x\\x09y\n");
  EXPECT_EQ(escape_unprintable(std::string("a\0b", 3)), "a\\x00b");
  EXPECT_EQ(escape_unprintable("\x7f"), "\\x7f");
  EXPECT_EQ(escape_unprintable("\xc2\x9b" "2J"), "\\u009b2J");                  // C1 CSI
  EXPECT_EQ(escape_unprintable("a\xe2\x80\xae" "b"), "a\\u202eb");                // bidi override
  EXPECT_EQ(escape_unprintable("\xc0\xaf"), "\\xc0\\xaf");                      // overlong
  EXPECT_EQ(escape_unprintable("\xed\xa0\x80"), "\\xed\\xa0\\x80");             // surrogate
  // /proc/PID/comm cut inside a character: the whole ones stay, the cut one is escaped.
  EXPECT_EQ(escape_unprintable("sleep\xe6\x97\xa5\xe6\x97"), "sleep\xe6\x97\xa5\\xe6\\x97");
}

TEST(Escape, OutputIsPrintableUtf8AndEscapingTwiceChangesNothing) {
  // Every byte value, alone and after a lead byte.
  for (int a = 0; a < 256; ++a) {
    for (int b : {-1, 0x41, 0x80, 0xbf, 0xa0}) {
      std::string text(1, static_cast<char>(a));
      if (b >= 0) text += static_cast<char>(b);
      std::string once = escape_unprintable(text);
      EXPECT_EQ(escape_unprintable(once), once) << testing::PrintToString(text);
      for (size_t at = 0; at < once.size();) {
        auto step = decode_utf8(once, at);
        ASSERT_TRUE(step.valid && is_printable(step.code_point)) << testing::PrintToString(text);
        at += step.length;
      }
    }
  }
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

TEST(BindingSet, MessagesNameTheBindingsInFileOrder) {
  auto result = validate_binding_set(parse_all({{"z", "tcp", "10.0.0.0/8", "80"},
                                                {"m", "udp", "10.0.0.0/8", "80"},
                                                {"k", "tcp", "10.0.0.0/16", "80"},
                                                {"a", "tcp", "10.0.0.0/8", "80"}}));
  ASSERT_FALSE(result.has_value());
  EXPECT_EQ(result.error().message, "'z tcp 10.0.0.0/8 80' and 'a tcp 10.0.0.0/8 80' bind the "
                                    "same protocol, prefix and ports: keep one");
  // The same bytes and length in the other family are another prefix.
  EXPECT_TRUE(validate_binding_set(parse_all({{"a", "tcp", "0.0.0.0/0", "80"},
                                              {"b", "tcp", "::/0", "80"}}))
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
  auto field = read_bindings_file(write("field.json", R"({"bindings": [{"label": "a", "protocol": "tcp", "prefix": "10.0.0.0/8"}]})"));
  ASSERT_FALSE(field.has_value());
  EXPECT_NE(field.error().message.find("missing \"ports\""), std::string::npos);
}

// Issue 6, defect 1: a path that is not a regular file is refused before it is read (a
// directory read as "no bindings" and removed them all; /dev/zero and FIFOs never end).
TEST_F(BindingsFile, OnlyRegularFilesAreRead) {
  std::string fifo = ::testing::TempDir() + "bindings.fifo";
  ::unlink(fifo.c_str());
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  struct Case {
    std::string path, kind;
  };
  for (const auto& [path, kind] : {Case{::testing::TempDir(), "a directory"},
                                   Case{"/dev/null", "a character device"},
                                   Case{"/dev/zero", "a character device"},
                                   Case{fifo, "a FIFO"}}) {
    auto bindings = read_bindings_file(path);
    ASSERT_FALSE(bindings.has_value()) << path;
    EXPECT_EQ(bindings.error().message,
              path + " is " + kind + ": steer reads bindings from regular files or - for stdin only");
  }
  ::unlink(fifo.c_str());
}

// Issue 6, defect 2: the size is capped (256 MiB by default), checked before reading.
TEST_F(BindingsFile, SizeIsCapped) {
  std::string good = "binding = []\n";  // 13 bytes
  auto path = write("small.toml", good);
  EXPECT_TRUE(read_bindings_file(path, BindingsFormat::Detect, good.size()).has_value());
  auto big = read_bindings_file(path, BindingsFormat::Detect, good.size() - 1);
  ASSERT_FALSE(big.has_value());
  EXPECT_EQ(big.error().code, EFBIG);
  EXPECT_NE(big.error().message.find(path + " is 13 bytes, more than the 12 bytes steer reads: split it"),
            std::string::npos)
      << big.error().message;
  EXPECT_EQ(kBindingsFileMaxBytes, size_t{256} << 20);
}

// "-" is stdin, read with the same cap (at most cap + 1 bytes).
class BindingsFromStdin : public BindingsFile {
 protected:
  // Puts `content` on stdin (a pipe) for the test.
  void feed(const std::string& content) {
    int pipe_fds[2];
    ASSERT_EQ(::pipe(pipe_fds), 0);
    ASSERT_EQ(::write(pipe_fds[1], content.data(), content.size()), ssize_t(content.size()));
    ::close(pipe_fds[1]);
    saved_stdin_ = ::dup(STDIN_FILENO);
    ASSERT_EQ(::dup2(pipe_fds[0], STDIN_FILENO), STDIN_FILENO);
    ::close(pipe_fds[0]);
  }
  void TearDown() override {
    if (saved_stdin_ >= 0) ::dup2(saved_stdin_, STDIN_FILENO), ::close(saved_stdin_);
  }
  int saved_stdin_ = -1;
};

TEST_F(BindingsFromStdin, ReadsWhatIsPiped) {
  feed(R"({"bindings": [{"label": "web", "protocol": "tcp", "prefix": "10.0.0.0/8", "ports": 80}]})");
  auto bindings = read_bindings_file("-");
  ASSERT_TRUE(bindings.has_value()) << bindings.error().message;
  ASSERT_EQ(bindings->size(), 1u);
  EXPECT_EQ((*bindings)[0].to_string(), "web tcp 10.0.0.0/8 80");
}

TEST_F(BindingsFromStdin, RefusesMoreThanTheCap) {
  feed(std::string(1000, '\n'));
  auto bindings = read_bindings_file("-", BindingsFormat::Detect, 999);
  ASSERT_FALSE(bindings.has_value());
  EXPECT_EQ(bindings.error().code, EFBIG);
  EXPECT_NE(bindings.error().message.find("stdin has more than the 999 bytes steer reads"),
            std::string::npos)
      << bindings.error().message;
}

TEST_F(BindingsFromStdin, ErrorsNameStdin) {
  feed("[[binding]]\nlabel = \"web\"\n");
  auto bindings = read_bindings_file("-");
  ASSERT_FALSE(bindings.has_value());
  EXPECT_NE(bindings.error().message.find("stdin:1: binding #1: missing protocol"), std::string::npos)
      << bindings.error().message;
}

// An empty set is returned as one (load-bindings decides whether it may apply it).
TEST_F(BindingsFile, FilesWithoutBindingsAreEmptySets) {
  for (const char* text : {"", "  \n\t\n", "# nothing yet\n", "binding = []\n", "{}",
                           "{\"bindings\": []}", " \n{ \"bindings\" : [ ] }\n"}) {
    auto bindings = parse_bindings(text, "f");
    ASSERT_TRUE(bindings.has_value()) << testing::PrintToString(text) << ": "
                                      << bindings.error().message;
    EXPECT_TRUE(bindings->empty());
  }
  EXPECT_TRUE(parse_bindings(" \n", "f", BindingsFormat::Json)->empty());
}

// Issue 6, defect 8: the format comes from the content, not the name; --format overrides it.
TEST_F(BindingsFile, FormatComesFromTheContent) {
  const char* toml = "# generated\n\n[[binding]]\nlabel = \"web\"\nprotocol = \"tcp\"\n"
                     "prefix = \"10.0.0.0/8\"\nports = 80\n";
  const char* commented_json = "# comments are TOML's\n{\"bindings\": []}";
  const char* json_list = "[{\"label\": \"web\"}]";
  for (const char* name : {"bindings", "bindings.json", "bindings.conf"}) {
    auto bindings = read_bindings_file(write(name, toml));
    ASSERT_TRUE(bindings.has_value()) << name << ": " << bindings.error().message;
    EXPECT_EQ(bindings->size(), 1u);
  }
  auto as_json = parse_bindings(toml, "f", BindingsFormat::Json);
  ASSERT_FALSE(as_json.has_value());
  EXPECT_NE(as_json.error().message.find("f: not valid JSON"), std::string::npos);
  EXPECT_EQ(as_json.error().message.find("--format"), std::string::npos);  // it was asked for
  auto commented = parse_bindings(commented_json, "f");
  ASSERT_FALSE(commented.has_value());
  EXPECT_NE(commented.error().message.find(
                "not valid JSON: [json.exception.parse_error.101] parse error at line 1, column 1"),
            std::string::npos)
      << commented.error().message;
  EXPECT_NE(commented.error().message.find(
                "(read as JSON: the first thing in it is '{'; --format toml reads it as TOML)"),
            std::string::npos)
      << commented.error().message;
  auto list = parse_bindings(json_list, "f");
  ASSERT_FALSE(list.has_value());
  EXPECT_NE(list.error().message.find("not valid TOML"), std::string::npos) << list.error().message;
  EXPECT_NE(list.error().message.find("--format json reads it as JSON"), std::string::npos)
      << list.error().message;
  // Read as JSON, a list at the top is not a bindings file either.
  auto as_list = parse_bindings(json_list, "f", BindingsFormat::Json);
  ASSERT_FALSE(as_list.has_value());
  EXPECT_NE(as_list.error().message.find("f:1: the top level is a list: a JSON bindings file is {\"bindings\": [...]}"),
            std::string::npos)
      << as_list.error().message;
  EXPECT_EQ(parse_bindings_format("toml").value(), BindingsFormat::Toml);
  EXPECT_EQ(parse_bindings_format("json").value(), BindingsFormat::Json);
  EXPECT_FALSE(parse_bindings_format("yaml").has_value());
}

struct BadFile {
  std::string name, text, expected;
};
void PrintTo(const BadFile& bad, std::ostream* os) { *os << bad.name; }
class BindingsFileRefuses : public ::testing::TestWithParam<BadFile> {};
TEST_P(BindingsFileRefuses, NamingTheEntryAndTheKey) {
  auto bindings = parse_bindings(GetParam().text, "f");
  ASSERT_FALSE(bindings.has_value());
  EXPECT_EQ(bindings.error().code, EINVAL);
  EXPECT_NE(bindings.error().message.find(GetParam().expected), std::string::npos)
      << bindings.error().message;
}

constexpr const char* kEntry = "label = \"web\"\nprotocol = \"tcp\"\nprefix = \"10.0.0.0/8\"\n";
std::string toml_entry(const std::string& extra) {
  return std::string("[[binding]]\n") + kEntry + extra;
}
std::string json_entry(const std::string& ports) {
  return R"({"bindings": [
  {"label": "web", "protocol": "tcp", "prefix": "10.0.0.0/8", "ports": "80"},
  {"label": "web", "protocol": "tcp", "prefix": "10.0.0.0/8", "ports": )" + ports + "}\n]}";
}

INSTANTIATE_TEST_SUITE_P(
    StrictTypesAndKeys, BindingsFileRefuses,
    ::testing::Values(
        // TOML: ports = true bound port 1, 80.0 was taken as 80.
        BadFile{"toml_ports_true", toml_entry("ports = true\n"),
                "f:5: binding #1: ports is a boolean: it must be an integer 0..65535"},
        BadFile{"toml_ports_float", toml_entry("ports = 80.0\n"), "f:5: binding #1: ports is a float"},
        BadFile{"toml_ports_negative", toml_entry("ports = -1\n"), "ports = -1 is out of range"},
        BadFile{"toml_ports_65536", toml_entry("ports = 65536\n"), "ports = 65536 is out of range"},
        BadFile{"toml_ports_array", toml_entry("ports = [80]\n"), "ports is an array"},
        BadFile{"toml_label_integer", "[[binding]]\nlabel = 7\n", "f:2: binding #1: label is an integer: it must be a string"},
        BadFile{"toml_protocol_bool", "[[binding]]\nprotocol = true\n", "protocol is a boolean: it must be a string"},
        BadFile{"toml_prefix_table", "[[binding]]\nprefix = { a = 1 }\n", "prefix is a table"},
        BadFile{"toml_unknown_entry_key", toml_entry("port = 80\n"),
                "f:5: binding #1: unknown key 'port': a binding has label, protocol, prefix and ports"},
        BadFile{"toml_unknown_top_key", "bindings = []\n", "f:1: unknown key 'bindings'"},
        BadFile{"toml_unknown_table", toml_entry("ports = 80\n") + "[extra]\n", "unknown key 'extra'"},
        BadFile{"toml_binding_table", "[binding]\nlabel = \"web\"\n", "'binding' is a table: write each binding as a [[binding]] table"},
        BadFile{"toml_binding_not_tables", "binding = [1]\n", "f:1: binding #1: is an integer, not a table"},
        BadFile{"toml_second_entry", toml_entry("ports = 80\n") + "\n" + toml_entry("ports = \"x\"\n"),
                "f:7: binding #2: 'x': ports are N"},
        BadFile{"toml_bad_label", "[[binding]]\nlabel = \"we\\u001bb\"\nprotocol = \"tcp\"\nprefix = \"10.0.0.0/8\"\nports = 80\n",
                "f:1: binding #1: label contains a control character (0x1b) at byte 3"},
        BadFile{"toml_mapped_prefix", "[[binding]]\nlabel = \"a\"\nprotocol = \"tcp\"\nprefix = \"::ffff:10.0.0.0/104\"\nports = 80\n",
                "write 10.0.0.0/8"},
        // JSON: the same rules, with lines.
        BadFile{"json_ports_true", json_entry("true"), "f: binding #2: \"ports\" is a boolean: it must be an integer 0..65535"},
        BadFile{"json_ports_float", json_entry("80.0"), "\"ports\" is a number with a fraction or exponent"},
        BadFile{"json_ports_exponent", json_entry("8e1"), "\"ports\" is a number with a fraction"},
        BadFile{"json_ports_negative", json_entry("-1"), "\"ports\": -1 is out of range"},
        BadFile{"json_ports_65536", json_entry("65536"), "\"ports\": 65536 is out of range"},
        BadFile{"json_ports_huge", json_entry("18446744073709551615"), "\"ports\": 18446744073709551615 is out of range"},
        BadFile{"json_ports_null", json_entry("null"), "\"ports\" is null"},
        BadFile{"json_ports_object", json_entry("{\"a\": 1}"), "\"ports\" is an object"},
        BadFile{"json_label_number", R"({"bindings": [{"label": 5}]})", "binding #1: \"label\" is a number: it must be a string (line 1)"},
        BadFile{"json_unknown_entry_key", "{\"bindings\": [{\"label\": \"web\",\n \"port\": 80}]}",
                "f: binding #1: unknown key \"port\": a binding has label, protocol, prefix and ports (line 2)"},
        BadFile{"json_unknown_top_key", "{\"bindings\": [],\n\"comment\": \"x\"}", "f:2: unknown key \"comment\": the top level has only \"bindings\""},
        BadFile{"json_bindings_object", R"({"bindings": {}})", "\"bindings\" is an object: it must be a list of objects"},
        BadFile{"json_entry_not_object", R"({"bindings": [{"label": "a", "protocol": "tcp", "prefix": "10.0.0.0/8", "ports": 1}, 7]})",
                "binding #2: is a number, not an object with label, protocol, prefix and ports (line 1)"},
        BadFile{"json_missing_field", R"({"bindings": [{"label": "a", "protocol": "tcp", "prefix": "10.0.0.0/8"}]})", "binding #1: missing \"ports\" (line 1)"},
        BadFile{"json_trailing_garbage", R"({"bindings": []} x)", "f: not valid JSON"},
        // Duplicate keys: the last one silently won, {"bindings": [...], "bindings": []}
        // removed every binding.
        BadFile{"json_duplicate_top", "{\"bindings\": [{\"label\": \"a\", \"protocol\": \"tcp\", \"prefix\": \"10.0.0.0/8\", \"ports\": 1}],\n \"bindings\": []}",
                "f:2: duplicate key \"bindings\" (first on line 1): keep one"},
        BadFile{"json_duplicate_in_entry", "{\"bindings\": [\n {\"label\": \"a\", \"protocol\": \"tcp\",\n  \"label\": \"b\", \"prefix\": \"10.0.0.0/8\", \"ports\": 1}]}",
                "f: binding #1: duplicate key \"label\" (first on line 2): keep one (line 3)"},
        BadFile{"json_duplicate_in_second_entry", "{\"bindings\": [{\"label\": \"a\", \"protocol\": \"tcp\", \"prefix\": \"10.0.0.0/8\", \"ports\": 1},\n {\"ports\": 2, \"ports\": 2}]}",
                "binding #2: duplicate key \"ports\" (first on line 2): keep one (line 2)"},
        BadFile{"json_bad_label", R"({"bindings": [{"label": "bad\u001b[2J", "protocol": "tcp", "prefix": "10.0.0.0/8", "ports": 1}]})",
                "binding #1: label contains a control character (0x1b) at byte 4"}),
    [](const ::testing::TestParamInfo<BadFile>& info) { return info.param.name; });

TEST_F(BindingsFile, JsonEntriesAreCheckedWhateverTheirLayout) {
  auto bindings = parse_bindings(R"(
{
  "bindings": [
    {
      "ports": 0,
      "prefix": "2001:db8::/64",
      "protocol": "udp",
      "label": "dns"
    },
    {"label": "web", "protocol": "tcp", "prefix": "192.0.2.0/24", "ports": "8000-8999"}
  ]
}
)", "f");
  ASSERT_TRUE(bindings.has_value()) << bindings.error().message;
  ASSERT_EQ(bindings->size(), 2u);
  EXPECT_EQ((*bindings)[0].to_string(), "dns udp 2001:db8::/64 0");
  EXPECT_EQ((*bindings)[1].to_string(), "web tcp 192.0.2.0/24 8000-8999");
}

}  // namespace
}  // namespace steer::core
