// Bad input, end to end through the steer CLI (issue 3): every case must fail with a non-zero
// exit, a message that names the problem, and no change to steer's state.
//
// Each case runs in a fresh network namespace with a private bpffs where steer is loaded, with
// a baseline to compare against: `web tcp 127.0.0.0/8 8080` bound, and a listener on
// 127.0.0.1:8080 registered in web's pool and kept open by a helper process.
#include <bpf/bpf.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sched.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <ostream>
#include <string>
#include <thread>
#include <vector>

#include "abi/steer_abi.h"
#include "base/netns.h"
#include "support/kernel_test.h"
#include "support/steer_cli.h"

extern char** environ;

namespace steer::testing {
namespace {

constexpr uint16_t kBaselinePort = 8080;
constexpr int kPassedFd = 5;  // where a case's socket or file reaches steer: `--fd 5`

// What one case runs: a SteerCall whose bpffs is empty for the test's (loaded) bpffs.
using Invocation = SteerCall;

class BadInputBase;
using Arrange = std::function<Invocation(BadInputBase&)>;

struct BadInputCase {
  std::string name;
  Arrange arrange;                    // may change state first (before the snapshot)
  std::vector<std::string> expected;  // each must appear in the error message
  std::string json_code;              // non-empty: run with --json, expect this error code
};

void PrintTo(const BadInputCase& c, std::ostream* os) { *os << c.name; }

// The words only: `steer ARGS...` on the loaded bpffs.
Arrange words(std::vector<std::string> args) {
  return [args](BadInputBase&) { return Invocation{.args = args}; };
}

// Throws rather than ASSERTs: arrange steps return a value.
Fd must(Result<Fd> fd, const char* what) {
  if (!fd) throw std::runtime_error(std::string(what) + ": " + fd.error().message);
  return std::move(*fd);
}

class BadInputBase : public KernelTest {
 protected:
  void SetUp() override {
    KernelTest::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    char dir[] = "/tmp/steer-badinput-XXXXXX";
    ASSERT_NE(::mkdtemp(dir), nullptr);
    temp_dir_ = dir;

    auto loaded = steer({"load"});
    ASSERT_EQ(loaded.exit_code, 0) << loaded.err;
    auto bound = steer({"bind", "web", "tcp", "127.0.0.0/8", std::to_string(kBaselinePort)});
    ASSERT_EQ(bound.exit_code, 0) << bound.err;
    STEER_ASSERT_OK_AND_ASSIGN(Fd listener,
                               listen_tcp(SocketAddress::ipv4_loopback(kBaselinePort)));
    baseline_holder_ = &hold_in_process({{listener.get(), 3}});
    auto registered = steer({"register-pid", std::to_string(baseline_holder_->pid()), "web"});
    ASSERT_EQ(registered.exit_code, 0) << registered.err;
    // The baseline is what it should be: one binding, one socket in web's pool.
    auto status = steer_json({.bpffs = bpffs(), .args = {"status"}});
    ASSERT_EQ(status.at("binding_count"), 1);
    ASSERT_EQ(status.at("destinations").size(), 1u);
    ASSERT_EQ(status.at("destinations")[0].at("sockets").size(), 1u);
  }

  void TearDown() override {
    holders_.clear();
    kept_fds_.clear();
    unloaded_bpffs_.reset();
    if (!temp_dir_.empty()) std::filesystem::remove_all(temp_dir_);
    KernelTest::TearDown();
  }

 public:
  CommandResult steer(const std::vector<std::string>& args, const std::vector<PassedFd>& fds = {}) {
    return run_steer(bpffs(), args, fds);
  }

  // Keeps `fd` open until the end of the test; returns its number.
  int keep(Fd fd) {
    kept_fds_.push_back(std::move(fd));
    return kept_fds_.back().get();
  }

  // A new TCP listener on 127.0.0.1 (a port no binding covers), kept open; its fd number.
  int listener() { return keep(must(listen_tcp(SocketAddress::ipv4_loopback(0)), "listen")); }

