// Issue 7: reuseport groups. Services that bind their own SO_REUSEPORT sockets keep doing
// so; `steer reuseport attach` (or `register --reuseport`) puts steer's sk_reuseport program
// on the group: the label's policy picks each new connection's socket, drained members get
// none, and a member that closes with connections queued hands them to an active member
// (BPF_SK_REUSEPORT_SELECT_OR_MIGRATE) instead of resetting them. No sk_lookup binding is
// involved unless a test says so: connections reach the group through the kernel's lookup.
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <map>
#include <memory>
#include <optional>
#include <thread>

#include <nlohmann/json.hpp>

#include "base/socket.h"
#include "probe_reuseport.skel.h"
#include "bpf/skeleton.h"
#include "support/kernel_test.h"
#include "support/listeners.h"
#include "support/steer_cli.h"
#include "support/steer_test.h"

namespace steer::testing {
namespace {

constexpr int kRefused = Listeners::kRefused;

class Reuseport : public SteerTest {
 protected:
  void SetUp() override {
    SteerTest::SetUp();
    ASSERT_EQ(run({"load"}).exit_code, 0);
    // A free port for the group: a first member on port 0, the others on the same port.
    first_ = listeners_.listen("127.0.0.1:0", /*reuseport=*/true);
    port_ = local_address(first_)->port();
  }
  std::string group_address() const { return fmt::format("127.0.0.1:{}", port_); }
  // Another member of the group, kept by the test.
  int member() { return listeners_.listen(group_address(), /*reuseport=*/true); }
  // `steer register web --fd 3 ... [extra]` for these of the test's sockets.
  void register_fds(const std::vector<int>& fds, std::vector<std::string> extra = {}) {
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
  // `steer register-pid` of this test process's members: their owner stays alive, so
  // `steer reuseport attach|detach` can reach them later.
  void register_members(std::vector<std::string> extra = {}) {
    std::vector<std::string> args{"register-pid", std::to_string(::getpid()), "web", "tcp",
                                  group_address()};
    args.insert(args.end(), extra.begin(), extra.end());
    run_ok(args);
  }
  nlohmann::json group() {
    auto groups = json({"reuseport", "show", "web"}).at("reuseport_groups");
    EXPECT_EQ(groups.size(), 1u) << groups.dump();
    return groups.empty() ? nlohmann::json{} : groups.at(0);
  }
  std::map<int, int> spread(int count) { return listeners_.spread(count, group_address()); }
  uint64_t cookie(int fd) { return *socket_cookie(fd); }

  Listeners listeners_;
  int first_ = -1;
  uint16_t port_ = 0;
};

// The group's own lookups go by the label's policy: round-robin is exact through the
// reuseport program too, and status shows the group as steer's.
TEST_F(Reuseport, RoundRobinThroughTheGroupIsExact) {
  int second = member(), third = member();
  register_fds({first_, second, third}, {"--reuseport"});
  run_ok({"policy", "web", "round-robin"});
  EXPECT_EQ(spread(30), (std::map<int, int>{{0, 10}, {1, 10}, {2, 10}}));
  auto shown = group();
  EXPECT_EQ(shown.at("steered"), true);
  EXPECT_EQ(shown.at("members"), 3);
  EXPECT_EQ(shown.at("registered"), 3);
  EXPECT_EQ(shown.at("selected"), 30);
  EXPECT_EQ(shown.at("address"), group_address());
  auto status = json({"status", "web"});
  EXPECT_EQ(status.at("reuseport_groups").size(), 1u);
}

// Without steer the kernel hashes the 4-tuple: the same 30 connections are not 10/10/10
// exactly except by chance; detaching gives the group back to that hash, and connections
// keep working.
TEST_F(Reuseport, DetachGivesTheGroupBackToTheKernelsHash) {
  int second = member();
  register_members({"--reuseport"});
  run_ok({"drain", "web", "--cookie", std::to_string(cookie(second))});
  EXPECT_EQ(spread(20), (std::map<int, int>{{0, 20}}));
  auto detached = json({"reuseport", "detach", "web"});
  ASSERT_EQ(detached.at("detached").size(), 1u) << detached.dump();
  EXPECT_EQ(detached.at("detached").at(0).at("program_id"), 0)
      << "the kernel still runs a program for the group";
  EXPECT_EQ(json({"reuseport", "show"}).at("reuseport_groups").size(), 0u);
  // The drained socket is no longer protected: the kernel's hash reaches it.
  auto taken = spread(40);
  EXPECT_EQ(taken[0] + taken[1], 40);
  EXPECT_GT(taken[1], 0);
  // And attaching again (sockets taken from their owner: this test process).
  auto attached = run({"reuseport", "attach", "web"});
  ASSERT_EQ(attached.exit_code, 0) << attached.err;
  EXPECT_EQ(group().at("steered"), true);
  EXPECT_EQ(spread(20), (std::map<int, int>{{0, 20}}));
}

// Drained members get nothing from the group's program; with every member drained, new
// connections are refused (as sk_lookup refuses them), not handed to a drained socket.
TEST_F(Reuseport, DrainedMembersGetNothingEvenAsTheLastOnes) {
  int second = member(), third = member();
  register_fds({first_, second, third}, {"--reuseport"});
  run_ok({"policy", "web", "round-robin"});
  run_ok({"drain", "web", "--cookie", std::to_string(cookie(first_))});
  EXPECT_EQ(spread(20), (std::map<int, int>{{1, 10}, {2, 10}}));
  run_ok({"drain", "web", "--all"});
  EXPECT_EQ(spread(5), (std::map<int, int>{{kRefused, 5}}));
  EXPECT_EQ(group().at("refused"), 5);
  run_ok({"undrain", "web", "--all"});
  EXPECT_EQ(spread(3), (std::map<int, int>{{0, 1}, {1, 1}, {2, 1}}));
}

// least-queue through the group: a member that stopped accepting stops getting connections
// (read from the socket map's own array: an sk_reuseport program may not look sockets up).
TEST_F(Reuseport, LeastQueueAvoidsAMemberThatStoppedAccepting) {
  int stalled = member();
  register_fds({first_, stalled}, {"--reuseport"});
  run_ok({"policy", "web", "least-queue"});
  // Only first_ accepts; what it does not get waits in the stalled member's queue.
  std::vector<Fd> clients;
  int to_stalled = 0;
  for (int i = 0; i < 40; ++i) {
    auto address = *SocketAddress::parse(group_address());
    Fd client(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    ASSERT_EQ(::connect(client.get(), address.data(), address.size()), 0);
    pollfd ready{first_, POLLIN, 0};
    if (::poll(&ready, 1, 1000) == 1 && accept_now(first_).get() >= 0) continue;
    ++to_stalled;  // queued on the member that does not accept
    clients.push_back(std::move(client));
  }
  EXPECT_LE(to_stalled, 1) << "a member with a queue kept getting connections";
}

// A member that closes with connections queued: steer's program moves them to an active
// member, and every client is answered. The same without steer's program resets them all
// (the test that this one can fail).
class ReuseportMigration : public Reuseport, public ::testing::WithParamInterface<bool> {};

TEST_P(ReuseportMigration, SigkillWithConnectionsQueuedLosesNone) {
  const bool with_steer = GetParam();
  constexpr int kQueued = 8;
  // Generation 1 lives in another process, which will be killed: only it holds the socket.
  std::optional<FdHolder> old_generation;
  old_generation.emplace(std::vector<std::string>{"sleep", "1000"},
                         std::vector<PassedFd>{{first_, 3}});
  listeners_.close(0);
  run_ok({"register-pid", std::to_string(old_generation->pid()), "web", "--reuseport"});
  // Clients whose connections wait in generation 1's accept queue.
  std::vector<Fd> clients;
  auto address = *SocketAddress::parse(group_address());
  for (int i = 0; i < kQueued; ++i) {
    Fd client(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    ASSERT_EQ(::connect(client.get(), address.data(), address.size()), 0);
    clients.push_back(std::move(client));
  }
  // Generation 2 registers and takes over; generation 1 is killed before it accepts.
  int next = member();
  register_fds({next}, {"--generation", "2"});
  run_ok({"promote", "web", "2"});
  if (!with_steer) run_ok({"reuseport", "detach", "web"});
  old_generation.reset();  // SIGKILL, reaped: its listener closed with kQueued connections

  int accepted = 0;
  for (;;) {
    pollfd ready{next, POLLIN, 0};
    if (::poll(&ready, 1, 500) != 1) break;
    Fd connection = accept_now(next);
    if (!connection) break;
    ++accepted;
    (void)!::write(connection.get(), "2", 1);
  }
  int answered = 0, reset = 0;
  for (auto& client : clients) {
    char answer = 0;
    pollfd ready{client.get(), POLLIN, 0};
    if (::poll(&ready, 1, 1000) != 1) continue;
    ssize_t got = ::read(client.get(), &answer, 1);
    if (got == 1 && answer == '2') ++answered;
    else if (got < 0 && errno == ECONNRESET) ++reset;
  }
  if (with_steer) {
    EXPECT_EQ(accepted, kQueued);
    EXPECT_EQ(answered, kQueued);
    EXPECT_EQ(reset, 0);
    auto shown = group();
    EXPECT_EQ(shown.at("migrated"), kQueued) << shown.dump();
  } else {
    EXPECT_EQ(accepted, 0) << "the kernel migrated without steer (tcp_migrate_req?)";
    EXPECT_EQ(reset, kQueued);
  }
}

// Ten restarts under clients that connect without pause, where each old generation never
// takes what is queued: it stops accepting (stuck, say) while clients' connections keep
// arriving, and closes its listener right after the promote. Its queue moves to the new
// generation each time: every request is answered, none refused or reset.
TEST_F(Reuseport, TenRestartsWhereTheOldProcessNeverDrainsLoseNothing) {
  // Each generation: a member of the group and a thread that answers with one byte.
  struct Generation {
    Fd listener;
    std::atomic<bool> stop{false};
    std::thread thread;
    explicit Generation(Fd fd) : listener(std::move(fd)) {
      thread = std::thread([this] {
        while (!stop) {
          pollfd ready{listener.get(), POLLIN, 0};
          if (::poll(&ready, 1, 5) != 1) continue;
          Fd connection = accept_now(listener.get());
          if (connection) (void)!::write(connection.get(), "k", 1);
        }
      });
    }
    void stop_accepting() {
      stop = true;
      if (thread.joinable()) thread.join();
    }
    // Closes the listener with whatever is queued.
    ~Generation() { stop_accepting(); }
  };
  auto address = *SocketAddress::parse(group_address());
  auto current = std::make_unique<Generation>(std::move(listeners_.take(0)));
  register_members({"--reuseport"});
  std::atomic<bool> done{false};
  std::atomic<int> answered{0}, failed{0};
  std::vector<std::thread> clients;
  for (int c = 0; c < 2; ++c)
    clients.emplace_back([&] {
      while (!done) {
        Fd client(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
        char answer = 0;
        if (::connect(client.get(), address.data(), address.size()) == 0 &&
            ::read(client.get(), &answer, 1) == 1)
          ++answered;
        else
          ++failed;
      }
    });
  for (int generation = 2; generation <= 11; ++generation) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    current->stop_accepting();  // the clients' next connections wait in its queue
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    auto next = listen_tcp(address, {.reuseport = true, .backlog = 1024});
    ASSERT_TRUE(next) << next.error().message;
    register_fds({next->get()}, {"--generation", std::to_string(generation)});
    auto following = std::make_unique<Generation>(std::move(*next));
    run_ok({"promote", "web", std::to_string(generation)});
    current = std::move(following);  // the old one closes, its queue untaken
  }
  int before = answered;
  for (int wait = 0; wait < 400 && answered < before + 20; ++wait)
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  done = true;
  for (auto& client : clients) client.join();
  EXPECT_EQ(failed, 0);
  EXPECT_GT(answered, 100);
  EXPECT_GE(group().at("migrated").get<int>(), 10) << "the old generations had nothing queued";
  std::cout << "[ restarts ] " << answered << " answered, " << failed << " failed, "
            << group().at("migrated") << " migrated" << std::endl;
}

INSTANTIATE_TEST_SUITE_P(Reuseport, ReuseportMigration, ::testing::Bool(),
                         [](const auto& info) { return info.param ? "steer" : "kernel_alone"; });

// A group that runs someone else's program is not taken over silently: refused with the
// program named, unless --replace. (The kernel tells which program a group runs only to a
// socket iterator: steer reads it there.)
TEST_F(Reuseport, AttachRefusesAnotherProgramUnlessReplace) {
  member();
  register_members();
  STEER_ASSERT_OK_AND_ASSIGN(auto probe,
                             bpf::Skeleton<probe_reuseport>::open_and_load("probe_reuseport"));
  int program = bpf_program__fd(probe->progs.probe_select);
  ASSERT_EQ(::setsockopt(first_, SOL_SOCKET, SO_ATTACH_REUSEPORT_EBPF, &program, sizeof(program)), 0);
  auto refused = run({"reuseport", "attach", "web"});
  EXPECT_EQ(refused.exit_code, 1);
  EXPECT_NE(refused.err.find("probe_select"), std::string::npos) << refused.err;
  EXPECT_NE(refused.err.find("--replace"), std::string::npos) << refused.err;
  EXPECT_EQ(json({"reuseport", "show"}).at("reuseport_groups").size(), 0u) << "changed nothing";
  auto replaced = run({"reuseport", "attach", "web", "--replace"});
  ASSERT_EQ(replaced.exit_code, 0) << replaced.err;
  EXPECT_EQ(group().at("steered"), true);
}

// Bad input: a socket in no group, a label that does not exist, a group steer does not
// serve. Each names the problem and changes nothing.
TEST_F(Reuseport, BadInputIsRefusedWithTheFix) {
  auto plain = listen_tcp(SocketAddress::ipv4_loopback(0));
  ASSERT_TRUE(plain);
  auto no_group = run({"register", "web", "--fd", "3", "--reuseport"}, {{plain->get(), 3}});
  EXPECT_EQ(no_group.exit_code, 1);
  EXPECT_NE(no_group.err.find("SO_REUSEPORT"), std::string::npos) << no_group.err;
  EXPECT_EQ(json({"status"}).at("destinations").size(), 0u) << "registered despite the error";

  auto no_label = run({"reuseport", "attach", "nosuch"});
  EXPECT_EQ(no_label.exit_code, 1);
  EXPECT_NE(no_label.err.find("nosuch"), std::string::npos) << no_label.err;

  register_fds({first_});
  auto not_steered = run({"reuseport", "detach", "web"});
  EXPECT_EQ(not_steered.exit_code, 1);
  EXPECT_NE(not_steered.err.find("no reuseport group"), std::string::npos) << not_steered.err;
}

// A connection sk_lookup already steered chose its socket by policy: the group's program is
// not asked again (BPF_SK_LOOKUP_F_NO_REUSEPORT), so its counters stay at zero.
TEST_F(Reuseport, SkLookupsChoiceIsNotChosenAgain) {
  int second = member();
  register_fds({first_, second}, {"--reuseport"});
  run_ok({"bind", "web", "tcp", "127.0.0.9/32", "80"});
  run_ok({"policy", "web", "round-robin"});
  EXPECT_EQ(listeners_.spread(10, "127.0.0.9:80"), (std::map<int, int>{{0, 5}, {1, 5}}));
  EXPECT_EQ(group().at("selected"), 0);
}

}  // namespace
}  // namespace steer::testing
