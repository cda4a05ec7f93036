// Issue 8: steerd as an operator runs it. A config file, services that register their own
// sockets through the client library (the examples), SIGHUP, a bad config, a peer of the
// wrong uid, hostile control messages, kill -9 under traffic, a service restarting ten times
// under traffic, and /metrics read by Prometheus' own parser. Each test runs in a fresh
// network namespace with a private bpffs; steerd's control socket lives in a temp dir.
#include <fcntl.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <optional>
#include <sstream>
#include <thread>

#include <nlohmann/json.hpp>

#include "base/socket.h"
#include "steer/client.h"
#include "support/listeners.h"
#include "support/peers.h"
#include "support/steer_test.h"

namespace steer::testing {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

// HTTP/1.0 GETs through an address, one connection each, back to back, until stopped.
class ClientLoop {
 public:
  explicit ClientLoop(SocketAddress address) : address_(address) {
    thread_ = std::thread([this] { run(); });
  }
  ~ClientLoop() { stop(); }
  void stop() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
  }
  uint64_t ok() const { return ok_; }
  uint64_t failed() const { return failed_; }
  std::string failures() {
    std::lock_guard lock(mutex_);
    return failures_;
  }
  // Waits until `more` requests have succeeded since the call.
  bool wait_for_more(uint64_t more) {
    uint64_t target = ok_ + more;
    for (int i = 0; i < 2000 && ok_ < target; ++i) std::this_thread::sleep_for(5ms);
    return ok_ >= target;
  }

 private:
  void run() {
    while (!stop_) {
      auto outcome = once();
      if (outcome.empty()) {
        ++ok_;
      } else {
        ++failed_;
        std::lock_guard lock(mutex_);
        if (failures_.size() < 2000) failures_ += outcome + "\n";
      }
    }
  }
  std::string once() {
    auto connection = connect_tcp(address_);
    if (!connection) return "connect: " + connection.error().message;
    const char request[] = "GET / HTTP/1.0\r\nHost: steer\r\n\r\n";
    if (::write(connection->get(), request, sizeof(request) - 1) != sizeof(request) - 1)
      return std::string("write: ") + std::strerror(errno);
    std::string response;
    char buffer[1024];
    for (;;) {
      ssize_t got = ::read(connection->get(), buffer, sizeof(buffer));
      if (got < 0) return std::string("read: ") + std::strerror(errno);
      if (got == 0) break;
      response.append(buffer, static_cast<size_t>(got));
    }
    if (response.rfind("HTTP/1.1 200 OK", 0) != 0) return "response: " + response;
    return {};
  }

  SocketAddress address_;
  std::atomic<bool> stop_{false};
  std::atomic<uint64_t> ok_{0}, failed_{0};
  std::mutex mutex_;
  std::string failures_;
  std::thread thread_;
};

// Writes `text` on a connection to an echo server and returns what came back.
std::string echoed(int connection, const std::string& text) {
  if (::write(connection, text.data(), text.size()) != static_cast<ssize_t>(text.size()))
    return std::string("write: ") + std::strerror(errno);
  std::string back(text.size(), '\0');
  ssize_t got = ::read(connection, back.data(), back.size());
  return got < 0 ? std::string("read: ") + std::strerror(errno) : back.substr(0, static_cast<size_t>(got));
}

// A connection to steerd's control socket, made by hand (the tests that send what the client
// library never would).
Fd connect_control(const std::string& path, int flags = 0) {
  Fd socket(::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | flags, 0));
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  std::strcpy(address.sun_path, path.c_str());
  if (::connect(socket.get(), reinterpret_cast<sockaddr*>(&address), sizeof(address)) != 0)
    return Fd();
  return socket;
}

std::string binary(const std::string& name) { return std::string(STEER_BINARY_DIR) + "/" + name; }

