// Issue 7: restarts through generations lose nothing. A service restarts ten times while
// clients connect without pause: each time the new generation registers, `steer promote`
// switches to it, the old one accepts what is queued until `steer status` says its socket
// is empty, and closes. Every connection gets its answer: no refusal, no reset.
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <thread>

#include <nlohmann/json.hpp>

#include "base/socket.h"
#include "support/kernel_test.h"
#include "support/steer_cli.h"

namespace steer::testing {
namespace {

// One generation of the service: a listener and a thread that accepts and answers with the
// generation's number, until told to stop; then it closes the listener.
class Server {
 public:
  explicit Server(char generation) : generation_(generation) {
    auto fd = listen_tcp(SocketAddress::ipv4_loopback(0), {.backlog = 1024});
    if (fd) listener_ = std::move(*fd);
    thread_ = std::thread([this] { serve(); });
  }
  ~Server() { stop(); }
  int fd() const { return listener_.get(); }
  // Accepts what is still queued, then closes the listener.
  void stop() {
    stopping_ = true;
    if (thread_.joinable()) thread_.join();
    listener_ = Fd();
  }

 private:
  void serve() {
    for (;;) {
      pollfd ready{listener_.get(), POLLIN, 0};
      int events = ::poll(&ready, 1, 20);
      if (events > 0) {
        Fd connection(::accept4(listener_.get(), nullptr, nullptr, SOCK_CLOEXEC));
        if (connection) (void)!::write(connection.get(), &generation_, 1);
        continue;
      }
      if (stopping_) return;  // nothing queued any more
    }
  }
  char generation_;
  Fd listener_;
  std::atomic<bool> stopping_{false};
  std::thread thread_;
};

// Connects over and over, one connection at a time, and reads the answer.
class Client {
 public:
  Client() : thread_([this] { run(); }) {}
  ~Client() { stop(); }
  void stop() {
    done_ = true;
    if (thread_.joinable()) thread_.join();
  }
  int answered() const { return answered_; }
  int failed() const { return failed_; }
  char last_generation() const { return last_; }
  const std::string& first_failure() const { return first_failure_; }

 private:
  void run() {
    auto to = *SocketAddress::parse("127.0.0.9:80");
    while (!done_) {
      Fd client(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
      char answer = 0;
      if (::connect(client.get(), to.data(), to.size()) != 0) {
        fail(std::string("connect: ") + errno_name(errno));
        continue;
      }
      ssize_t got = ::read(client.get(), &answer, 1);
      if (got != 1) {
        fail(got == 0 ? "closed without an answer" : std::string("read: ") + errno_name(errno));
        continue;
      }
      last_ = answer;
      ++answered_;
    }
  }
  void fail(const std::string& why) {
    if (failed_++ == 0) first_failure_ = why;
  }
  std::atomic<bool> done_{false};
  std::atomic<int> answered_{0}, failed_{0};
  std::atomic<char> last_{0};
  std::string first_failure_;
  std::thread thread_;
};

class Restart : public KernelTest {
 protected:
  CommandResult run(std::vector<std::string> args, const std::vector<PassedFd>& fds = {}) {
    return run_steer(SteerCall{.bpffs = bpffs(), .args = std::move(args), .fds = fds});
  }
  // Until `steer status` shows every socket of generation `g` draining and empty.
  bool wait_until_empty(int generation) {
    for (int attempt = 0; attempt < 500; ++attempt) {
      auto status = run({"--json", "status", "web"});
      auto parsed = nlohmann::json::parse(status.out, nullptr, false);
      if (parsed.is_discarded()) return false;
      bool all_empty = true;
      for (const auto& destination : parsed.at("destinations"))
        for (const auto& socket : destination.at("sockets"))
          if (socket.at("generation") == generation)
            all_empty = all_empty && socket.at("state") == "draining" &&
                        socket.at("empty") == true;
      if (all_empty) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return false;
  }
};

TEST_F(Restart, TenRestartsUnderConstantConnectsLoseNothing) {
  ASSERT_EQ(run({"load"}).exit_code, 0);
  auto current = std::make_unique<Server>('1');
  ASSERT_EQ(run({"register", "web", "--fd", "3"}, {{current->fd(), 3}}).exit_code, 0);
  ASSERT_EQ(run({"bind", "web", "tcp", "127.0.0.0/24", "80"}).exit_code, 0);
  Client clients[2];
  for (int generation = 2; generation <= 11; ++generation) {
    auto next = std::make_unique<Server>(static_cast<char>('0' + generation % 10));
    auto registered = run({"register", "web", "--fd", "3", "--generation",
                           std::to_string(generation)}, {{next->fd(), 3}});
    ASSERT_EQ(registered.exit_code, 0) << registered.err;
    auto promoted = run({"promote", "web", std::to_string(generation)});
    ASSERT_EQ(promoted.exit_code, 0) << promoted.err;
    // The old generation takes no new connection now; what it has queued it accepts, and
    // status says when nothing is left. Then it closes (and leaves the pool by itself).
    ASSERT_TRUE(wait_until_empty(generation - 1)) << "generation " << generation - 1;
    current->stop();
    current = std::move(next);
  }
  int answered_before = clients[0].answered() + clients[1].answered();
  // Still served after the last restart.
  for (int wait = 0; wait < 1000 && clients[0].answered() + clients[1].answered() <
                                        answered_before + 20; ++wait)
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  for (auto& client : clients) client.stop();
  for (auto& client : clients) {
    EXPECT_EQ(client.failed(), 0) << "first failure: " << client.first_failure();
    EXPECT_GT(client.answered(), 10);
    EXPECT_EQ(client.last_generation(), '1') << "the last answers come from generation 11";
  }
}

}  // namespace
}  // namespace steer::testing
