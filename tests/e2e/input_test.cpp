// Bad input in files, labels and output, end to end through the steer CLI (issue 6): bindings
// files that are not regular files, too large, empty, ambiguous or loosely typed; labels that
// are not printable UTF-8; IPv4-mapped prefixes; labels and command names already in pinned
// state that must still print; and steer run without root.
//
// Each test runs in a fresh network namespace with a private bpffs where steer is loaded and
// `web tcp 127.0.0.0/8 8080` is bound: a refused command must leave exactly that.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "abi/steer_abi.h"
#include "base/netns.h"
#include "bpf/map.h"
#include "core/binding.h"
#include "core/state.h"
#include "support/kernel_test.h"
#include "support/steer_cli.h"

namespace steer::testing {
namespace {

constexpr const char* kBaseline = "web tcp 127.0.0.0/8 8080";

constexpr const char* kOtherToml = R"([[binding]]
label = "api"
protocol = "tcp"
prefix = "192.0.2.0/24"
ports = "443"
)";

// True when `text` is valid UTF-8 without a control character: safe for a terminal.
bool printable_utf8(const std::string& text, bool allow_newlines = true) {
  for (size_t at = 0; at < text.size();) {
    auto step = core::decode_utf8(text, at);
    if (!step.valid) return false;
    if (!core::is_printable(step.code_point) && !(allow_newlines && step.code_point == '\n'))
      return false;
    at += step.length;
  }
  return true;
}

class InputBase : public KernelTest {
 protected:
  void SetUp() override {
    KernelTest::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    char dir[] = "/tmp/steer-input-XXXXXX";
    ASSERT_NE(::mkdtemp(dir), nullptr);
    temp_dir_ = dir;
    auto loaded = steer({"load"});
    ASSERT_EQ(loaded.exit_code, 0) << loaded.err;
    auto bound = steer({"bind", "web", "tcp", "127.0.0.0/8", "8080"});
    ASSERT_EQ(bound.exit_code, 0) << bound.err;
    ASSERT_EQ(bindings(), std::vector<std::string>{kBaseline});
  }

  void TearDown() override {
    if (!temp_dir_.empty()) std::filesystem::remove_all(temp_dir_);
    KernelTest::TearDown();
  }

  CommandResult steer(const std::vector<std::string>& args, const std::vector<PassedFd>& fds = {}) {
    return run_steer(bpffs(), args, fds);
  }

  std::string write_file(const std::string& name, const std::string& content) {
    std::string path = temp_dir_ + "/" + name;
    std::ofstream(path) << content;
    return path;
  }

  // The bound set, as "label proto prefix ports" lines (from `steer --json bindings`).
  std::vector<std::string> bindings() {
    auto listed = steer({"--json", "bindings"});
    EXPECT_EQ(listed.exit_code, 0) << listed.err;
    std::vector<std::string> out;
    auto parsed = nlohmann::json::parse(listed.out);
    for (const auto& b : parsed.at("bindings"))
      out.push_back(fmt::format("{} {} {} {}", b.at("label").get<std::string>(),
                                b.at("protocol").get<std::string>(),
                                b.at("prefix").get<std::string>(), b.at("ports").get<std::string>()));
    return out;
  }

  // Runs `args`, expects a failure whose stderr has every one of `expected`, and no change.
  void expect_refused(const std::vector<std::string>& args, const std::vector<std::string>& expected,
                      const std::vector<PassedFd>& fds = {}) {
    std::string before = state_snapshot(bpffs());
    auto result = steer(args, fds);
    EXPECT_NE(result.exit_code, 0) << "stdout: " << result.out << "\nstderr: " << result.err;
    for (const auto& text : expected)
      EXPECT_NE(result.err.find(text), std::string::npos)
          << "expected \"" << text << "\" in stderr: " << result.err;
    EXPECT_TRUE(printable_utf8(result.err)) << ::testing::PrintToString(result.err);
    EXPECT_EQ(state_snapshot(bpffs()), before);
  }

  std::string state_dir() {
    auto inode = current_netns_inode();
    if (!inode) throw std::runtime_error(inode.error().message);
    return core::state_directory(bpffs(), *inode);
  }