bool process_gone(pid_t pid) {
  std::ifstream status("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(status, line))
    if (line.rfind("State:", 0) == 0) return line.find('Z') != std::string::npos;
  return true;  // no such process
}

size_t open_fds(pid_t pid) {
  size_t count = 0;
  for ([[maybe_unused]] const auto& entry : fs::directory_iterator("/proc/" + std::to_string(pid) + "/fd"))
    ++count;
  return count;
}

class Steerd : public SteerTest {
 protected:
  void SetUp() override {
    SteerTest::SetUp();
    // Peers of other uids reach the control socket through this directory.
    ::chmod(dir_.path().c_str(), 0755);
    socket_path_ = (dir_.path() / "steerd.sock").string();
    metrics_port_ = unused_port(Transport::Tcp);
  }
  void TearDown() override {
    steerd_.reset();
    SteerTest::TearDown();
  }

  // The config with the test's bpffs, control socket and metrics port, and `rest`.
  std::string config(const std::string& rest, const std::string& control_extra = "") {
    return fmt::format("[steerd]\nbpffs = \"{}\"\n[control]\nsocket = \"{}\"\n{}"
                       "[metrics]\nlisten = \"127.0.0.1:{}\"\n{}",
                       bpffs(), socket_path_, control_extra, metrics_port_, rest);
  }
  std::string write_config(const std::string& text) { return dir_.write("steerd.toml", text); }

  void start_steerd(const std::string& config_path) {
    steerd_.emplace(std::vector<std::string>{binary("steerd"), "--config", config_path});
    ASSERT_TRUE(steerd_->wait_for_output("ready: control socket")) << steerd_->output();
  }
  // Sends SIGHUP and waits until steerd has applied or refused the config (its
  // `reloads_before`+1-th "SIGHUP: done").
  void reload(size_t reloads_before) {
    ASSERT_EQ(::kill(steerd_->pid(), SIGHUP), 0);
    for (int i = 0; i < 1000; ++i) {
      if (count_of(steerd_->output(), "SIGHUP: done") > reloads_before) return;
      std::this_thread::sleep_for(10ms);
    }
    FAIL() << "steerd did not finish the reload:\n" << steerd_->output();
  }
  static size_t count_of(const std::string& text, const std::string& what) {
    size_t count = 0;
    for (auto at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++count;
    return count;
  }
  std::string metrics() {
    auto result = curl_get(fmt::format("http://127.0.0.1:{}/metrics", metrics_port_));
    EXPECT_EQ(result.http_status, 200) << result.error;
    return result.body;
  }
  // One scrape of /metrics, read by Prometheus' own text parser: every sample as
  // {"name", "labels", "value"} (a failure when the text does not parse).
  nlohmann::json scrape() {
    auto text = metrics();
    auto file = dir_.write("metrics.txt", text);
    auto result = run_command(
        {kPython, "-c",
         "import json, sys\n"
         "from prometheus_client.parser import text_string_to_metric_families\n"
         "print(json.dumps([{'name': s.name, 'labels': s.labels, 'value': s.value}\n"
         "                  for f in text_string_to_metric_families(open(sys.argv[1]).read())\n"
         "                  for s in f.samples]))\n",
         file});
    EXPECT_EQ(result.exit_code, 0) << "not Prometheus text:\n" << text << result.err;
    return nlohmann::json::parse(result.out, nullptr, false);
  }
  // The value of the sample of `samples` with this name and (at least) these labels.
  static double metric(const nlohmann::json& samples, const std::string& name,
                       const nlohmann::json& labels = nlohmann::json::object()) {
    for (const auto& sample : samples) {
      if (sample["name"] != name) continue;
      bool matches = true;
      for (const auto& [key, value] : labels.items())
        matches = matches && sample["labels"].value(key, "") == value;
      if (matches) return sample["value"].get<double>();
    }
    ADD_FAILURE() << name << " " << labels.dump() << " not among the samples";
    return -1;
  }

  TempDir dir_;
  std::string socket_path_;
  uint16_t metrics_port_ = 0;
  std::optional<BackgroundProcess> steerd_;
};

constexpr const char* kWebBinding =
    "[service.web]\npolicy = \"round-robin\"\n"
    "[[binding]]\nlabel = \"web\"\nprotocol = \"tcp\"\nprefix = \"127.0.0.1/32\"\nports = 8080\n";

TEST_F(Steerd, ServesItsConfigAndAnExampleRegistersThroughTheLibrary) {
  start_steerd(write_config(config(kWebBinding)));
  ASSERT_FALSE(HasFatalFailure());
  // The control socket with no mode in the config: owner and group only.
  struct stat socket_stat {};
  ASSERT_EQ(::stat(socket_path_.c_str(), &socket_stat), 0);
  EXPECT_EQ(socket_stat.st_mode & 07777, 0660u);
  BackgroundProcess server({binary("steer-graceful-http"), "--label", "web", "--socket", socket_path_});
  ASSERT_TRUE(server.wait_for_output("generation 1 pid")) << server.output() << steerd_->output();
  auto reply = curl_get("http://127.0.0.1:8080/");
  ASSERT_EQ(reply.http_status, 200) << reply.error;
  EXPECT_EQ(reply.body, fmt::format("generation 1 pid {}\n", server.pid()));
  auto web = find_destination(json({"status"}), "web", "tcp", "ipv4");
  ASSERT_FALSE(web.is_null());
  EXPECT_EQ(web["policy"], "round-robin");
  ASSERT_EQ(web["sockets"].size(), 1u);
  EXPECT_EQ(web["sockets"][0]["pid"], server.pid());
  EXPECT_EQ(web["sockets"][0]["generation"], 1);
  // The same status through the control socket, from the client library.
  auto client = steer::Client::connect(socket_path_);
  ASSERT_TRUE(client) << client.error().message;
  auto status = client->status_json("web");
  ASSERT_TRUE(status) << status.error().message;
  EXPECT_EQ(nlohmann::json::parse(*status)["destinations"][0]["sockets"][0]["pid"], server.pid());
}

TEST_F(Steerd, SighupMovesBindingsAndPoliciesAndNothingElse) {
  start_steerd(write_config(config(kWebBinding)));
  ASSERT_FALSE(HasFatalFailure());
  BackgroundProcess echo({binary("steer-echo-server"), "--label", "web", "--socket", socket_path_,
                          "--listen", "127.0.0.1:0"});
  ASSERT_TRUE(echo.wait_for_output("registered 1 sockets")) << echo.output() << steerd_->output();
  auto before = find_destination(json({"status"}), "web", "tcp", "ipv4");
  ASSERT_EQ(before["sockets"].size(), 1u);
  // A connection made before the reload, through the binding the reload removes.
  auto established = connect_tcp(SocketAddress::ipv4_loopback(8080));
  ASSERT_TRUE(established) << established.error().message;
  write_config(config("[service.web]\npolicy = \"random\"\n"
                      "[[binding]]\nlabel = \"web\"\nprotocol = \"tcp\"\n"
                      "prefix = \"127.0.0.1/32\"\nports = 8081\n"));
  reload(0);
  ASSERT_FALSE(HasFatalFailure());
  EXPECT_NE(steerd_->output().find("bindings: 1 added, 1 removed"), std::string::npos)
      << steerd_->output();
  auto after = find_destination(json({"status"}), "web", "tcp", "ipv4");
  EXPECT_EQ(after["policy"], "random");
  ASSERT_EQ(after["sockets"].size(), 1u);
  EXPECT_EQ(after["sockets"][0]["cookie"], before["sockets"][0]["cookie"]);
  EXPECT_EQ(after["sockets"][0]["generation"], before["sockets"][0]["generation"]);
  auto bindings = json({"bindings"});
  ASSERT_EQ(bindings["bindings"].size(), 1u) << bindings.dump();
  EXPECT_EQ(bindings["bindings"][0]["ports"], "8081");
  // The new binding steers, the old one no longer does, and the established connection
  // never noticed.
  auto moved = connect_tcp(SocketAddress::ipv4_loopback(8081));
  ASSERT_TRUE(moved) << moved.error().message;
  EXPECT_EQ(echoed(moved->get(), "new"), "new");
  auto old = connect_tcp(SocketAddress::ipv4_loopback(8080));
  ASSERT_FALSE(old);
  EXPECT_EQ(old.error().code, ECONNREFUSED);
  EXPECT_EQ(echoed(established->get(), "old"), "old");
}

TEST_F(Steerd, InvalidConfigIsRefusedWithFileAndLineAndTheStateStays) {
  auto path = write_config(config(kWebBinding));
  start_steerd(path);
  ASSERT_FALSE(HasFatalFailure());
  auto before = state_snapshot(bpffs());
  struct Case {
    const char* name;
    std::string text;
    std::string expected;  // in the message
  };
  std::vector<Case> cases = {
      {"not TOML", config("[service.web\n"), "steerd.toml:"},
      {"unknown policy", config("[service.web]\npolicy = \"fastest\"\n"),
       "policy = \"fastest\": it must be one of"},
      {"unknown key", config("[service.web]\nallow_users = [1]\n"), "unknown key 'allow_users'"},
      {"weight too big", config("[service.web]\nweight = 1001\n"), "weight is 1001"},
      {"bad prefix", config("[[binding]]\nlabel = \"web\"\nprotocol = \"tcp\"\nprefix = "
                            "\"127.0.0.300/32\"\nports = 8080\n"), "binding #1"},
      {"world-writable socket", config("", "mode = \"0666\"\n"), "lets every user write"},
      {"conflicting bindings", config("[[binding]]\nlabel = \"a\"\nprotocol = \"tcp\"\nprefix = "
                                      "\"127.0.0.1/32\"\nports = 8080\n[[binding]]\nlabel = \"b\"\n"
                                      "protocol = \"tcp\"\nprefix = \"127.0.0.1/32\"\nports = 8080\n"),
       "do not fit together"},
  };
  size_t reloads = 0;
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    write_config(c.text);
    auto checked = run_command({binary("steerd"), "--check-config", path});
    EXPECT_EQ(checked.exit_code, 1) << checked.out;
    EXPECT_NE(checked.err.find(path + ":"), std::string::npos) << checked.err;
    EXPECT_NE(checked.err.find(c.expected), std::string::npos) << checked.err;
    reload(reloads++);
    ASSERT_FALSE(HasFatalFailure());
    auto output = steerd_->output();
    EXPECT_NE(output.find("config refused, the running state stays: " + path), std::string::npos)
        << output;
    EXPECT_EQ(state_snapshot(bpffs()), before);
  }
  // A file anyone may write is not trusted.
  write_config(config(kWebBinding));
  ::chmod(path.c_str(), 0666);
  auto checked = run_command({binary("steerd"), "--check-config", path});
  EXPECT_EQ(checked.exit_code, 1);
  EXPECT_NE(checked.err.find("no one else may write"), std::string::npos) << checked.err;
  ::chmod(path.c_str(), 0644);
  checked = run_command({binary("steerd"), "--check-config", path});
  EXPECT_EQ(checked.exit_code, 0) << checked.err;
  EXPECT_TRUE(steerd_->running());
}

TEST_F(Steerd, PeerOfAnotherUidIsRefusedAndAnAllowedOneRegisters) {
  // The control socket belongs to group 4242 (mode 0660); label web allows uid 4243 only.
  start_steerd(write_config(config("[service.web]\nallow_uids = [4243]\n"
                                   "[[binding]]\nlabel = \"web\"\nprotocol = \"tcp\"\n"
                                   "prefix = \"127.0.0.1/32\"\nports = 8080\n",
                                   "mode = \"0660\"\ngroup = \"4242\"\n")));
  ASSERT_FALSE(HasFatalFailure());
  auto as = [&](const char* uid) {
    return run_command({"setpriv", std::string("--reuid=") + uid, "--regid=4242", "--clear-groups",
                        "timeout", "2", binary("steer-echo-server"), "--label", "web", "--socket",
                        socket_path_, "--listen", "127.0.0.1:0"});
  };
  auto refused = as("4244");
  EXPECT_EQ(refused.exit_code, 1) << refused.out << refused.err;
  EXPECT_NE(refused.err.find("uid 4244 (gid 4242) may not register sockets of label 'web'"),
            std::string::npos) << refused.err;
  EXPECT_NE(refused.err.find("allow_uids"), std::string::npos) << refused.err;
  EXPECT_NE(steerd_->output().find("refused: pid"), std::string::npos) << steerd_->output();
  // Allowed: it registers (and timeout ends it after 2 s: exit 124).
  auto allowed = as("4243");
  EXPECT_NE(allowed.out.find("registered 1 sockets for 'web'"), std::string::npos)
      << allowed.out << allowed.err;
  // Another label: only root may, since the config names no such service.
  auto client = steer::Client::connect(socket_path_);
  ASSERT_TRUE(client);
  auto listener = listen_tcp(SocketAddress::ipv4_loopback(0));
  ASSERT_TRUE(listener);
  int fds[] = {listener->get()};
  EXPECT_TRUE(client->register_sockets("other", fds)) << "root may register any label";
}

// Sends raw bytes (and fds) on a fresh connection and returns the reply, if any.
// By hand, not with control::send_datagram: that refuses what these tests must send (65 fds,
// 66,000 bytes).
std::optional<nlohmann::json> raw_exchange(const std::string& path, const std::string& bytes,
                                           const std::vector<int>& fds = {}) {
  Fd socket = connect_control(path);
  if (!socket) return std::nullopt;
  iovec io{const_cast<char*>(bytes.data()), bytes.size()};
  msghdr message{};
  message.msg_iov = &io;
  message.msg_iovlen = 1;
  std::vector<char> control(CMSG_SPACE(sizeof(int) * std::max<size_t>(fds.size(), 1)));
  if (!fds.empty()) {
    message.msg_control = control.data();
    message.msg_controllen = CMSG_SPACE(sizeof(int) * fds.size());
    cmsghdr* header = CMSG_FIRSTHDR(&message);
    header->cmsg_level = SOL_SOCKET;
    header->cmsg_type = SCM_RIGHTS;
    header->cmsg_len = CMSG_LEN(sizeof(int) * fds.size());
    std::memcpy(CMSG_DATA(header), fds.data(), sizeof(int) * fds.size());
  }
  if (::sendmsg(socket.get(), &message, MSG_NOSIGNAL) < 0) return std::nullopt;
  std::string reply(70000, '\0');
  ssize_t got = ::recv(socket.get(), reply.data(), reply.size(), 0);
  if (got <= 0) return std::nullopt;
  return nlohmann::json::parse(reply.substr(0, static_cast<size_t>(got)), nullptr, false);
}

TEST_F(Steerd, HostileControlMessagesAreAnsweredAndLeakNothing) {
  start_steerd(write_config(config(kWebBinding)));
  ASSERT_FALSE(HasFatalFailure());
  size_t fds_before = open_fds(steerd_->pid());
  int pipe_fds[2];
  ASSERT_EQ(::pipe2(pipe_fds, O_CLOEXEC), 0);
  Fd pipe_read(pipe_fds[0]), pipe_write(pipe_fds[1]);
  auto listener = listen_tcp(SocketAddress::ipv4_loopback(0));
  ASSERT_TRUE(listener);
  auto unix_socket = Fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  std::vector<int> too_many(65, listener->get());
  struct Case {
    const char* name;
    std::string bytes;
    std::vector<int> fds;
    std::string expected;
  };
  const std::string reg = R"({"version":1,"op":"register","label":"web"})";
  std::vector<Case> cases = {
      {"truncated JSON", R"({"version":1,"op":"sta)", {}, "not valid JSON"},
      {"not an object", "[1,2,3]", {}, "not a JSON object"},
      {"no version", R"({"op":"status"})", {}, "has no 'version'"},
      {"future version", R"({"version":2,"op":"status"})", {}, "control protocol version 2"},
      {"unknown op", R"({"version":1,"op":"reboot"})", {}, "unknown op 'reboot'"},
      {"unknown field", R"({"version":1,"op":"status","force":true})", {}, "'force' is not one"},
      {"wrong type", R"({"version":1,"op":"drain","label":7})", {}, "must be a string"},
      {"register without fds", reg, {}, "carried none"},
      {"status with an fd", R"({"version":1,"op":"status"})", {listener->get()}, "carries no fds"},
      {"a pipe", reg, {pipe_read.get()}, "socket #1 of the request"},
      {"a unix socket", reg, {unix_socket.get()}, "socket #1 of the request is not an IPv4 or IPv6"},
      {"65 fds", reg, too_many, "fds"},
      {"oversized", std::string(66000, ' '), {}, "over the limit"},
      {"bad label", R"({"version":1,"op":"register","label":""})", {listener->get()}, "label"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    auto reply = raw_exchange(socket_path_, c.bytes, c.fds);
    ASSERT_TRUE(reply.has_value()) << "no reply; steerd:\n" << steerd_->output();
    ASSERT_TRUE(reply->is_object()) << reply->dump();
    EXPECT_EQ((*reply)["ok"], false) << reply->dump();
    EXPECT_NE((*reply)["error"]["message"].get<std::string>().find(c.expected), std::string::npos)
        << reply->dump();
  }
  // A flood from a peer that never reads its replies: steerd drops that peer instead of
  // blocking, and answers the next one.
  {
    Fd flood = connect_control(socket_path_, SOCK_NONBLOCK);
    ASSERT_TRUE(flood);
    const std::string status = R"({"version":1,"op":"status"})";
    size_t sent = 0;
    for (int i = 0; i < 20000; ++i) {
      if (::send(flood.get(), status.data(), status.size(), MSG_NOSIGNAL) < 0) {
        if (errno == EAGAIN) {
          std::this_thread::sleep_for(1ms);
          continue;
        }
        break;  // dropped by steerd: EPIPE / ECONNRESET
      }
      ++sent;
    }
    EXPECT_GT(sent, 100u);
  }
  // Many peers at once, all closed again.
  std::vector<Fd> crowd;
  for (int i = 0; i < 300; ++i)
    if (Fd peer = connect_control(socket_path_)) crowd.push_back(std::move(peer));
  crowd.clear();
  auto client = steer::Client::connect(socket_path_);
  ASSERT_TRUE(client) << client.error().message;
  auto status = client->status_json();
  ASSERT_TRUE(status) << status.error().message;
  EXPECT_TRUE(steerd_->running());
  // Nothing registered by the bad requests, and every fd they carried closed again.
  auto web = find_destination(json({"status"}), "web", "tcp", "ipv4");
  EXPECT_EQ(web["sockets"].size(), 0u) << web.dump();
  size_t fds_after = 0;
  for (int i = 0; i < 500; ++i) {
    fds_after = open_fds(steerd_->pid());
    if (fds_after <= fds_before + 1) break;  // the library's own connection may still be open
    std::this_thread::sleep_for(10ms);
  }
  EXPECT_LE(fds_after, fds_before + 1) << "steerd holds fds it was sent";
}

TEST_F(Steerd, ClosedSocketLeavesItsPoolWithoutAnotherCommand) {
  start_steerd(write_config(config(kWebBinding)));
  ASSERT_FALSE(HasFatalFailure());
  std::optional<BackgroundProcess> echo;
  echo.emplace(std::vector<std::string>{binary("steer-echo-server"), "--label", "web", "--socket",
                                        socket_path_, "--listen", "127.0.0.1:0"});
  ASSERT_TRUE(echo->wait_for_output("registered 1 sockets")) << echo->output();
  echo->kill(SIGKILL);
  // The destroy notice makes steerd rebuild the pool at once (its periodic check is every
  // 5 s; the log says which one did it).
  for (int i = 0; i < 500; ++i) {
    if (steerd_->output().find("left their pools") != std::string::npos) break;
    std::this_thread::sleep_for(10ms);
  }
  EXPECT_NE(steerd_->output().find("1 closed socket left their pools (a pool's socket closed)"),
            std::string::npos) << steerd_->output();
  // Rebuilt: a connection finds an empty pool and is refused, without trying the dead slot
  // first (before a rebuild the program would count dead_slot).
  auto refused = connect_tcp(SocketAddress::ipv4_loopback(8080));
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().code, ECONNREFUSED);
  auto web = find_destination(json({"status"}), "web", "tcp", "ipv4");
  EXPECT_EQ(web["sockets"].size(), 0u);
  EXPECT_EQ(web["counters"]["no_socket"], 1);
  EXPECT_EQ(web["counters"]["dead_slot"], 0);
}

TEST_F(Steerd, KilledUnderTrafficLosesNoConnectionAndItsCountersContinue) {
  auto path = write_config(config(kWebBinding));
  start_steerd(path);
  ASSERT_FALSE(HasFatalFailure());
  BackgroundProcess server({binary("steer-graceful-http"), "--label", "web", "--socket", socket_path_});
  ASSERT_TRUE(server.wait_for_output("generation 1 pid")) << server.output();
  const nlohmann::json web = {{"label", "web"}, {"protocol", "tcp"}, {"family", "ipv4"}};
  ClientLoop loop(SocketAddress::ipv4_loopback(8080));
  ASSERT_TRUE(loop.wait_for_more(200)) << loop.failures();
  double before = metric(scrape(), "steer_lookups_total", web);
  steerd_->kill(SIGKILL);
  ASSERT_TRUE(loop.wait_for_more(500)) << loop.failures();
  start_steerd(path);
  ASSERT_FALSE(HasFatalFailure());
  ASSERT_TRUE(loop.wait_for_more(200)) << loop.failures();
  loop.stop();
  double after = metric(scrape(), "steer_lookups_total", web);
  EXPECT_GE(after, before + 900) << "the counters live in the kernel: they go on";
  EXPECT_EQ(loop.failed(), 0u) << loop.failures();
  EXPECT_NE(steerd_->output().find("nothing to change"), std::string::npos) << steerd_->output();
}

TEST_F(Steerd, GracefulRestartTenTimesUnderTrafficLosesNothing) {
  start_steerd(write_config(config(kWebBinding)));
  ASSERT_FALSE(HasFatalFailure());
  auto pid_file = (dir_.path() / "web.pid").string();
  BackgroundProcess server({binary("steer-graceful-http"), "--label", "web", "--socket",
                            socket_path_, "--pid-file", pid_file});
  ASSERT_TRUE(server.wait_for_output("generation 1 pid")) << server.output();
  auto read_pid = [&] {
    std::ifstream file(pid_file);
    pid_t pid = 0;
    file >> pid;
    return pid;
  };
  ClientLoop loop(SocketAddress::ipv4_loopback(8080));
  ASSERT_TRUE(loop.wait_for_more(100)) << loop.failures();
  for (int restart = 1; restart <= 10; ++restart) {
    SCOPED_TRACE(restart);
    pid_t old = read_pid();
    ASSERT_GT(old, 0);
    ASSERT_EQ(::kill(old, SIGHUP), 0);
    pid_t next = old;
    for (int i = 0; i < 1000 && (next == old || next == 0); ++i) {
      std::this_thread::sleep_for(10ms);
      next = read_pid();
    }
    ASSERT_NE(next, old) << server.output() << steerd_->output();
    for (int i = 0; i < 1000 && !process_gone(old); ++i) std::this_thread::sleep_for(10ms);
    ASSERT_TRUE(process_gone(old)) << "generation " << restart << " did not finish draining";
    ASSERT_TRUE(loop.wait_for_more(50)) << loop.failures();
  }
  loop.stop();
  EXPECT_EQ(loop.failed(), 0u) << loop.failures();
  EXPECT_GT(loop.ok(), 600u);
  auto destination = find_destination(json({"status"}), "web", "tcp", "ipv4");
  ASSERT_EQ(destination["sockets"].size(), 1u) << destination.dump();
  EXPECT_EQ(destination["sockets"][0]["generation"], 11);
  EXPECT_EQ(destination["sockets"][0]["state"], "active");
}

TEST_F(Steerd, MetricsAreValidPrometheusTextAndAgreeWithStatus) {
  start_steerd(write_config(config(kWebBinding)));
  ASSERT_FALSE(HasFatalFailure());
  // The control socket with no mode in the config: owner and group only.
  struct stat socket_stat {};
  ASSERT_EQ(::stat(socket_path_.c_str(), &socket_stat), 0);
  EXPECT_EQ(socket_stat.st_mode & 07777, 0660u);
  BackgroundProcess server({binary("steer-graceful-http"), "--label", "web", "--socket", socket_path_});
  ASSERT_TRUE(server.wait_for_output("generation 1 pid")) << server.output();
  for (int i = 0; i < 5; ++i) ASSERT_EQ(curl_get("http://127.0.0.1:8080/").http_status, 200);
  // Every family parses with Prometheus' own parser, and the counters agree with status.
  auto destination = find_destination(json({"status"}), "web", "tcp", "ipv4");
  const nlohmann::json web = {{"label", "web"}, {"protocol", "tcp"}, {"family", "ipv4"}};
  auto samples = scrape();
  EXPECT_EQ(metric(samples, "steer_lookups_total", web),
            destination["counters"]["lookups"].get<double>());
  EXPECT_EQ(metric(samples, "steer_selections_total", web),
            destination["counters"]["selected"].get<double>());
  EXPECT_EQ(metric(samples, "steer_bindings"), 1);
  EXPECT_EQ(metric(samples, "steer_dispatcher_attached"), 1);
  EXPECT_EQ(metric(samples, "steer_sockets",
                   {{"label", "web"}, {"state", "active"}, {"generation", "1"}}), 1);
  EXPECT_EQ(metric(samples, "steer_destination_policy_info",
                   {{"label", "web"}, {"policy", "round-robin"}}), 1);
  EXPECT_EQ(metric(samples, "steer_socket_selections_total",
                   {{"label", "web"}, {"pid", std::to_string(server.pid())}}),
            destination["sockets"][0]["selected"].get<double>());
  auto health = curl_get(fmt::format("http://127.0.0.1:{}/healthz", metrics_port_));
  EXPECT_EQ(health.http_status, 200);
  EXPECT_EQ(health.body, "ok\n");
  run_ok({"unload"});
  health = curl_get(fmt::format("http://127.0.0.1:{}/healthz", metrics_port_));
  EXPECT_EQ(health.http_status, 503) << health.body;
}


// The socket-activated example of packaging/systemd: systemd passes the listening socket
// (LISTEN_FDS; here systemd-socket-activate, which starts the service on the first
// connection), and the service registers it through steerd with the client library.
TEST_F(Steerd, SocketActivatedServiceRegistersItsInheritedSocket) {
  start_steerd(write_config(config("[service.echo]\npolicy = \"first\"\nweight = 7\n"
                                   "[[binding]]\nlabel = \"echo\"\nprotocol = \"tcp\"\n"
                                   "prefix = \"127.0.0.1/32\"\nports = 7000\n")));
  ASSERT_FALSE(HasFatalFailure());
  uint16_t port = unused_port(Transport::Tcp);
  auto activator = start_server({"/usr/bin/systemd-socket-activate", "-l",
                                 fmt::format("127.0.0.1:{}", port), binary("steer-echo-server"),
                                 "--label", "echo", "--socket", socket_path_},
                                Transport::Tcp, port);
  // The first connection starts the service; it registers before it serves.
  auto first = connect_tcp(SocketAddress::ipv4_loopback(port));
  ASSERT_TRUE(first) << first.error().message;
  ASSERT_TRUE(activator.wait_for_output("registered 1 sockets for 'echo'")) << activator.output();
  auto steered = connect_tcp(SocketAddress::ipv4_loopback(7000));
  ASSERT_TRUE(steered) << steered.error().message;
  EXPECT_EQ(echoed(steered->get(), "ping"), "ping");
  auto echo = find_destination(json({"status"}), "echo", "tcp", "ipv4");
  ASSERT_EQ(echo["sockets"].size(), 1u);
  EXPECT_EQ(echo["sockets"][0]["address"], fmt::format("127.0.0.1:{}", port));
  EXPECT_EQ(echo["sockets"][0]["command"], "steer-echo-serv");  // /proc/PID/comm: 15 bytes
  EXPECT_EQ(echo["policy"], "first");
  EXPECT_EQ(echo["sockets"][0]["weight"], 7) << "the service's weight from the config";
}

// steerd and the CLI change one state under one lock: what either does, the other sees at
// once (steerd reads the state fresh for every request).
TEST_F(Steerd, CliAndSteerdChangeTheSameState) {
  start_steerd(write_config(config(kWebBinding)));
  ASSERT_FALSE(HasFatalFailure());
  BackgroundProcess echo({binary("steer-echo-server"), "--label", "web", "--socket", socket_path_,
                          "--listen", "127.0.0.1:0"});
  ASSERT_TRUE(echo.wait_for_output("registered 1 sockets")) << echo.output();
  auto client = steer::Client::connect(socket_path_);
  ASSERT_TRUE(client) << client.error().message;
  auto web_of = [&] {
    auto status = client->status_json("web");
    EXPECT_TRUE(status) << status.error().message;
    return status ? find_destination(nlohmann::json::parse(*status), "web", "tcp", "ipv4")
                  : nlohmann::json();
  };
  // The CLI drains what steerd registered; steerd's status says so.
  run_ok({"drain", "web", "--pid", std::to_string(echo.pid())});
  EXPECT_EQ(web_of()["sockets"][0]["state"], "draining");
  // steerd undrains; the CLI's status says so.
  auto undrained = client->undrain("web", {.cookie = std::nullopt, .pid = echo.pid(),
                                           .generation = std::nullopt});
  ASSERT_TRUE(undrained) << undrained.error().message;
  EXPECT_EQ(*undrained, 1u);
  EXPECT_EQ(find_destination(json({"status"}), "web", "tcp", "ipv4")["sockets"][0]["state"], "active");
  // A binding the CLI adds is steered, and steerd's status counts it.
  run_ok({"bind", "web", "tcp", "127.0.0.2/32", "9000"});
  EXPECT_EQ(web_of()["bindings"], 2);
  auto connection = connect_tcp(SocketAddress::parse("127.0.0.2:9000").value());
  ASSERT_TRUE(connection) << connection.error().message;
  // Changes from both at once: neither fails, both land.
  std::atomic<int> failures{0};
  std::thread cli([&] {
    for (int i = 0; i < 10; ++i)
      if (run({"weight", "web", "--pid", std::to_string(echo.pid()), std::to_string(i + 1)}).exit_code != 0)
        ++failures;
  });
  auto other = steer::Client::connect(socket_path_);
  ASSERT_TRUE(other);
  for (int i = 0; i < 10; ++i)
    if (!other->drain("web", {}) || !other->undrain("web", {})) ++failures;
  cli.join();
  EXPECT_EQ(failures, 0);
  auto final = web_of();
  EXPECT_EQ(final["sockets"][0]["weight"], 10);
  EXPECT_EQ(final["sockets"][0]["state"], "active");
}

// The installed package as a user's project finds it: find_package(steer) for C++, pkg-config
// for C; both programs then ask steerd for its status.
TEST_F(Steerd, ProjectsBuildAgainstTheInstalledClientPackage) {
  TempDir out;
  auto built = run_command({std::string(STEER_SOURCE_DIR) + "/tests/consumer/build.sh",
                            std::string(STEER_BUILD_DIR), out.path().string()},
                           CommandOptions{.timeout = std::chrono::seconds(300)});
  ASSERT_EQ(built.exit_code, 0) << built.out << built.err;
  std::istringstream lines(built.out);
  std::string consumer_cpp, consumer_c;
  std::getline(lines, consumer_cpp);
  std::getline(lines, consumer_c);
  // No steerd yet: a clear error.
  auto missing = run_command({consumer_c, socket_path_});
  EXPECT_EQ(missing.exit_code, 1);
  EXPECT_NE(missing.err.find("is steerd running?"), std::string::npos) << missing.err;
  start_steerd(write_config(config(kWebBinding)));
  ASSERT_FALSE(HasFatalFailure());
  for (const auto& consumer : {consumer_cpp, consumer_c}) {
    auto ran = run_command({consumer, socket_path_});
    EXPECT_EQ(ran.exit_code, 0) << consumer << ": " << ran.err;
    EXPECT_NE(ran.out.find("status of"), std::string::npos) << ran.out;
  }
}


// The control operations a service uses besides register, through the library: weight
// (round-robin honours it exactly), unregister, a register that names its generation, and
// promote of that generation.
TEST_F(Steerd, WeightUnregisterAndAnExplicitGenerationThroughTheLibrary) {
  start_steerd(write_config(config(kWebBinding)));
  ASSERT_FALSE(HasFatalFailure());
  Listeners listeners;
  int a = listeners.listen(), b = listeners.listen();
  auto client = steer::Client::connect(socket_path_);
  ASSERT_TRUE(client) << client.error().message;
  int fds[] = {a, b};
  auto registered = client->register_sockets("web", fds);
  ASSERT_TRUE(registered) << registered.error().message;
  EXPECT_EQ(registered->generation, 1u);
  ASSERT_EQ(registered->cookies.size(), 2u);
  EXPECT_EQ(registered->cookies[0], *socket_cookie(a));
  const std::string to = "127.0.0.1:8080";
  EXPECT_EQ(listeners.spread(20, to), (std::map<int, int>{{0, 10}, {1, 10}}));
  // a weighs 3: round-robin gives it exactly three of every four.
  auto weighed = client->set_weight("web", {.cookie = registered->cookies[0]}, 3);
  ASSERT_TRUE(weighed) << weighed.error().message;
  EXPECT_EQ(*weighed, 1u);
  EXPECT_EQ(listeners.spread(40, to), (std::map<int, int>{{0, 30}, {1, 10}}));
  // Generation 5 named by the caller, then promoted: a and b drain, c takes everything.
  int c = listeners.listen();
  int third[] = {c};
  auto fifth = client->register_sockets("web", third, {.generation = 5});
  ASSERT_TRUE(fifth) << fifth.error().message;
  EXPECT_EQ(fifth->generation, 5u);
  ASSERT_TRUE(client->promote("web", 5));
  EXPECT_EQ(listeners.spread(20, to), (std::map<int, int>{{2, 20}}));
  auto web = find_destination(json({"status"}), "web", "tcp", "ipv4");
  ASSERT_EQ(web["sockets"].size(), 3u) << web.dump();
  for (const auto& socket : web["sockets"])
    EXPECT_EQ(socket["state"], socket["generation"] == 5 ? "active" : "draining") << socket.dump();
  // Unregister generation 1 (a and b): they leave the pool; their owner keeps them open.
  auto gone = client->unregister("web", {.generation = 1});
  ASSERT_TRUE(gone) << gone.error().message;
  EXPECT_EQ(*gone, 2u);
  web = find_destination(json({"status"}), "web", "tcp", "ipv4");
  ASSERT_EQ(web["sockets"].size(), 1u) << web.dump();
  EXPECT_EQ(web["sockets"][0]["cookie"], *socket_cookie(c));
  EXPECT_EQ(listeners.spread(10, to), (std::map<int, int>{{2, 10}}));
  // Nothing left to unregister in generation 1: a clear error naming what was asked.
  auto none = client->unregister("web", {.generation = 1});
  ASSERT_FALSE(none);
  EXPECT_EQ(none.error().code, ENOENT) << none.error().message;
}

// [service] reuseport = true: sockets registered through steerd have steer's sk_reuseport
// program put on their SO_REUSEPORT group, so the group's own lookups (no sk_lookup binding
// here) follow the label's policy and drain.
TEST_F(Steerd, ReuseportServiceSteersTheGroupOfItsSockets) {
  start_steerd(write_config(config("[service.web]\npolicy = \"round-robin\"\nreuseport = true\n")));
  ASSERT_FALSE(HasFatalFailure());
  Listeners listeners;
  int first = listeners.listen("127.0.0.1:0", /*reuseport=*/true);
  auto group_address = local_address(first)->to_string();
  int second = listeners.listen(group_address, true), third = listeners.listen(group_address, true);
  auto client = steer::Client::connect(socket_path_);
  ASSERT_TRUE(client) << client.error().message;
  int fds[] = {first, second, third};
  auto registered = client->register_sockets("web", fds);
  ASSERT_TRUE(registered) << registered.error().message;
  auto groups = json({"reuseport", "show", "web"}).at("reuseport_groups");
  ASSERT_EQ(groups.size(), 1u) << groups.dump();
  EXPECT_EQ(groups[0].at("steered"), true);
  EXPECT_EQ(groups[0].at("members"), 3);
  EXPECT_EQ(groups[0].at("registered"), 3);
  EXPECT_EQ(listeners.spread(30, group_address), (std::map<int, int>{{0, 10}, {1, 10}, {2, 10}}));
  // Drained through steerd: the group's program gives the socket nothing.
  auto drained = client->drain("web", {.cookie = *socket_cookie(second)});
  ASSERT_TRUE(drained) << drained.error().message;
  EXPECT_EQ(listeners.spread(20, group_address), (std::map<int, int>{{0, 10}, {2, 10}}));
  // The group's counters reach /metrics.
  auto samples = scrape();
  EXPECT_EQ(metric(samples, "steer_reuseport_group_steered", {{"label", "web"}}), 1);
  EXPECT_EQ(metric(samples, "steer_reuseport_selections_total", {{"label", "web"}}), 50);
}

// Who may register by group: allow_gids admits a peer through a supplementary group (what
// SO_PEERGROUPS reports), not only its primary one. The control socket has the mode and
// group the config asks for. The bindings come from a bindings_file, which SIGHUP reads again.
TEST_F(Steerd, BindingsFileAndAllowedGroups) {
  auto bindings = dir_.write("bindings.toml",
                             "[[binding]]\nlabel = \"web\"\nprotocol = \"tcp\"\n"
                             "prefix = \"127.0.0.1/32\"\nports = 8080\n");
  // Below a table, bindings_file would belong to it: a clear error says where it goes.
  auto misplaced = write_config(config(fmt::format("bindings_file = \"{}\"\n", bindings)));
  auto refused_config = run_command({binary("steerd"), "--check-config", misplaced});
  EXPECT_EQ(refused_config.exit_code, 1);
  EXPECT_NE(refused_config.err.find("move it above the first [table]"), std::string::npos)
      << refused_config.err;
  start_steerd(write_config(fmt::format("bindings_file = \"{}\"\n", bindings) +
                            config("[service.web]\nallow_gids = [4250]\n",
                                   "mode = \"0660\"\ngroup = \"4242\"\n")));
  ASSERT_FALSE(HasFatalFailure());
  struct stat socket_stat {};
  ASSERT_EQ(::stat(socket_path_.c_str(), &socket_stat), 0);
  EXPECT_TRUE(S_ISSOCK(socket_stat.st_mode));
  EXPECT_EQ(socket_stat.st_mode & 07777, 0660u);
  EXPECT_EQ(socket_stat.st_gid, 4242u);
  auto as = [&](const std::string& groups) {
    return run_command({"setpriv", "--reuid=4260", "--regid=4242", groups, "timeout", "2",
                        binary("steer-echo-server"), "--label", "web", "--socket", socket_path_,
                        "--listen", "127.0.0.1:0"});
  };
  auto refused = as("--clear-groups");
  EXPECT_EQ(refused.exit_code, 1) << refused.out << refused.err;
  EXPECT_NE(refused.err.find("uid 4260 (gid 4242) may not register sockets of label 'web'"),
            std::string::npos) << refused.err;
  EXPECT_EQ(find_destination(json({"status"}), "web", "tcp", "ipv4")["sockets"].size(), 0u);
  // In group 4250 as a supplementary group: allowed. It serves through the file's binding
  // until timeout ends it.
  BackgroundProcess member({"setpriv", "--reuid=4260", "--regid=4242", "--groups=4250",
                            binary("steer-echo-server"), "--label", "web", "--socket",
                            socket_path_, "--listen", "127.0.0.1:0"});
  ASSERT_TRUE(member.wait_for_output("registered 1 sockets for 'web'")) << member.output();
  auto steered = connect_tcp(SocketAddress::ipv4_loopback(8080));
  ASSERT_TRUE(steered) << steered.error().message;
  EXPECT_EQ(echoed(steered->get(), "by group"), "by group");
  // The file changes; SIGHUP applies it.
  dir_.write("bindings.toml", "[[binding]]\nlabel = \"web\"\nprotocol = \"tcp\"\n"
                              "prefix = \"127.0.0.1/32\"\nports = \"8081-8082\"\n");
  reload(0);
  ASSERT_FALSE(HasFatalFailure());
  auto loaded = json({"bindings"});
  ASSERT_EQ(loaded["bindings"].size(), 1u) << loaded.dump();
  EXPECT_EQ(loaded["bindings"][0]["ports"], "8081-8082");
  auto moved = connect_tcp(SocketAddress::ipv4_loopback(8082));
  ASSERT_TRUE(moved) << moved.error().message;
  EXPECT_EQ(echoed(moved->get(), "moved"), "moved");
  EXPECT_FALSE(connect_tcp(SocketAddress::ipv4_loopback(8080)));
  // A bindings file that does not parse is refused like any bad config.
  dir_.write("bindings.toml", "[[binding]]\nlabel = \"web\"\n");
  auto checked = run_command({binary("steerd"), "--check-config", dir_.path() / "steerd.toml"});
  EXPECT_EQ(checked.exit_code, 1);
  EXPECT_NE(checked.err.find("bindings_file"), std::string::npos) << checked.err;
}

// A unix datagram socket bound at `path`, playing a systemd endpoint (NOTIFY_SOCKET, the
// journal's socket): what steerd sends there, a datagram each.
class DatagramInbox {
 public:
  explicit DatagramInbox(const std::string& path)
      : socket_(::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0)) {
    sockaddr_un address{.sun_family = AF_UNIX};
    std::strncpy(address.sun_path, path.c_str(), sizeof(address.sun_path) - 1);
    timeval wait{.tv_sec = 10, .tv_usec = 0};
    bound_ = ::bind(socket_.get(), reinterpret_cast<sockaddr*>(&address), sizeof(address)) == 0 &&
             ::setsockopt(socket_.get(), SOL_SOCKET, SO_RCVTIMEO, &wait, sizeof(wait)) == 0;
  }
  bool bound() const { return bound_; }
  // Every datagram until one contains `text` (or none comes for 10 s).
  std::vector<std::string> until(const std::string& text) {
    std::vector<std::string> received;
    char buffer[8192];
    for (;;) {
      ssize_t got = ::recv(socket_.get(), buffer, sizeof(buffer), 0);
      if (got <= 0) break;
      received.emplace_back(buffer, static_cast<size_t>(got));
      if (received.back().find(text) != std::string::npos) break;
    }
    return received;
  }

 private:
  Fd socket_;
  bool bound_ = false;
};