  // A `sleep` that holds `fds` (a socket stays registered while some process has it open).
  FdHolder& hold_in_process(const std::vector<PassedFd>& fds) {
    holders_.push_back(
        std::make_unique<FdHolder>(std::vector<std::string>{"sleep", "100000"}, fds));
    return *holders_.back();
  }

  pid_t baseline_pid() const { return baseline_holder_->pid(); }

  std::string write_file(const std::string& name, const std::string& content) {
    std::string path = temp_dir_ + "/" + name;
    std::ofstream(path) << content;
    return path;
  }

  // A second private bpffs where nothing is loaded.
  const std::string& unloaded_bpffs() {
    if (!unloaded_bpffs_) {
      auto mount = BpffsMount::create_temporary();
      if (!mount) throw std::runtime_error(mount.error().message);
      unloaded_bpffs_.emplace(std::move(*mount));
    }
    return unloaded_bpffs_->path();
  }

  // The pinned meta map of the loaded state, to play a steer of another version.
  void set_schema_version(uint32_t version) {
    auto inode = current_netns_inode();
    ASSERT_TRUE(inode.has_value());
    std::string path = bpffs() + "/steer/" + std::to_string(*inode) + "/meta";
    Fd meta(bpf_obj_get(path.c_str()));
    ASSERT_TRUE(meta) << "bpf_obj_get " << path << ": " << std::strerror(errno);
    uint32_t zero = 0;
    steer_meta value{};
    ASSERT_EQ(bpf_map_lookup_elem(meta.get(), &zero, &value), 0);
    value.schema_version = version;
    ASSERT_EQ(bpf_map_update_elem(meta.get(), &zero, &value, BPF_ANY), 0);
  }

 private:
  std::string temp_dir_;
  std::vector<Fd> kept_fds_;
  std::vector<std::unique_ptr<FdHolder>> holders_;
  FdHolder* baseline_holder_ = nullptr;
  std::optional<BpffsMount> unloaded_bpffs_;
};

// ---- sockets and processes the cases hand to steer ---------------------------------------

// `register web --fd 5` with `fd` at 5.
Invocation register_fd(int fd, const std::string& label = "web") {
  return Invocation{.args = {"register", label, "--fd", std::to_string(kPassedFd)},
                    .fds = {{fd, kPassedFd}}};
}

// A listening TCP socket created in a brand-new network namespace (on a thread, so the test
// itself never leaves its namespace).
Fd listener_in_another_netns() {
  Fd socket;
  std::string error;
  std::thread([&] {
    if (::unshare(CLONE_NEWNET) != 0) {
      error = std::strerror(errno);
      return;
    }
    auto fd = listen_tcp(SocketAddress::ipv4(INADDR_ANY, 0));
    if (fd)
      socket = std::move(*fd);
    else
      error = fd.error().message;
  }).join();
  if (!socket) throw std::runtime_error("listener in another netns: " + error);
  return socket;
}

// The pid of a process that has exited (and been reaped).
pid_t dead_pid() {
  pid_t pid = 0;
  char* argv[] = {const_cast<char*>("true"), nullptr};
  if (::posix_spawnp(&pid, "true", nullptr, nullptr, argv, environ) != 0)
    throw std::runtime_error("cannot start true");
  int status = 0;
  ::waitpid(pid, &status, 0);
  return pid;
}

// `load-bindings FILE` with `content` written to FILE.
Arrange load_bindings(std::string name, std::string content) {
  return [name, content](BadInputBase& t) {
    return Invocation{.args = {"load-bindings", t.write_file(name, content)}};
  };
}

constexpr const char* kGoodToml =
    "[[binding]]\nlabel = \"web\"\nprotocol = \"tcp\"\nprefix = \"10.0.0.0/8\"\nports = \"80\"\n";

Invocation on_unloaded(BadInputBase& t, std::vector<std::string> args) {
  return Invocation{.bpffs = t.unloaded_bpffs(), .args = std::move(args)};
}

// Bindings files: the new set that must not replace the baseline.
constexpr const char* kTomlWithOneBadLine = R"(# three good bindings and one bad: none applies
[[binding]]
label = "api"
protocol = "tcp"
prefix = "198.51.100.0/24"
ports = "443"

[[binding]]
label = "api"
protocol = "udp"
prefix = "10.0.0.1/8"
ports = "53"

[[binding]]
label = "web"
protocol = "tcp"
prefix = "127.0.0.0/8"
ports = "8080"

[[binding]]
label = "web"
protocol = "tcp"
prefix = "2001:db8::/64"
ports = "0"
)";

constexpr const char* kJsonWithOneBadEntry = R"({"bindings": [
  {"label": "api", "protocol": "tcp", "prefix": "198.51.100.0/24", "ports": "443"},
  {"label": "api", "protocol": "tcp", "prefix": "198.51.100.0/24", "ports": "500-400"},
  {"label": "web", "protocol": "tcp", "prefix": "127.0.0.0/8", "ports": 8080}
]})";