  std::string temp_dir_;
};

// ---- files --------------------------------------------------------------------------------

using InputFiles = InputBase;

// Issue 6, defects 1 and 2: a directory read as "no bindings" and removed them all (exit 0);
// /dev/null did the same; /dev/zero grew without bound; a FIFO blocked forever. All are refused
// by fstat before a byte is read.
TEST_F(InputFiles, NonRegularFilesAreRefusedBeforeReading) {
  std::string fifo = temp_dir_ + "/bindings.fifo";
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  std::string socket_path = temp_dir_ + "/bindings.sock";
  Fd unix_socket(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  std::strncpy(address.sun_path, socket_path.c_str(), sizeof(address.sun_path) - 1);
  ASSERT_EQ(::bind(unix_socket.get(), reinterpret_cast<sockaddr*>(&address), sizeof(address)), 0);
  struct Case {
    std::string path, kind;
  };
  for (const auto& [path, kind] : {Case{temp_dir_, "a directory"},
                                   Case{"/dev/null", "a character device"},
                                   Case{"/dev/zero", "a character device"},
                                   Case{fifo, "a FIFO"},
                                   Case{socket_path, "a socket"}}) {
    SCOPED_TRACE(path);
    expect_refused({"load-bindings", path},
                   {path + " is " + kind + ": steer reads bindings from regular files or - for "
                                           "stdin only"});
    expect_refused({"load-bindings", "--allow-empty", path}, {"regular files or - for stdin only"});
  }
}

// Issue 6, defect 2: the size is checked before reading (a sparse file: no disk used).
TEST_F(InputFiles, FilesAbove256MiBAreRefused) {
  std::string path = write_file("huge.toml", "");
  ASSERT_EQ(::truncate(path.c_str(), (off_t{256} << 20) + 1), 0);
  expect_refused({"load-bindings", path},
                 {path + " is 268435457 bytes, more than the 256 MiB steer reads: split it"});
}

// "-" reads stdin: a pipe, as from a generator.
TEST_F(InputFiles, DashReadsStdin) {
  int pipe_fds[2];
  ASSERT_EQ(::pipe2(pipe_fds, O_CLOEXEC), 0);
  Fd read_end(pipe_fds[0]), write_end(pipe_fds[1]);
  std::string json =
      R"({"bindings": [{"label": "api", "protocol": "udp", "prefix": "10.0.0.0/8", "ports": 53}]})";
  ASSERT_EQ(::write(write_end.get(), json.data(), json.size()), ssize_t(json.size()));
  write_end.reset();
  auto loaded = steer({"load-bindings", "-"}, {{read_end.get(), 0}});
  EXPECT_EQ(loaded.exit_code, 0) << loaded.err;
  EXPECT_EQ(loaded.out, "loaded 1 bindings from stdin\n");
  EXPECT_EQ(bindings(), std::vector<std::string>{"api udp 10.0.0.0/8 53"});
}

TEST_F(InputFiles, StdinThatIsADirectoryIsRefused) {
  Fd directory(::open(temp_dir_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  ASSERT_TRUE(directory);
  expect_refused({"load-bindings", "--allow-empty", "-"},
                 {"stdin is a directory: steer reads bindings from regular files or - for stdin only"},
                 {{directory.get(), 0}});
}

// Issue 6, defect 1: a file with no bindings removed every binding without a word.
TEST_F(InputFiles, AnEmptySetReplacesBindingsOnlyWithAllowEmpty) {
  for (const auto& [name, text] :
       std::vector<std::pair<std::string, std::string>>{{"empty.toml", ""},
                                                        {"blank", "  \n\n\t\n"},
                                                        {"comments.toml", "# to do\n"},
                                                        {"list.toml", "binding = []\n"},
                                                        {"empty.json", R"({"bindings": []})"}}) {
    SCOPED_TRACE(name);
    std::string path = write_file(name, text);
    expect_refused({"load-bindings", path},
                   {path + " has no bindings; 1 binding is loaded now: pass --allow-empty to "
                           "remove them all"});
    auto json = steer({"--json", "load-bindings", path});
    EXPECT_NE(json.exit_code, 0);
    EXPECT_EQ(nlohmann::json::parse(json.out).at("error").at("code"), "ENODATA") << json.out;
  }
  auto allowed = steer({"load-bindings", "--allow-empty", write_file("empty.toml", "")});
  EXPECT_EQ(allowed.exit_code, 0) << allowed.err;
  EXPECT_TRUE(bindings().empty());
  // Nothing bound: an empty file changes nothing, so it needs no flag.
  auto again = steer({"load-bindings", write_file("empty.toml", "")});
  EXPECT_EQ(again.exit_code, 0) << again.err;
}

// Issue 6, defect 1: with a duplicate key the last one silently won, so
// {"bindings": [...], "bindings": []} removed every binding.
TEST_F(InputFiles, DuplicateJsonKeysAreRefused) {
  expect_refused(
      {"load-bindings", write_file("twice.json", R"({"bindings": [
  {"label": "api", "protocol": "tcp", "prefix": "192.0.2.0/24", "ports": 443}],
"bindings": []})")},
      {"twice.json:3: duplicate key \"bindings\" (first on line 1): keep one"});
  expect_refused(
      {"load-bindings", write_file("entry.json", R"({"bindings": [
  {"label": "api", "protocol": "tcp", "prefix": "192.0.2.0/24", "ports": 443,
   "prefix": "198.51.100.0/24"}]})")},
      {"entry.json: binding #1: duplicate key \"prefix\" (first on line 2): keep one (line 3)"});
}

// Issue 6, defect 8: a TOML file not named .toml was read as JSON ("not valid JSON").
TEST_F(InputFiles, TheFormatComesFromTheContent) {
  for (const char* name : {"bindings", "bindings.json", "bindings.conf"}) {
    SCOPED_TRACE(name);
    auto loaded = steer({"load-bindings", write_file(name, std::string("# ours\n") + kOtherToml)});
    EXPECT_EQ(loaded.exit_code, 0) << loaded.err;
    EXPECT_EQ(bindings(), std::vector<std::string>{"api tcp 192.0.2.0/24 443"});
  }
  std::string toml = write_file("bindings.toml", kOtherToml);
  expect_refused({"load-bindings", "--format", "json", toml},
                 {"bindings.toml:1: the top level is a list: a JSON bindings file is"});
  expect_refused({"load-bindings", "--format", "json", write_file("b.toml", "label = 1\n")},
                 {"b.toml: not valid JSON"});
  expect_refused({"load-bindings", "--format", "yaml", toml}, {"--format", "yaml"});
  auto as_toml = steer({"load-bindings", "--format", "toml", toml});
  EXPECT_EQ(as_toml.exit_code, 0) << as_toml.err;
}

// Issue 6, defect 8: ports = true bound port 1, ports = 80.0 was taken; unknown keys (a typo
// such as "port") were ignored.
TEST_F(InputFiles, TypesAreStrictAndUnknownKeysAreRefused) {
  std::string entry = "[[binding]]\nlabel = \"api\"\nprotocol = \"tcp\"\nprefix = \"192.0.2.0/24\"\n";
  expect_refused({"load-bindings", write_file("bool.toml", entry + "ports = true\n")},
                 {"bool.toml:5: binding #1: ports is a boolean: it must be an integer 0..65535"});
  expect_refused({"load-bindings", write_file("float.toml", entry + "ports = 80.0\n")},
                 {"float.toml:5: binding #1: ports is a float"});
  expect_refused({"load-bindings", write_file("typo.toml", entry + "port = 80\n")},
                 {"typo.toml:5: binding #1: unknown key 'port'"});
  expect_refused({"load-bindings", write_file("top.toml", "[[bindings]]\nlabel = \"a\"\n")},
                 {"top.toml:1: unknown key 'bindings'"});
  expect_refused({"load-bindings", write_file("label.toml", "[[binding]]\nlabel = 5\n")},
                 {"label.toml:2: binding #1: label is an integer: it must be a string"});
  expect_refused(
      {"load-bindings",
       write_file("bool.json", R"({"bindings": [
  {"label": "api", "protocol": "tcp", "prefix": "192.0.2.0/24", "ports": true}]})")},
      {"bool.json: binding #1: \"ports\" is a boolean", "(line 2)"});
  expect_refused(
      {"load-bindings",
       write_file("typo.json", R"({"bindings": [
  {"label": "api", "protocol": "tcp", "prefix": "192.0.2.0/24", "port": 80}]})")},
      {"typo.json: binding #1: unknown key \"port\"", "(line 2)"});
}

