// Issue 7: policies, weights, drain and generations, through the CLI as a user runs them,
// with real TCP connections in a fresh namespace. Bounds are exact where the policy is
// (round-robin, first, drain) and wide where it is random, so nothing can flake.
#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <map>

#include <nlohmann/json.hpp>

#include "base/socket.h"
#include "support/kernel_test.h"
#include "support/listeners.h"
#include "support/steer_cli.h"
#include "support/steer_test.h"

namespace steer::testing {
namespace {

constexpr int kNoListener = Listeners::kNoListener;
constexpr int kRefused = Listeners::kRefused;

class Policies : public SteerTest {
 protected:
  void SetUp() override {
    SteerTest::SetUp();
    ASSERT_EQ(run({"load"}).exit_code, 0);
    ASSERT_EQ(run({"bind", "web", "tcp", "127.0.0.0/24", "80"}).exit_code, 0);
  }
  // A listener on 127.0.0.1 (or `at`), kept by the test.
  int listener(const std::string& at = "127.0.0.1:0") { return listeners_.listen(at); }
  // `steer register web --fd 3 --fd 4 ...` with these listeners, and extra words.
  void register_listeners(const std::vector<int>& fds, std::vector<std::string> extra = {}) {
    std::vector<std::string> args{"register", "web"};
    std::vector<PassedFd> passed;
    for (int fd : fds) {
      int at = 3 + static_cast<int>(passed.size());
      passed.push_back({fd, at});
      args.insert(args.end(), {"--fd", std::to_string(at)});
    }
    args.insert(args.end(), extra.begin(), extra.end());
    run_ok(args, passed);
  }
  uint64_t cookie(int fd) { return *socket_cookie(fd); }

  int connect_once(const std::string& to, const std::string& source_ip = "",
                   uint16_t source_port = 0) {
    return listeners_.connect_once(to, source_ip, source_port);
  }
  std::map<int, int> spread(int count, const std::string& to = "127.0.0.1:80") {
    return listeners_.spread(count, to);
  }
  // A socket of web as status lists it.
  nlohmann::json listed(int fd) {
    auto status = json({"status", "web"});
    for (const auto& destination : status.at("destinations"))
      for (const auto& socket : destination.at("sockets"))
        if (socket.at("cookie").get<uint64_t>() == cookie(fd)) return socket;
    ADD_FAILURE() << "status does not list cookie " << cookie(fd);
    return {};
  }