std::vector<BadInputCase> bad_input_cases() {
  std::string long_label(256, 'x');
  return {
      // -- prefixes
      {"prefix_octet_300",
       words({"bind", "web", "tcp", "300.1.2.3/24", "80"}),
       {"'300.1.2.3/24' is not an IPv4 or IPv6 address"}},
      {"prefix_v4_length_33",
       words({"bind", "web", "tcp", "1.2.3.4/33", "80"}),
       {"'1.2.3.4/33'", "prefix length must be 0 to 32"}},
      {"prefix_v6_length_129",
       words({"bind", "web", "tcp", "2001:db8::/129", "80"}),
       {"'2001:db8::/129'", "prefix length must be 0 to 128"}},
      {"prefix_not_an_address",
       words({"bind", "web", "tcp", "abc", "80"}),
       {"'abc' is not an IPv4 or IPv6 address"}},
      {"prefix_v4_host_bits_set",
       words({"bind", "web", "tcp", "192.0.2.7/24", "80"}),
       {"'192.0.2.7/24' has host bits set", "did you mean 192.0.2.0/24?"}},
      {"prefix_v6_host_bits_set",
       words({"bind", "web", "tcp", "2001:db8::1/64", "80"}),
       {"host bits set", "did you mean 2001:db8::/64?"}},
      // -- ports
      {"port_65536",
       words({"bind", "web", "tcp", "192.0.2.0/24", "65536"}),
       {"'65536'", "1-65535"}},
      {"port_range_end_65536",
       words({"bind", "web", "tcp", "192.0.2.0/24", "80-65536"}),
       {"'80-65536'", "N <= M <= 65535"}},
      {"port_range_reversed",
       words({"bind", "web", "tcp", "192.0.2.0/24", "90-80"}),
       {"'90-80'", "reversed", "write 80-90"}},
      {"port_not_a_number",
       words({"bind", "web", "tcp", "192.0.2.0/24", "abc"}),
       {"'abc': ports are N (1-65535), N-M, or 0 for all ports"}},
      {"port_range_from_0",
       words({"bind", "web", "tcp", "192.0.2.0/24", "0-10"}),
       {"'0-10'", "1 <= N <= M"}},
      // -- protocol and labels
      {"protocol_sctp",
       words({"bind", "web", "sctp", "192.0.2.0/24", "80"}),
       {"unknown protocol 'sctp'", "use tcp or udp"}},
      {"label_256_bytes",
       words({"bind", long_label, "tcp", "192.0.2.0/24", "80"}),
       {"label is 256 bytes long; the limit is 255"}},
      {"label_empty",
       words({"bind", "", "tcp", "192.0.2.0/24", "80"}),
       {"a label cannot be empty"}},
      {"label_with_nul_in_json_file",
       load_bindings("nul.json", R"({"bindings": [
            {"label": "we\u0000b", "protocol": "tcp", "prefix": "192.0.2.0/24", "ports": "80"}]})"),
       {"binding #1", "cannot contain a NUL byte"}},
      {"label_256_bytes_register",
       [long_label](BadInputBase& t) { return register_fd(t.listener(), long_label); },
       {"label is 256 bytes long"}},
      // -- what register accepts
      {"register_regular_file",
       [](BadInputBase& t) {
         return register_fd(t.keep(Fd(::open("/etc/hostname", O_RDONLY | O_CLOEXEC))));
       },
       {"fd 5 is not a socket"}},
      {"register_unix_socket",
       [](BadInputBase& t) {
         int pair[2];
         if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair) != 0)
           throw std::runtime_error("socketpair");
         t.keep(Fd(pair[1]));
         return register_fd(t.keep(Fd(pair[0])));
       },
       {"fd 5 is not an IPv4 or IPv6 socket (family unix)"}},
      {"register_unbound_tcp",
       [](BadInputBase& t) {
         return register_fd(t.keep(must(make_socket(AF_INET, SOCK_STREAM), "socket")));
       },
       {"is unbound, not listening"}},
      {"register_bound_tcp_not_listening",
       [](BadInputBase& t) {
         return register_fd(
             t.keep(must(bind_socket(SOCK_STREAM, SocketAddress::ipv4_loopback(0)), "bind")));
       },
       {"is bound, not listening"}},
      {"register_connected_tcp",
       [](BadInputBase& t) {
         int listener = t.listener();
         auto address = local_address(listener);
         if (!address) throw std::runtime_error(address.error().message);
         return register_fd(t.keep(must(connect_tcp(*address), "connect")));
       },
       {"is connected, not listening"}},
      {"register_unbound_udp",
       [](BadInputBase& t) {
         return register_fd(t.keep(must(make_socket(AF_INET, SOCK_DGRAM), "socket")));
       },
       {"fd 5 (udp", "is not bound"}},
      {"register_connected_udp",
       [](BadInputBase& t) {
         int udp = t.keep(must(bind_udp(SocketAddress::ipv4_loopback(0)), "bind"));
         auto peer = SocketAddress::ipv4_loopback(9);
         if (::connect(udp, peer.data(), peer.size()) != 0) throw std::runtime_error("connect");
         return register_fd(udp);
       },
       {"is connected: a connected UDP socket only receives from its peer"}},
      {"register_socket_of_another_netns",
       [](BadInputBase& t) { return register_fd(t.keep(listener_in_another_netns())); },
       {"lives in network namespace", "--netns"}},
      {"register_fd_not_open", words({"register", "web", "--fd", "9"}), {"fd 9 is not open"}},
      // -- several sockets: one bad one and none is registered, the good one included
      {"register_good_and_unbound_fds",
       [](BadInputBase& t) {
         return Invocation{
             .args = {"register", "web", "--fd", std::to_string(kPassedFd), "--fd",
                      std::to_string(kPassedFd + 1)},
             .fds = {{t.listener(), kPassedFd},
                     {t.keep(must(make_socket(AF_INET, SOCK_STREAM), "socket")), kPassedFd + 1}}};
       },
       {"fd 6", "not listening"}},
      {"register_without_listen_fds",
       words({"register", "web"}),
       {"no sockets were passed: LISTEN_FDS is not set"}},
      // -- register-pid
      {"register_pid_dead",
       [](BadInputBase&) {
         return Invocation{.args = {"register-pid", std::to_string(dead_pid()), "web"}};
       },
       {"no process", "it may have exited"}},
      {"register_pid_without_sockets",
       [](BadInputBase& t) {
         return Invocation{
             .args = {"register-pid", std::to_string(t.hold_in_process({}).pid()), "web"}};
       },
       {"has no listening TCP or unconnected UDP socket"}},
      {"register_pid_address_matches_nothing",
       [](BadInputBase& t) {
         return Invocation{.args = {"register-pid", std::to_string(t.baseline_pid()), "web",
                                    "tcp", "127.0.0.1:1"}};
       },
       {"has no listening TCP or unconnected UDP socket matching tcp 127.0.0.1:1"}},
      {"register_pid_not_a_number", words({"register-pid", "abc", "web"}), {"PID", "abc"}},
      // -- a full pool: 64 sockets fill it, the 65th is refused and the 64 stay
      {"register_into_full_pool",
       [](BadInputBase& t) {
         std::vector<PassedFd> sockets;
         for (int i = 0; i < STEER_POOL_SLOTS; ++i) sockets.push_back({t.listener(), 3 + i});
         auto filled =
             t.steer({"register-pid", std::to_string(t.hold_in_process(sockets).pid()), "pool"});
         EXPECT_EQ(filled.exit_code, 0) << filled.err;
         auto status = nlohmann::json::parse(t.steer({"--json", "status", "pool"}).out);
         EXPECT_EQ(status.at("destinations").at(0).at("sockets").size(), size_t{STEER_POOL_SLOTS});
         return register_fd(t.listener(), "pool");
       },
       {"the pool of 'pool' (tcp IPv4) is full: 64 sockets"}},
      // -- a process with more listeners than a pool holds: all or nothing, none registered
      {"register_pid_more_sockets_than_a_pool",
       [](BadInputBase& t) {
         std::vector<PassedFd> sockets;
         for (int i = 0; i <= STEER_POOL_SLOTS; ++i) sockets.push_back({t.listener(), 3 + i});
         return Invocation{
             .args = {"register-pid", std::to_string(t.hold_in_process(sockets).pid()), "web"}};
       },
       {"the pool of 'web' (tcp IPv4) is full: 64 sockets"}},
      // -- load, and verbs before load
      {"second_load", words({"load"}), {"already loaded", "steer unload"}},
      {"before_load_status",
       [](BadInputBase& t) { return on_unloaded(t, {"status"}); },
       {"steer is not loaded", "run `steer load` first"}},
      {"before_load_bindings",
       [](BadInputBase& t) { return on_unloaded(t, {"bindings"}); },
       {"steer is not loaded"}},
      {"before_load_bind",
       [](BadInputBase& t) {
         return on_unloaded(t, {"bind", "web", "tcp", "192.0.2.0/24", "80"});
       },
       {"steer is not loaded"}},
      {"before_load_unbind",
       [](BadInputBase& t) {
         return on_unloaded(t, {"unbind", "web", "tcp", "127.0.0.0/8", "8080"});
       },
       {"steer is not loaded"}},
      {"before_load_register",
       [](BadInputBase& t) {
         auto invocation = register_fd(t.listener());
         invocation.bpffs = t.unloaded_bpffs();
         return invocation;
       },
       {"steer is not loaded"}},
      {"before_load_register_pid",
       [](BadInputBase& t) {
         return on_unloaded(t, {"register-pid", std::to_string(t.baseline_pid()), "web"});
       },
       {"steer is not loaded"}},
      {"before_load_unregister",
       [](BadInputBase& t) {
         return on_unloaded(t, {"unregister", "web", "--all"});
       },
       {"steer is not loaded"}},
      {"before_load_explain",
       [](BadInputBase& t) {
         return on_unloaded(t, {"explain", "tcp", "10.0.0.1:5000", "127.0.0.1:8080"});
       },
       {"steer is not loaded"}},
      {"before_load_upgrade",
       [](BadInputBase& t) { return on_unloaded(t, {"upgrade"}); },
       {"steer is not loaded"}},
      {"before_load_unload",
       [](BadInputBase& t) { return on_unloaded(t, {"unload"}); },
       {"steer is not loaded"}},
      {"before_load_load_bindings",
       [](BadInputBase& t) {
         return on_unloaded(t, {"load-bindings", t.write_file("good.toml", kGoodToml)});
       },
       {"steer is not loaded"}},
      // -- bindings files: all or nothing
      {"bindings_file_toml_one_bad_line",
       load_bindings("bad.toml", kTomlWithOneBadLine),
       {"bad.toml:8: binding #2", "'10.0.0.1/8' has host bits set"}},
      {"bindings_file_json_one_bad_entry",
       load_bindings("bad.json", kJsonWithOneBadEntry),
       {"bad.json: binding #2", "reversed"}},
      {"bindings_file_missing",
       words({"load-bindings", "/nonexistent/bindings.toml"}),
       {"/nonexistent/bindings.toml", "No such file or directory"}},
      {"bindings_file_toml_syntax_error",
       load_bindings("syntax.toml",
                     "[[binding]]\nlabel = \"web\"\n"
                     "protocol = \"tcp\nprefix = \"10.0.0.0/8\"\n"),
       {"syntax.toml:3:", "not valid TOML"}},
      {"bindings_file_json_missing_field",
       load_bindings("missing.json", R"({"bindings": [
            {"label": "web", "protocol": "tcp", "prefix": "10.0.0.0/8"}]})"),
       {"binding #1: missing \"ports\""}},
      {"bindings_file_json_syntax_error",
       load_bindings("broken.json", R"({"bindings": [)"),
       {"broken.json: not valid JSON"}},
      {"bindings_file_ranges_overlap",
       load_bindings("overlap.json", R"({"bindings": [
            {"label": "web", "protocol": "tcp", "prefix": "10.0.0.0/8", "ports": "8000-8999"},
            {"label": "api", "protocol": "tcp", "prefix": "10.0.0.0/8", "ports": "8500-9499"}]})"),
       {"overlap without one containing the other"}},
      {"bindings_file_duplicate",
       load_bindings("twice.json", R"({"bindings": [
            {"label": "web", "protocol": "tcp", "prefix": "10.0.0.0/8", "ports": "80"},
            {"label": "api", "protocol": "tcp", "prefix": "10.0.0.0/8", "ports": "80"}]})"),
       {"bind the same protocol, prefix and ports"}},
      // -- bind and unbind against what is bound
      {"bind_partially_overlapping_range",
       [](BadInputBase& t) {
         auto first = t.steer({"bind", "web", "tcp", "10.0.0.0/8", "8000-8999"});
         EXPECT_EQ(first.exit_code, 0) << first.err;
         return Invocation{.args = {"bind", "web", "tcp", "10.0.0.0/8", "8500-9499"}};
       },
       {"ports 8500-9499 overlap the bound range 8000-8999"}},
      {"bind_partially_overlapping_range_new_label",
       [](BadInputBase& t) {
         auto first = t.steer({"bind", "web", "tcp", "10.0.0.0/8", "8000-8999"});
         EXPECT_EQ(first.exit_code, 0) << first.err;
         return Invocation{.args = {"bind", "api", "tcp", "10.0.0.0/8", "8500-9499"}};
       },
       {"ports 8500-9499 overlap the bound range 8000-8999"}},
      {"bind_taken_by_another_label",
       words({"bind", "api", "tcp", "127.0.0.0/8", "8080"}),
       {"tcp 127.0.0.0/8 8080 is bound to label 'web' already"}},
      {"unbind_missing",
       words({"unbind", "web", "tcp", "127.0.0.0/8", "9999"}),
       {"no binding 'web tcp 127.0.0.0/8 9999'"}},
      {"unbind_of_another_label",
       words({"unbind", "api", "tcp", "127.0.0.0/8", "8080"}),
       {"no binding 'api tcp 127.0.0.0/8 8080'"}},
      // -- unregister, explain, status
      {"unregister_unknown_label", words({"unregister", "nosuch", "--all"}), {"no label 'nosuch'"}},
      {"unregister_without_selector",
       words({"unregister", "web"}),
       {"say which sockets: --cookie C, --pid P, --generation G (any of them together), or --all"}},
      {"unregister_unknown_cookie",
       words({"unregister", "web", "--cookie", "1"}),
       {"label 'web' has no registered socket with cookie 1"}},
      {"unregister_two_selectors",
       words({"unregister", "web", "--pid", "1", "--all"}),
       {"--pid", "excludes"}},
      {"explain_mixed_families",
       words({"explain", "tcp", "10.0.0.1:5000", "[::1]:8080"}),
       {"are of different families"}},
      {"explain_address_without_port",
       words({"explain", "tcp", "10.0.0.1", "127.0.0.1:8080"}),
       {"'10.0.0.1': write ADDRESS:PORT"}},
      {"status_unknown_label", words({"status", "nosuch"}), {"no label 'nosuch'"}},
      // -- --netns and the command line
      {"netns_regular_file",
       words({"--netns", "/etc/hostname", "status"}),
       {"/etc/hostname is not a namespace file"}},
      {"netns_missing",
       words({"--netns", "/nonexistent/netns", "status"}),
       {"open network namespace /nonexistent/netns", "No such file or directory"}},
      {"netns_of_another_kind",
       words({"--netns", "/proc/self/ns/uts", "status"}),
       {"not a network namespace"}},
      {"unknown_verb", words({"frobnicate"}), {"unknown verb 'frobnicate'"}},
      {"bind_missing_arguments", words({"bind", "web", "tcp"}), {"PREFIX is required"}},
      {"explain_missing_arguments", words({"explain", "tcp"}), {"is required"}},
      // -- --json: {"error": {"code", "message"}} on stdout
      {"json_host_bits_set",
       words({"bind", "web", "tcp", "192.0.2.7/24", "80"}),
       {"did you mean 192.0.2.0/24?"},
       "EINVAL"},
      {"json_before_load",
       [](BadInputBase& t) { return on_unloaded(t, {"status"}); },
       {"steer is not loaded"},
       "ENOENT"},
      {"json_bind_taken",
       words({"bind", "api", "tcp", "127.0.0.0/8", "8080"}),
       {"is bound to label 'web' already"},
       "EEXIST"},
      {"json_register_other_netns",
       [](BadInputBase& t) { return register_fd(t.keep(listener_in_another_netns())); },
       {"lives in network namespace"},
       "EXDEV"},
  };
}