// ---- labels and prefixes ------------------------------------------------------------------

using InputLabels = InputBase;

// Issue 6, defect 7: labels with escapes, newlines, tabs or invalid UTF-8 were accepted and
// later printed as they are.
TEST_F(InputLabels, UnprintableLabelsAreRefused) {
  struct Case {
    std::string label, expected;
  };
  for (const auto& [label, expected] :
       {Case{"bad\xff", "label is not valid UTF-8 (byte 0xff at byte 4)"},
        Case{"we\nb", "label contains a control character (0x0a) at byte 3"},
        Case{"we\tb", "label contains a control character (0x09) at byte 3"},
        Case{"\x1b[2Jweb", "label contains a control character (0x1b) at byte 1"},
        Case{"web\xc2\x9b", "label contains a control character (U+009B) at byte 4"}}) {
    SCOPED_TRACE(::testing::PrintToString(label));
    expect_refused({"bind", label, "tcp", "192.0.2.0/24", "80"},
                   {expected, "labels are 1..255 bytes of printable UTF-8"});
  }
  // In files, raw bytes like these are a syntax error already; JSON and TOML escapes are not.
  expect_refused({"load-bindings", write_file("esc.json", R"({"bindings": [
  {"label": "red\u001b[31m", "protocol": "tcp", "prefix": "192.0.2.0/24", "ports": 80}]})")},
                 {"esc.json: binding #1: label contains a control character (0x1b) at byte 4", "(line 2)"});
  expect_refused({"load-bindings", write_file("esc.toml", "[[binding]]\nlabel = \"a\\u0085\"\n"
                                                          "protocol = \"tcp\"\nprefix = \"192.0.2.0/24\"\nports = 80\n")},
                 {"esc.toml:1: binding #1: label contains a control character (U+0085) at byte 2"});
  // UTF-8 that prints is a label like any other.
  auto bound = steer({"bind", "caf\xc3\xa9", "tcp", "192.0.2.0/24", "80"});
  EXPECT_EQ(bound.exit_code, 0) << bound.err;
}

