// Issue 7: least-conn and `steer conns`. A sockops program attached to a test cgroup (never
// the root) counts each registered listener's established connections as they open and
// close; least-conn picks the listener with the fewest, status shows them (ESTAB), and
// `steer conns list` lists them. The listeners are created by a process inside the cgroup.
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <map>
#include <thread>

#include <nlohmann/json.hpp>

#include "base/socket.h"
#include "bpf/map.h"
#include "support/cgroup.h"
#include "support/kernel_test.h"
#include "support/steer_cli.h"
#include "support/steer_test.h"

namespace steer::testing {
namespace {

class Conns : public SteerTest {
 protected:
  void SetUp() override {
    SteerTest::SetUp();
    auto cgroup = TestCgroup::create("steer-conns-test");
    ASSERT_TRUE(cgroup) << cgroup.error().message;
    cgroup_.emplace(std::move(*cgroup));
    auto maker = SocketMakerInCgroup::start(*cgroup_);
    ASSERT_TRUE(maker) << maker.error().message;
    maker_.emplace(std::move(*maker));
    ASSERT_EQ(run({"load"}).exit_code, 0);
  }
  void TearDown() override {
    maker_.reset();  // before the cgroup: its process must have left it
    listeners_.clear();
    cgroup_.reset();
    SteerTest::TearDown();
  }
  // A listener on 127.0.0.1, created in the cgroup (so its children are counted).
  int listener() {
    auto fd = maker_->make_socket(AF_INET, SOCK_STREAM);
    EXPECT_TRUE(fd) << fd.error().message;
    auto address = SocketAddress::ipv4_loopback(0);
    EXPECT_EQ(::bind(fd->get(), address.data(), address.size()), 0);
    EXPECT_EQ(::listen(fd->get(), 1024), 0);
    listeners_.push_back(std::move(*fd));
    accepted_.emplace_back();
    return listeners_.back().get();
  }
  void register_listeners() {
    std::vector<std::string> args{"register", "web"};
    std::vector<PassedFd> passed;
    for (const auto& fd : listeners_) {
      int at = 3 + static_cast<int>(passed.size());
      passed.push_back({fd.get(), at});
      args.insert(args.end(), {"--fd", std::to_string(at)});
    }
    run_ok(args, passed);
  }
  // Opens one connection to web's binding and keeps both ends; which listener took it.
  int open_connection() {
    auto to = *SocketAddress::parse("127.0.0.1:80");
    Fd client(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (::connect(client.get(), to.data(), to.size()) != 0) return -1;
    std::vector<pollfd> ready;
    for (const auto& fd : listeners_) ready.push_back({fd.get(), POLLIN, 0});
    if (::poll(ready.data(), ready.size(), 2000) <= 0) return -1;
    for (size_t i = 0; i < ready.size(); ++i) {
      if (!(ready[i].revents & POLLIN)) continue;
      Fd server = accept_now(ready[i].fd);
      if (!server) continue;
      accepted_[i].push_back({std::move(client), std::move(server)});
      return static_cast<int>(i);
    }
    return -1;
  }
  std::map<int, int> open_connections(int count) {
    std::map<int, int> taken;
    for (int i = 0; i < count; ++i) taken[open_connection()] += 1;
    return taken;
  }
  // Closes `count` of listener i's connections, with a reset (no TIME_WAIT).
  void close_connections(size_t i, int count) {
    for (int n = 0; n < count; ++n) {
      linger reset{.l_onoff = 1, .l_linger = 0};
      ::setsockopt(accepted_[i].back().second.get(), SOL_SOCKET, SO_LINGER, &reset, sizeof(reset));
      accepted_[i].pop_back();
    }
  }
  // ESTAB of each registered socket, in registration order.
  std::vector<int64_t> established() {
    std::vector<int64_t> counts;
    auto status = json({"status", "web"});
    for (const auto& fd : listeners_) {
      uint64_t cookie = *socket_cookie(fd.get());
      for (const auto& socket : status.at("destinations").at(0).at("sockets"))
        if (socket.at("cookie") == cookie) counts.push_back(socket.at("established"));
    }
    return counts;
  }
  bool eventually_established(const std::vector<int64_t>& expected) {
    for (int attempt = 0; attempt < 200; ++attempt) {
      if (established() == expected) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return false;
  }

  std::optional<TestCgroup> cgroup_;
  std::optional<SocketMakerInCgroup> maker_;
  std::vector<Fd> listeners_;
  std::vector<std::vector<std::pair<Fd, Fd>>> accepted_;  // per listener: (client, server)
};

// least-conn follows the connections really open: 30 kept open over 3 listeners are 10
// each, exactly; when 6 of the first one's close, the next 6 all go to it.
TEST_F(Conns, LeastConnFollowsRealOpenConnections) {
  for (int i = 0; i < 3; ++i) listener();
  run_ok({"conns", "track", "--cgroup", cgroup_->path()});
  register_listeners();
  run_ok({"bind", "web", "tcp", "127.0.0.0/24", "80"});
  run_ok({"policy", "web", "least-conn"});
  EXPECT_EQ(open_connections(30), (std::map<int, int>{{0, 10}, {1, 10}, {2, 10}}));
  EXPECT_EQ(established(), (std::vector<int64_t>{10, 10, 10}));

  close_connections(0, 6);
  ASSERT_TRUE(eventually_established({4, 10, 10})) << json({"status", "web"}).dump();
  EXPECT_EQ(open_connections(6), (std::map<int, int>{{0, 6}}));
  EXPECT_EQ(established(), (std::vector<int64_t>{10, 10, 10}));
}

// `steer conns list` lists each connection with the pool socket that accepted it, and the
// established SOCKHASH holds the same sockets.
TEST_F(Conns, ListShowsEachConnectionAndItsListener) {
  int a = listener(), b = listener();
  // Registered before track, by their owner's pid: track takes them from it to tag them.
  run_ok({"register-pid", std::to_string(::getpid()), "web", "tcp"});
  run_ok({"conns", "track", "--cgroup", cgroup_->path()});
  run_ok({"bind", "web", "tcp", "127.0.0.0/24", "80"});
  run_ok({"policy", "web", "round-robin"});
  EXPECT_EQ(open_connections(4), (std::map<int, int>{{0, 2}, {1, 2}}));
  auto listed = json({"conns", "list", "web"});
  ASSERT_EQ(listed.at("connections").size(), 4u) << listed.dump();
  std::map<uint64_t, int> per_listener;
  for (const auto& connection : listed.at("connections")) {
    EXPECT_EQ(connection.at("label"), "web");
    EXPECT_EQ(connection.at("local").get<std::string>().rfind("127.0.0.1:80", 0), 0u);
    per_listener[connection.at("listener_cookie")] += 1;
  }
  EXPECT_EQ(per_listener, (std::map<uint64_t, int>{{*socket_cookie(a), 2}, {*socket_cookie(b), 2}}));
  // The SOCKHASH of established sockets, read straight from its pin.
  auto status = json({"status"});
  STEER_ASSERT_OK_AND_ASSIGN(auto sockhash,
                             bpf::Map::open_pinned(status.at("path").get<std::string>() + "/established"));
  size_t entries = 0;
  uint64_t key = 0, next = 0;
  for (bool first = true; sockhash.next_key(first ? nullptr : &key, &next); first = false) {
    key = next;
    ++entries;
  }
  EXPECT_EQ(entries, 4u);
  accepted_.clear();  // every connection closes: the list empties
  for (int attempt = 0; attempt < 200 && !json({"conns", "list"}).at("connections").empty(); ++attempt)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  EXPECT_EQ(json({"conns", "list"}).at("connections").size(), 0u);
}

// Tracking is shown, refused twice with the fix, and removed by untrack; a directory that
// is no cgroup is refused by name.
TEST_F(Conns, TrackUntrackAndBadInput) {
  EXPECT_TRUE(json({"status"}).at("tracking").is_null());
  auto missing = run({"conns", "track", "--cgroup", "/nonexistent/cgroup"});
  EXPECT_EQ(missing.exit_code, 1);
  EXPECT_NE(missing.err.find("/nonexistent/cgroup"), std::string::npos) << missing.err;
  run_ok({"conns", "track", "--cgroup", cgroup_->path()});
  auto tracking = json({"status"}).at("tracking");
  EXPECT_EQ(tracking.at("cgroup"), cgroup_->path());
  auto twice = run({"conns", "track", "--cgroup", cgroup_->path()});
  EXPECT_EQ(twice.exit_code, 1);
  EXPECT_NE(twice.err.find("untrack"), std::string::npos) << twice.err;
  run_ok({"conns", "untrack"});
  EXPECT_TRUE(json({"status"}).at("tracking").is_null());
  auto again = run({"conns", "untrack"});
  EXPECT_EQ(again.exit_code, 1);
}

}  // namespace
}  // namespace steer::testing