class BadInput : public BadInputBase, public ::testing::WithParamInterface<BadInputCase> {};

// Issue 3, bad input: non-zero exit, a message naming the problem, state unchanged.
TEST_P(BadInput, FailsClearlyAndChangesNothing) {
  const auto& bad = GetParam();
  SteerCall call = bad.arrange(*this);
  ASSERT_FALSE(HasFailure()) << "arranging the case failed";
  bool other_bpffs = !call.bpffs.empty();
  if (!other_bpffs) call.bpffs = bpffs();
  std::string before = state_snapshot(bpffs());
  std::string other_before = other_bpffs ? state_snapshot(call.bpffs) : "";

  call.json = !bad.json_code.empty();
  auto result = run_steer(call);

  EXPECT_NE(result.exit_code, 0) << "stdout: " << result.out << "\nstderr: " << result.err;
  if (bad.json_code.empty()) {
    for (const auto& expected : bad.expected)
      EXPECT_NE(result.err.find(expected), std::string::npos)
          << "expected \"" << expected << "\" in stderr: " << result.err;
  } else {
    nlohmann::json error;
    ASSERT_NO_THROW(error = nlohmann::json::parse(result.out).at("error")) << result.out;
    EXPECT_EQ(error.at("code"), bad.json_code) << result.out;
    for (const auto& expected : bad.expected)
      EXPECT_NE(error.at("message").get<std::string>().find(expected), std::string::npos)
          << "expected \"" << expected << "\" in " << result.out;
  }
  EXPECT_EQ(state_snapshot(bpffs()), before);
  if (other_bpffs) {
    EXPECT_EQ(state_snapshot(call.bpffs), other_before);
  }
}