// What systemd sees of a Type=notify service: READY=1 with a STATUS= line once the control
// socket listens, WATCHDOG=1 at half of WATCHDOG_USEC, RELOADING=1 then READY=1 around a
// SIGHUP, STOPPING=1 on SIGTERM. The test plays systemd's part: a datagram socket named by
// NOTIFY_SOCKET.
TEST_F(Steerd, TellsSystemdReadyStatusWatchdogReloadingAndStopping) {
  auto notify_path = (dir_.path() / "notify").string();
  DatagramInbox notify(notify_path);
  ASSERT_TRUE(notify.bound()) << std::strerror(errno);
  auto path = write_config(config(kWebBinding));
  steerd_.emplace(std::vector<std::string>{"env", "NOTIFY_SOCKET=" + notify_path,
                                           "WATCHDOG_USEC=400000", binary("steerd"), "--config",
                                           path});
  auto started = notify.until("READY=1");
  ASSERT_FALSE(started.empty()) << steerd_->output();
  EXPECT_NE(started.back().find("STATUS="), std::string::npos) << started.back();
  EXPECT_NE(steerd_->output().find("ready: control socket"), std::string::npos)
      << "READY=1 came before the control socket listened:\n" << steerd_->output();
  // The watchdog keeps coming while steerd is idle.
  auto pings = notify.until("WATCHDOG=1");
  ASSERT_FALSE(pings.empty());
  EXPECT_EQ(pings.back(), "WATCHDOG=1");
  EXPECT_EQ(notify.until("WATCHDOG=1").back(), "WATCHDOG=1");
  ASSERT_EQ(::kill(steerd_->pid(), SIGHUP), 0);
  auto reloading = notify.until("RELOADING=1");
  ASSERT_FALSE(reloading.empty());
  EXPECT_NE(reloading.back().find("RELOADING=1"), std::string::npos);
  auto reloaded = notify.until("READY=1");
  ASSERT_FALSE(reloaded.empty());
  EXPECT_NE(reloaded.back().find("READY=1"), std::string::npos) << "no READY=1 after the reload";
  ASSERT_EQ(::kill(steerd_->pid(), SIGTERM), 0);
  auto stopping = notify.until("STOPPING=1");
  ASSERT_FALSE(stopping.empty());
  EXPECT_NE(stopping.back().find("STOPPING=1"), std::string::npos);
}