// Issue 6: a prefix inside ::ffff:0:0/96 never matches (the kernel looks those connections up
// as IPv4): refused with the IPv4 form to write instead.
TEST_F(InputLabels, Ipv4MappedPrefixesAreRefused) {
  expect_refused({"bind", "web", "tcp", "::ffff:127.0.0.0/104", "80"},
                 {"'::ffff:127.0.0.0/104' is an IPv4-mapped IPv6 prefix", "write 127.0.0.0/8"});
  expect_refused({"bind", "web", "tcp", "::ffff:192.0.2.1", "80"}, {"write 192.0.2.1/32"});
  expect_refused({"load-bindings", write_file("mapped.toml",
                                              "[[binding]]\nlabel = \"a\"\nprotocol = \"udp\"\n"
                                              "prefix = \"::ffff:10.0.0.0/104\"\nports = 53\n")},
                 {"mapped.toml:1: binding #1", "write 10.0.0.0/8"});
}

// ---- output -------------------------------------------------------------------------------

using InputOutput = InputBase;

// Issue 6, defect 11: an older steer accepted any label but NUL, so pinned state may hold one
// with invalid UTF-8 and terminal escapes. JSON output threw (type_error 316: the process
// aborted) and tables printed the escapes. Written here straight into the pinned maps.
TEST_F(InputOutput, OldLabelsThatAreNotPrintableAreShownEscaped) {
  const std::string old_label = "we\xff\x1b[31mb";
  STEER_ASSERT_OK_AND_ASSIGN(auto names, bpf::Map::open_pinned(state_dir() + "/label_names"));
  STEER_ASSERT_OK_AND_ASSIGN(auto ids, bpf::Map::open_pinned(state_dir() + "/labels"));
  uint32_t id = 0;
  steer_label_name name{};
  STEER_ASSERT_OK(names.lookup(&id, &name));
  ASSERT_STREQ(name.name, "web");  // the first label takes id 0
  steer_label_name old_key{};
  std::memcpy(old_key.name, old_label.data(), old_label.size());
  steer_label_id value{id};
  STEER_ASSERT_OK(names.update(&id, &old_key, bpf::UpdateMode::Any));
  STEER_ASSERT_OK(ids.update(&old_key, &value, bpf::UpdateMode::Any));
  STEER_ASSERT_OK(ids.erase(&name));

  for (const char* verb : {"status", "bindings"}) {
    SCOPED_TRACE(verb);
    auto json = steer({"--json", verb});
    ASSERT_EQ(json.exit_code, 0) << json.err;
    nlohmann::json parsed;
    ASSERT_NO_THROW(parsed = nlohmann::json::parse(json.out)) << json.out;
    EXPECT_NE(json.out.find("we\xef\xbf\xbd\\u001b[31mb"), std::string::npos) << json.out;

    auto text = steer({verb});
    ASSERT_EQ(text.exit_code, 0) << text.err;
    EXPECT_NE(text.out.find("we\\xff\\x1b[31mb"), std::string::npos) << text.out;
    EXPECT_TRUE(printable_utf8(text.out)) << ::testing::PrintToString(text.out);
  }
  auto explained = steer({"explain", "tcp", "10.0.0.1:5000", "127.0.0.1:8080"});
  ASSERT_EQ(explained.exit_code, 0) << explained.err;
  EXPECT_NE(explained.out.find("we\\xff\\x1b[31mb"), std::string::npos) << explained.out;
  EXPECT_TRUE(printable_utf8(explained.out)) << ::testing::PrintToString(explained.out);
  auto explained_json = steer({"--json", "explain", "tcp", "10.0.0.1:5000", "127.0.0.1:8080"});
  ASSERT_EQ(explained_json.exit_code, 0) << explained_json.err;
  EXPECT_TRUE(nlohmann::json::accept(explained_json.out)) << explained_json.out;

  // Errors quote what they were given: escaped too.
  auto unknown = steer({"status", "x\x1b[2J"});
  EXPECT_NE(unknown.exit_code, 0);
  EXPECT_NE(unknown.err.find("no label 'x\\x1b[2J'"), std::string::npos) << unknown.err;
  EXPECT_TRUE(printable_utf8(unknown.err)) << ::testing::PrintToString(unknown.err);
  auto unknown_json = steer({"--json", "status", "x\xff"});
  EXPECT_NE(unknown_json.exit_code, 0);
  EXPECT_TRUE(nlohmann::json::accept(unknown_json.out)) << unknown_json.out;
}