INSTANTIATE_TEST_SUITE_P(, BadInput, ::testing::ValuesIn(bad_input_cases()),
                         [](const ::testing::TestParamInfo<BadInputCase>& info) {
                           return info.param.name;
                         });

using BadInputSnapshot = BadInputBase;

// The snapshot the cases compare does see changes: a good bind, a registration, an unbind.
TEST_F(BadInputSnapshot, SeesEveryKindOfChange) {
  std::string baseline = state_snapshot(bpffs());
  auto bound = steer({"bind", "api", "tcp", "10.0.0.0/8", "8000-8999"});
  ASSERT_EQ(bound.exit_code, 0) << bound.err;
  std::string with_binding = state_snapshot(bpffs());
  EXPECT_NE(with_binding, baseline);
  auto registered = register_fd(listener(), "api");
  registered.bpffs = bpffs();
  auto result = run_steer(registered);  // the test keeps the socket open
  ASSERT_EQ(result.exit_code, 0) << result.err;
  EXPECT_NE(state_snapshot(bpffs()), with_binding);
  auto unbound = steer({"unbind", "web", "tcp", "127.0.0.0/8", "8080"});
  ASSERT_EQ(unbound.exit_code, 0) << unbound.err;
  EXPECT_EQ(state_snapshot(bpffs()).find("\"127.0.0.0/8\""), std::string::npos);
}

