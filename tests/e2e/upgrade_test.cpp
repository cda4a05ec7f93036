// State survives releases: state pinned by the previous release (built from its commit in
// RELEASES) is upgraded in place by this steer, under a client loop that must see no refused
// connection, with every binding, label and registered socket kept.
#include <poll.h>
#include <sys/socket.h>

#include <atomic>
#include <fstream>
#include <set>
#include <thread>

#include <nlohmann/json.hpp>

#include "abi/steer_abi.h"
#include "base/socket.h"
#include "support/kernel_test.h"
#include "support/process.h"

namespace steer::testing {
namespace {

// The previous release's binary, built (once per build directory) by scripts/build-release.
std::string previous_release_binary(const std::string& version) {
  auto built = run_command({std::string(STEER_SOURCE_DIR) + "/scripts/build-release", version,
                            STEER_RELEASES_DIR});
  if (built.exit_code != 0)
    throw std::runtime_error("scripts/build-release " + version + " failed: " + built.err);
  std::string path = built.out.substr(0, built.out.find('\n'));
  return path;
}

// Runs two different steer binaries (the previous release's and this one), so it builds its
// command lines itself instead of using run_steer, which runs this build's steer only.
class Upgrade : public KernelTest {
 protected:
  CommandResult run(const std::string& binary, std::vector<std::string> args,
                    const std::vector<PassedFd>& fds = {}) {
    args.insert(args.begin(), {binary, "--bpffs", bpffs()});
    return run_command(args, fds);
  }
  nlohmann::json json(const std::string& binary, std::vector<std::string> args) {
    args.insert(args.begin(), "--json");
    auto result = run(binary, args);
    EXPECT_EQ(result.exit_code, 0) << result.err << result.out;
    return nlohmann::json::parse(result.out);
  }
  // (label, protocol, prefix, ports) of every binding `steer --json bindings` lists.
  std::set<std::string> binding_set(const std::string& binary) {
    std::set<std::string> result;
    auto listed = json(binary, {"bindings"});  // held: a range-for over a temporary's member dangles
    for (const auto& b : listed.at("bindings")) result.insert(b.dump());
    return result;
  }
  // (label, cookie) of every registered socket.
  std::set<std::pair<std::string, uint64_t>> socket_set(const std::string& binary) {
    std::set<std::pair<std::string, uint64_t>> result;
    auto status = json(binary, {"status"});
    for (const auto& d : status.at("destinations"))
      for (const auto& s : d.at("sockets"))
        result.insert({d.at("label").get<std::string>(), s.at("cookie").get<uint64_t>()});
    return result;
  }
};

TEST_F(Upgrade, FromPreviousReleaseKeepsEverythingAndRefusesNothing) {
  const std::string previous = previous_release_binary("0.1.0");
  const std::string current = steer_binary();

  // The previous release loads and fills the state: two labels, TCP and UDP, a v4 listener
  // held by this test, bindings of several kinds.
  ASSERT_EQ(run(previous, {"load"}).exit_code, 0);
  STEER_ASSERT_OK_AND_ASSIGN(auto listener, listen_tcp(SocketAddress::ipv4_loopback(0),
                                                       {.backlog = 4096}));
  STEER_ASSERT_OK_AND_ASSIGN(auto udp, bind_udp(SocketAddress::ipv4_loopback(0)));
  for (auto words : std::vector<std::vector<std::string>>{
           {"bind", "web", "tcp", "127.0.0.0/24", "80"},
           {"bind", "web", "tcp", "127.0.0.0/24", "8000-8999"},
           {"bind", "web", "tcp", "127.0.1.7/32", "0"},
           {"bind", "dns", "udp", "127.0.0.0/16", "53"},
           {"bind", "gone", "tcp", "127.0.2.0/24", "80"},
           {"unbind", "gone", "tcp", "127.0.2.0/24", "80"}})
    ASSERT_EQ(run(previous, words).exit_code, 0) << words[1];
  auto registered = run(previous, {"register", "web", "--fd", "3"}, {{listener.get(), 3}});
  ASSERT_EQ(registered.exit_code, 0) << registered.err;
  registered = run(previous, {"register", "dns", "--fd", "3"}, {{udp.get(), 3}});
  ASSERT_EQ(registered.exit_code, 0) << registered.err;
  auto bindings_before = binding_set(previous);
  auto sockets_before = socket_set(previous);
  ASSERT_EQ(bindings_before.size(), 4u);
  ASSERT_EQ(sockets_before.size(), 2u);

  // This release refuses to work on the old schema until upgraded, and says how.
  auto refused = run(current, {"bind", "web", "tcp", "127.0.0.0/24", "81"});
  EXPECT_NE(refused.exit_code, 0);
  EXPECT_NE(refused.err.find("steer upgrade"), std::string::npos) << refused.err;

  auto target = *SocketAddress::parse("127.0.0.9:80");
  std::atomic<bool> done{false};
  std::atomic<int> connects{0}, failures{0};
  std::thread client([&] {
    while (!done || connects < 500) {
      auto fd = connect_tcp(target);
      ++connects;
      if (!fd) { ++failures; continue; }
      linger reset{.l_onoff = 1, .l_linger = 0};
      ::setsockopt(fd->get(), SOL_SOCKET, SO_LINGER, &reset, sizeof(reset));
      pollfd ready{listener.get(), POLLIN, 0};
      if (::poll(&ready, 1, 2000) == 1) (void)accept_now(listener.get());
    }
  });
  auto upgraded = run(current, {"upgrade"});
  done = true;
  client.join();
  ASSERT_EQ(upgraded.exit_code, 0) << upgraded.err << upgraded.out;
  EXPECT_NE(upgraded.out.find("schema 1 to 2"), std::string::npos) << upgraded.out;
  // ... and on to schema 3 (the per-port masks), before the new program is swapped in: the
  // client loop above would see refusals if the program ran on empty masks.
  EXPECT_NE(upgraded.out.find("schema 2 to 3"), std::string::npos) << upgraded.out;
  EXPECT_EQ(failures, 0) << "of " << connects << " connects during the upgrade";

  auto status = json(current, {"status"});
  EXPECT_EQ(status.at("schema"), STEER_SCHEMA_VERSION);
  EXPECT_EQ(status.at("attached"), true);
  EXPECT_EQ(status.at("repair_pending"), false);
  EXPECT_EQ(binding_set(current), bindings_before);
  EXPECT_EQ(socket_set(current), sockets_before);
  // 0.1.0 had no generations: its sockets are generation 1, active, so a plain register
  // joins them.
  for (const auto& d : status.at("destinations"))
    for (const auto& socket : d.at("sockets")) {
      EXPECT_EQ(socket.at("generation"), 1);
      EXPECT_EQ(socket.at("state"), "active");
    }
  // 0.1.0 never freed the label of an unbound binding; the migration does.
  for (const auto& d : status.at("destinations")) EXPECT_NE(d.at("label"), "gone");

  // And the upgraded state is fully usable: change it, steer through it.
  ASSERT_EQ(run(current, {"bind", "web", "tcp", "127.0.3.0/24", "80"}).exit_code, 0);
  auto fd = connect_tcp(*SocketAddress::parse("127.0.3.3:80"));
  EXPECT_TRUE(fd.has_value()) << (fd ? "" : fd.error().message);
  ASSERT_EQ(run(current, {"unbind", "web", "tcp", "127.0.3.0/24", "80"}).exit_code, 0);
  // Upgrading again is a no-op that keeps everything.
  ASSERT_EQ(run(current, {"upgrade"}).exit_code, 0);
  EXPECT_EQ(binding_set(current), bindings_before);
}

}  // namespace
}  // namespace steer::testing