// Issue 6, defect 11: /proc/PID/comm is cut at 15 bytes, inside a UTF-8 character when the
// name is not ASCII: `steer --json status` aborted on the socket's command name.
TEST_F(InputOutput, CommandNamesCutInsideACharacterAreShown) {
  // "sleep" and 日本語日本語: the 15th byte is the first of the fourth character.
  std::string program = temp_dir_ + "/sleep\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e";
  ASSERT_EQ(::symlink("/bin/sleep", program.c_str()), 0);
  STEER_ASSERT_OK_AND_ASSIGN(Fd listener, listen_tcp(SocketAddress::ipv4_loopback(8080)));
  FdHolder holder({program, "100000"}, {{listener.get(), 3}});
  auto registered = steer({"register-pid", std::to_string(holder.pid()), "web"});
  ASSERT_EQ(registered.exit_code, 0) << registered.err;

  auto json = steer({"--json", "status"});
  ASSERT_EQ(json.exit_code, 0) << json.err;
  nlohmann::json parsed;
  ASSERT_NO_THROW(parsed = nlohmann::json::parse(json.out)) << json.out;
  auto command = parsed.at("destinations").at(0).at("sockets").at(0).at("command").get<std::string>();
  EXPECT_EQ(command, "sleep\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e\xef\xbf\xbd");
  auto text = steer({"status"});
  ASSERT_EQ(text.exit_code, 0) << text.err;
  EXPECT_NE(text.out.find("sleep\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e\\xe6"), std::string::npos) << text.out;
  EXPECT_TRUE(printable_utf8(text.out)) << ::testing::PrintToString(text.out);
}

// ---- without root -------------------------------------------------------------------------

using InputNonRoot = InputBase;

CommandResult as_nobody(const std::vector<std::string>& args) {
  std::vector<std::string> argv{"setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                                steer_binary()};
  argv.insert(argv.end(), args.begin(), args.end());
  return run_command(argv);
}

// Issue 6: as a non-root user every verb said only "Permission denied".
TEST_F(InputNonRoot, VerbsSayThatSteerNeedsRoot) {
  // A file nobody may read, so that what fails is steer's own access.
  ASSERT_EQ(::chmod(temp_dir_.c_str(), 0755), 0);
  std::string empty = write_file("empty.toml", "binding = []\n");
  ASSERT_EQ(::chmod(empty.c_str(), 0644), 0);
  for (const auto& args : std::vector<std::vector<std::string>>{
           {"--bpffs", bpffs(), "status"},
           {"--bpffs", bpffs(), "bind", "api", "tcp", "192.0.2.0/24", "80"},
           {"--bpffs", bpffs(), "load-bindings", "--allow-empty", empty}}) {
    SCOPED_TRACE(args.back());
    std::string before = state_snapshot(bpffs());
    auto result = as_nobody(args);
    EXPECT_EQ(result.exit_code, 1) << result.out << result.err;
    EXPECT_NE(result.err.find("steer needs root (CAP_BPF, CAP_NET_ADMIN and CAP_SYS_ADMIN): "
                              "run it with sudo"),
              std::string::npos)
        << result.err;
    EXPECT_EQ(state_snapshot(bpffs()), before);
  }
}

TEST_F(InputNonRoot, HelpAndVersionWorkWithoutRoot) {
  for (const auto& args : std::vector<std::vector<std::string>>{
           {"--help"}, {"status", "--help"}, {"load-bindings", "--help"}, {"version"},
           {"--json", "version"}}) {
    SCOPED_TRACE(args.front());
    auto result = as_nobody(args);
    EXPECT_EQ(result.exit_code, 0) << result.err;
    EXPECT_FALSE(result.out.empty());
  }
}

}  // namespace
}  // namespace steer::testing