// ---- state written by an incompatible steer -----------------------------------------------

struct VerbCase {
  std::string name;
  Arrange arrange;
  std::string expected;
};

void PrintTo(const VerbCase& c, std::ostream* os) { *os << c.name; }

std::vector<VerbCase> incompatible_state_cases() {
  constexpr const char* kRefusal = "schema 999";
  return {
      {"status", words({"status"}), kRefusal},
      {"bindings", words({"bindings"}), kRefusal},
      {"bind", words({"bind", "web", "tcp", "10.0.0.0/8", "80"}), kRefusal},
      {"unbind", words({"unbind", "web", "tcp", "127.0.0.0/8", "8080"}), kRefusal},
      {"load_bindings", load_bindings("good.toml", kGoodToml), kRefusal},
      {"register", [](BadInputBase& t) { return register_fd(t.listener()); }, kRefusal},
      {"register_pid",
       [](BadInputBase& t) {
         return Invocation{.args = {"register-pid", std::to_string(t.baseline_pid()), "web"}};
       },
       kRefusal},
      {"unregister", words({"unregister", "web", "--all"}), kRefusal},
      {"explain", words({"explain", "tcp", "10.0.0.1:5000", "127.0.0.1:8080"}), kRefusal},
      {"upgrade", words({"upgrade"}), kRefusal},
      {"load", words({"load"}), "already loaded"},
  };
}

