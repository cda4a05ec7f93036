// --netns: steer acts on another network namespace, never on the caller's.
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include "support/kernel_test.h"
#include "support/process.h"
#include "support/steer_cli.h"

extern char** environ;

namespace steer::testing {
namespace {

class OtherNetns : public KernelTest {
 protected:
  void SetUp() override {
    KernelTest::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    // A python http.server alone in a namespace of its own (B); the test stays in A.
    const char* argv[] = {"unshare", "-n", "sh", "-c",
                          "ip link set lo up && exec python3 -m http.server 8080 --bind 127.0.0.1",
                          nullptr};
    ASSERT_EQ(::posix_spawnp(&server_, "unshare", nullptr, nullptr, const_cast<char**>(argv), environ), 0);
    netns_ = fmt::format("/proc/{}/ns/net", server_);
    for (int i = 0; i < 100; ++i) {
      if (in_b({"curl", "-s", "-o", "/dev/null", "http://127.0.0.1:8080/"}).exit_code == 0) return;
      ::usleep(100 * 1000);
    }
    FAIL() << "the server in the other namespace did not start";
  }
  void TearDown() override {
    if (server_ > 0) {
      ::kill(server_, SIGKILL);
      ::waitpid(server_, nullptr, 0);
    }
    KernelTest::TearDown();
  }
  // steer acting on B (--netns), or with other=false on the caller's own namespace A.
  CommandResult steer(const std::vector<std::string>& args, bool other = true) {
    return run_steer({.bpffs = bpffs(), .netns = other ? netns_ : "", .args = args});
  }
  CommandResult in_b(std::vector<std::string> argv) {
    argv.insert(argv.begin(), {"nsenter", "--net=" + netns_});
    return run_command(argv);
  }
  pid_t server_ = -1;
  std::string netns_;
};

TEST_F(OtherNetns, SteersTheNamedNamespaceOnly) {
  auto loaded = steer({"load"});
  ASSERT_EQ(loaded.exit_code, 0) << loaded.err;
  ASSERT_EQ(steer({"bind", "web", "tcp", "127.0.0.0/8", "80"}).exit_code, 0);
  auto registered = steer({"register-pid", std::to_string(server_), "web"});
  ASSERT_EQ(registered.exit_code, 0) << registered.err;

  auto curl = in_b({"curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "http://127.0.0.9/"});
  EXPECT_EQ(curl.out, "200") << curl.err;
  // The caller's own namespace has no steer: status there says so, and nothing is steered.
  auto here = steer({"status"}, /*other=*/false);
  EXPECT_NE(here.exit_code, 0);
  EXPECT_NE(here.err.find("not loaded"), std::string::npos) << here.err;
  EXPECT_EQ(run_command({"curl", "-s", "http://127.0.0.9/"}).exit_code, 7);  // refused here

  auto status = steer({"--json", "status"});
  ASSERT_EQ(status.exit_code, 0) << status.err;
  auto json = nlohmann::json::parse(status.out);
  EXPECT_EQ(json["destinations"][0]["counters"]["selected"], 1);
  EXPECT_EQ(steer({"unload"}).exit_code, 0);
  EXPECT_NE(in_b({"curl", "-s", "http://127.0.0.9/"}).exit_code, 0) << "still steered after unload";
}

TEST_F(OtherNetns, SocketsOfTheCallersNamespaceAreRefused) {
  ASSERT_EQ(steer({"load"}).exit_code, 0);
  // A listener in namespace A offered to steer in namespace B.
  STEER_ASSERT_OK_AND_ASSIGN(Fd listener, listen_tcp(SocketAddress::ipv4_loopback(0)));
  // The child inherits the socket as fd 7.
  auto result = run_steer({.bpffs = bpffs(), .netns = netns_, .args = {"register", "web", "--fd", "7"},
                          .fds = {{listener.get(), 7}}});
  EXPECT_NE(result.exit_code, 0);
  const std::string& err = result.err;
  EXPECT_NE(err.find("network namespace"), std::string::npos) << err;
}

}  // namespace
}  // namespace steer::testing