// Under systemd (JOURNAL_STREAM set) steerd logs to the journal natively: each record a
// datagram of fields, with its priority, so `journalctl -u steerd -p warning` finds the
// refusals. The test plays journald: a datagram socket at /run/systemd/journal/socket, on a
// tmpfs mounted in the test's private mount namespace (the host's /run is untouched).
TEST_F(Steerd, LogsToTheJournalWithPriorities) {
  ASSERT_EQ(::mount("steer-test", "/run/systemd", "tmpfs", 0, "mode=0755"), 0) << std::strerror(errno);
  struct Unmount {
    ~Unmount() { ::umount2("/run/systemd", MNT_DETACH); }
  } unmount;
  ASSERT_EQ(::mkdir("/run/systemd/journal", 0755), 0);
  DatagramInbox journal("/run/systemd/journal/socket");
  ASSERT_TRUE(journal.bound()) << std::strerror(errno);
  steerd_.emplace(std::vector<std::string>{"env", "JOURNAL_STREAM=8:1234", binary("steerd"),
                                           "--config", write_config(config(kWebBinding))});
  auto started = journal.until("ready: control socket");
  ASSERT_FALSE(started.empty()) << steerd_->output();
  const auto& ready = started.back();
  EXPECT_NE(ready.find("MESSAGE=ready: control socket " + socket_path_), std::string::npos) << ready;
  EXPECT_NE(ready.find("PRIORITY=6\n"), std::string::npos) << ready;  // info
  EXPECT_NE(ready.find("SYSLOG_IDENTIFIER=steerd\n"), std::string::npos) << ready;
  EXPECT_EQ(steerd_->output().find("ready: control socket"), std::string::npos)
      << "under the journal, nothing goes to stderr";
  // A refused request is a warning or worse.
  auto client = steer::Client::connect(socket_path_);
  ASSERT_TRUE(client);
  ASSERT_FALSE(client->drain("nosuch"));
  auto refused = journal.until("refused");
  ASSERT_FALSE(refused.empty());
  EXPECT_NE(refused.back().find("MESSAGE=control: refused: pid"), std::string::npos) << refused.back();
  auto priority = refused.back().find("PRIORITY=");
  ASSERT_NE(priority, std::string::npos);
  EXPECT_LE(refused.back()[priority + 9], '4') << refused.back();
}

}  // namespace
}  // namespace steer::testing