class BadInputIncompatibleState : public BadInputBase,
                                  public ::testing::WithParamInterface<VerbCase> {};

// Issue 3: a steer of another version refuses the state and says what to do (unload, load).
TEST_P(BadInputIncompatibleState, RefusesAndSaysWhatToDo) {
  SteerCall call = GetParam().arrange(*this);
  ASSERT_FALSE(HasFailure());
  ASSERT_TRUE(call.bpffs.empty()) << "every case runs on the test's loaded bpffs";
  call.bpffs = bpffs();
  std::string before = state_snapshot(bpffs());
  set_schema_version(999);
  ASSERT_FALSE(HasFailure());
  auto result = run_steer(call);
  EXPECT_NE(result.exit_code, 0) << result.out << result.err;
  EXPECT_NE(result.err.find(GetParam().expected), std::string::npos) << result.err;
  EXPECT_NE(result.err.find("steer unload"), std::string::npos) << result.err;
  // Put the version back: everything else must be as it was.
  set_schema_version(STEER_SCHEMA_VERSION);
  EXPECT_EQ(state_snapshot(bpffs()), before);
}

INSTANTIATE_TEST_SUITE_P(, BadInputIncompatibleState,
                         ::testing::ValuesIn(incompatible_state_cases()),
                         [](const ::testing::TestParamInfo<VerbCase>& info) {
                           return info.param.name;
                         });

using BadInputIncompatibleStateUnload = BadInputBase;

// Issue 3: `unload` removes state of any version, and a fresh `load` follows.
TEST_F(BadInputIncompatibleStateUnload, UnloadStillWorksAndLoadFollows) {
  set_schema_version(999);
  ASSERT_FALSE(HasFailure());
  auto json = steer({"--json", "status"});
  EXPECT_NE(json.exit_code, 0);
  EXPECT_EQ(nlohmann::json::parse(json.out).at("error").at("code"), "EPROTO") << json.out;

  auto unloaded = steer({"unload"});
  EXPECT_EQ(unloaded.exit_code, 0) << unloaded.err;
  auto status = steer({"status"});
  EXPECT_NE(status.exit_code, 0);
  EXPECT_NE(status.err.find("not loaded"), std::string::npos) << status.err;
  auto loaded = steer({"load"});
  EXPECT_EQ(loaded.exit_code, 0) << loaded.err;
  auto fresh = nlohmann::json::parse(steer({"--json", "status"}).out);
  EXPECT_EQ(fresh.at("binding_count"), 0) << fresh.dump();
}

}  // namespace
}  // namespace steer::testing