  Listeners listeners_;
};

// Round-robin is exact: N sockets of equal weight over k*N connections get exactly k each;
// with weights 2:1:1 over 40 connections, exactly 20, 10 and 10.
TEST_F(Policies, RoundRobinIsExactAndHonoursWeights) {
  int a = listener(), b = listener(), c = listener();
  register_listeners({a, b, c});
  run_ok({"policy", "web", "round-robin"});
  EXPECT_EQ(json({"status", "web"}).at("destinations").at(0).at("policy"), "round-robin");
  EXPECT_EQ(spread(30), (std::map<int, int>{{0, 10}, {1, 10}, {2, 10}}));
  run_ok({"weight", "web", "--cookie", std::to_string(cookie(a)), "2"});
  EXPECT_EQ(spread(40), (std::map<int, int>{{0, 20}, {1, 10}, {2, 10}}));
}

// first: everything to the first registered socket; the next one only when the first is
// drained or closed; back to the first when it is undrained.
TEST_F(Policies, FirstFailsOverInRegistrationOrder) {
  int a = listener(), b = listener(), c = listener();
  register_listeners({a});
  register_listeners({b, c});
  run_ok({"policy", "web", "first"});
  EXPECT_EQ(spread(20), (std::map<int, int>{{0, 20}}));
  run_ok({"drain", "web", "--cookie", std::to_string(cookie(a))});
  EXPECT_EQ(spread(20), (std::map<int, int>{{1, 20}}));
  listeners_.close(1);  // b closes
  EXPECT_EQ(spread(20), (std::map<int, int>{{2, 20}}));
  run_ok({"undrain", "web", "--cookie", std::to_string(cookie(a))});
  EXPECT_EQ(spread(20), (std::map<int, int>{{0, 20}}));
}

// random: shares follow weights (3:1 over 400 connections: bounds many deviations wide);
// a standby (weight 0) gets nothing while a weighted socket is there.
TEST_F(Policies, RandomFollowsWeightsAndStandbyWaits) {
  int a = listener(), b = listener(), c = listener();
  register_listeners({a, b, c});
  run_ok({"policy", "web", "random"});
  run_ok({"weight", "web", "--cookie", std::to_string(cookie(a)), "3"});
  run_ok({"weight", "web", "--cookie", std::to_string(cookie(c)), "0"});
  EXPECT_EQ(listed(c).at("state"), "standby");
  auto taken = spread(400);
  EXPECT_EQ(taken[0] + taken[1], 400) << "every connection reached a weighted socket";
  EXPECT_EQ(taken[2], 0) << "the standby took connections while weighted sockets were there";
  EXPECT_GT(taken[0], 240);  // expected 300 (binomial sd ~9)
  EXPECT_LT(taken[0], 360);
}

// least-queue: a worker that stops accepting stops getting connections at once. A and B
// accept everything at once; C never accepts: once one connection waits in C's queue, no
// other reaches it.
TEST_F(Policies, LeastQueueAvoidsAWorkerThatStoppedAccepting) {
  int a = listener(), b = listener(), stalled = listener();
  register_listeners({a, b, stalled});
  run_ok({"policy", "web", "least-queue"});
  auto to = *SocketAddress::parse("127.0.0.1:80");
  std::vector<Fd> clients;
  for (int i = 0; i < 40; ++i) {
    auto client = connect_tcp(to);
    ASSERT_TRUE(client) << client.error().message;
    clients.push_back(std::move(*client));
    accept_all(a);  // A and B serve at once; the stalled one does not
    accept_all(b);
  }
  EXPECT_LE(accept_all(stalled), 1) << "connections reached the worker that stopped accepting";
  EXPECT_EQ(listed(stalled).at("state"), "active");
}

// A standby takes every connection once no weighted socket is left, under every policy.
TEST_F(Policies, StandbyTakesOverWhenTheWeightedSocketsClose) {
  int a = listener(), standby = listener();
  register_listeners({a, standby});
  run_ok({"weight", "web", "--cookie", std::to_string(cookie(standby)), "0"});
  for (const char* policy : {"hash", "round-robin", "random", "first", "least-queue"}) {
    run_ok({"policy", "web", policy});
    EXPECT_EQ(spread(10), (std::map<int, int>{{0, 10}})) << policy;
  }
  listeners_.close(0);
  for (const char* policy : {"hash", "round-robin", "random", "first", "least-queue"}) {
    run_ok({"policy", "web", policy});
    EXPECT_EQ(spread(10), (std::map<int, int>{{1, 10}})) << policy;
  }
}

// hash: a flow keeps its socket; a fifth socket joining moves about a fifth of the flows.
TEST_F(Policies, HashKeepsFlowsAndMovesAboutOneNthWhenASocketJoins) {
  std::vector<int> fds;
  for (int i = 0; i < 4; ++i) fds.push_back(listener());
  register_listeners(fds);
  auto socket_of_each_flow = [&] {
    std::vector<int> chosen;
    for (int flow = 0; flow < 200; ++flow)
      chosen.push_back(connect_once("127.0.0.1:80", fmt::format("127.0.1.{}", 1 + flow), 40000));
    return chosen;
  };
  auto first = socket_of_each_flow();
  EXPECT_EQ(socket_of_each_flow(), first) << "the same flows reached other sockets";
  std::map<int, int> shares;
  for (int socket : first) shares[socket] += 1;
  EXPECT_EQ(shares.size(), 4u);
  for (const auto& [socket, flows] : shares) EXPECT_GE(socket, 0) << flows << " flows lost";
  register_listeners({listener()});
  auto after = socket_of_each_flow();
  int to_the_new_one = 0, between_old_ones = 0;
  for (size_t i = 0; i < first.size(); ++i) {
    if (after[i] == first[i]) continue;
    (after[i] == 4 ? to_the_new_one : between_old_ones) += 1;
  }
  EXPECT_GT(to_the_new_one, 200 / 5 / 3);  // expected 40
  EXPECT_LT(to_the_new_one, 200 / 5 * 2);
  EXPECT_LT(between_old_ones, 200 / 10) << "Maglev moves few flows between the old sockets";
}

// A draining socket gets no new connection from any path, not even when it is the only one
// left: the connection is refused rather than sent there. It stays listed, and undrain
// brings it back.
TEST_F(Policies, DrainedSocketGetsNothingEvenAsTheLastOne) {
  int a = listener(), b = listener();
  register_listeners({a, b});
  run_ok({"drain", "web", "--cookie", std::to_string(cookie(a))});
  EXPECT_EQ(listed(a).at("state"), "draining");
  for (const char* policy : {"hash", "round-robin", "random", "first", "least-queue"}) {
    run_ok({"policy", "web", policy});
    EXPECT_EQ(spread(20), (std::map<int, int>{{1, 20}})) << policy;
  }
  listeners_.close(1);  // the only active socket closes
  EXPECT_EQ(spread(10), (std::map<int, int>{{kRefused, 10}}));
  run_ok({"undrain", "web", "--all"});
  EXPECT_EQ(listed(a).at("state"), "active");
  EXPECT_EQ(spread(10), (std::map<int, int>{{0, 10}}));
}

// Generations: a plain register joins the running generation; promote makes the new one
// active and drains the others in every pool of the label (IPv4 and IPv6) in one step.
TEST_F(Policies, PromoteSwitchesEveryPoolOfTheLabel) {
  run_ok({"bind", "web", "tcp", "::1/128", "80"});
  int old4 = listener(), old6 = listener("[::1]:0");
  register_listeners({old4, old6});
  int joined = listener();
  register_listeners({joined});
  EXPECT_EQ(listed(joined).at("generation"), 1) << "a plain register joins the running one";
  int new4 = listener(), new6 = listener("[::1]:0");
  register_listeners({new4, new6}, {"--generation", "2"});
  EXPECT_EQ(listed(new4).at("generation"), 2);

  auto promoted = json({"promote", "web", "2"});
  EXPECT_EQ(promoted.at("active"), 2) << "new4 in the IPv4 pool, new6 in the IPv6 pool";
  EXPECT_EQ(promoted.at("draining"), 3);
  for (int fd : {old4, old6, joined}) EXPECT_EQ(listed(fd).at("state"), "draining");
  for (int fd : {new4, new6}) EXPECT_EQ(listed(fd).at("state"), "active");
  for (const auto& [socket, count] : spread(40)) EXPECT_EQ(socket, 3);
  for (const auto& [socket, count] : spread(40, "[::1]:80")) EXPECT_EQ(socket, 4);

  // Back to 1 (a rollback), and a register after it joins generation 2, the newest.
  run_ok({"promote", "web", "1"});
  for (const auto& [socket, count] : spread(40)) EXPECT_TRUE(socket == 0 || socket == 2) << socket;
  auto missing = run({"promote", "web", "7"});
  EXPECT_NE(missing.exit_code, 0);
  EXPECT_NE(missing.err.find("no socket of generation 7 (it has generations 1, 2)"),
            std::string::npos) << missing.err;
}

// Bad input: each refused with the fix, and nothing changes.
TEST_F(Policies, BadInputIsRefusedAndChangesNothing) {
  int a = listener();
  register_listeners({a});
  auto before = json({"status"});
  struct Case {
    std::vector<std::string> args;
    std::string message;
  };
  const Case cases[] = {
      {{"policy", "web", "fastest"}, "unknown policy 'fastest': use one of hash, round-robin"},
      {{"policy", "nobody", "hash"}, "no label 'nobody'"},
      {{"weight", "web", "--all", "1001"}, "weight 1001 is too large"},
      {{"weight", "web", "2"}, "say which sockets"},
      {{"drain", "web"}, "say which sockets"},
      {{"drain", "web", "--pid", "1"}, "has no registered socket owned by pid 1"},
      {{"drain", "web", "--generation", "3"}, "has no registered socket of generation 3"},
      {{"promote", "web", "2"}, "has no socket of generation 2 (it has generation 1)"},
      {{"register", "web", "--fd", "3", "--generation", "0"}, "--generation"},
  };
  for (const auto& c : cases) {
    auto result = run(c.args, {{a, 3}});
    EXPECT_NE(result.exit_code, 0) << shell_words(c.args);
    EXPECT_NE(result.err.find(c.message), std::string::npos)
        << shell_words(c.args) << ": " << result.err;
  }
  EXPECT_EQ(json({"status"}), before);
}

}  // namespace
}  // namespace steer::testing
