#include "support/peers.h"

#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <thread>
#include <utility>

#include "support/process.h"

extern char** environ;

namespace steer::testing {

namespace fs = std::filesystem;

TempDir::TempDir() {
  std::string pattern = (fs::temp_directory_path() / "steer-e2e-XXXXXX").string();
  if (!::mkdtemp(pattern.data())) throw std::runtime_error("mkdtemp failed");
  path_ = pattern;
}

TempDir::~TempDir() {
  std::error_code ignored;
  fs::remove_all(path_, ignored);
}

std::string TempDir::write(const std::string& name, const std::string& content) const {
  auto file = path_ / name;
  std::ofstream(file, std::ios::binary) << content;
  return file.string();
}

BackgroundProcess::BackgroundProcess(const std::vector<std::string>& argv) {
  for (const auto& word : argv) command_ += (command_.empty() ? "" : " ") + word;
  std::string log_pattern = (fs::temp_directory_path() / "steer-e2e-log-XXXXXX").string();
  int log_fd = ::mkostemp(log_pattern.data(), O_CLOEXEC);
  if (log_fd < 0) throw std::runtime_error("mkostemp failed");
  log_path_ = log_pattern;

  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_adddup2(&actions, log_fd, 1);
  posix_spawn_file_actions_adddup2(&actions, log_fd, 2);
  posix_spawnattr_t attributes;
  posix_spawnattr_init(&attributes);
  // Its own process group: kill() reaches the grandchildren too.
  posix_spawnattr_setpgroup(&attributes, 0);
  sigset_t no_signals;
  sigemptyset(&no_signals);
  posix_spawnattr_setsigmask(&attributes, &no_signals);
  posix_spawnattr_setflags(&attributes, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK);
  std::vector<char*> args;
  for (const auto& word : argv) args.push_back(const_cast<char*>(word.c_str()));
  args.push_back(nullptr);
  int spawned = ::posix_spawnp(&pid_, args[0], &actions, &attributes, args.data(), environ);
  posix_spawnattr_destroy(&attributes);
  posix_spawn_file_actions_destroy(&actions);
  ::close(log_fd);
  if (spawned != 0) {
    ::unlink(log_path_.c_str());
    pid_ = -1;
    throw std::runtime_error("cannot start " + command_ + ": " + std::strerror(spawned));
  }
}

BackgroundProcess::BackgroundProcess(BackgroundProcess&& other) noexcept
    : pid_(std::exchange(other.pid_, -1)),
      reaped_(other.reaped_),
      command_(std::move(other.command_)),
      log_path_(std::move(other.log_path_)) {
  other.log_path_.clear();
}

BackgroundProcess::~BackgroundProcess() {
  kill(SIGKILL);
  if (!log_path_.empty()) ::unlink(log_path_.c_str());
}

bool BackgroundProcess::running() {
  if (pid_ <= 0 || reaped_) return false;
  int status = 0;
  if (::waitpid(pid_, &status, WNOHANG) == 0) return true;
  reaped_ = true;
  return false;
}

void BackgroundProcess::kill(int signal) {
  if (pid_ <= 0) return;
  // The group outlives a reaped leader while any member lives, so its id is still ours.
  ::kill(-pid_, signal);
  if (!reaped_) {
    int status = 0;
    while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
    }
    reaped_ = true;
  }
}

std::string BackgroundProcess::output() const {
  std::ifstream file(log_path_, std::ios::binary);
  std::stringstream content;
  content << file.rdbuf();
  return content.str();
}

std::string BackgroundProcess::describe() const {
  return command_ + " (pid " + std::to_string(pid_) + ")";
}

namespace {

// Polls `ready` every 5 ms until it holds, the process dies, or `timeout` passes.
template <typename Ready>
bool poll_until(BackgroundProcess& process, std::chrono::milliseconds timeout, Ready ready) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (ready()) return true;
    if (!process.running()) return ready();
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return ready();
}

bool port_in_proc_file(const char* path, uint16_t port, const char* state) {
  std::ifstream file(path);
  std::string line;
  std::getline(file, line);  // header
  while (std::getline(file, line)) {
    std::istringstream fields(line);
    std::string slot, local, remote, socket_state;
    fields >> slot >> local >> remote >> socket_state;
    auto colon = local.rfind(':');
    if (colon == std::string::npos) continue;
    if (std::stoul(local.substr(colon + 1), nullptr, 16) == port && socket_state == state)
      return true;
  }
  return false;
}

}  // namespace

bool port_in_use(Transport transport, uint16_t port) {
  // TCP_LISTEN is 0A; an unconnected UDP socket shows TCP_CLOSE, 07.
  if (transport == Transport::Tcp)
    return port_in_proc_file("/proc/self/net/tcp", port, "0A") ||
           port_in_proc_file("/proc/self/net/tcp6", port, "0A");
  return port_in_proc_file("/proc/self/net/udp", port, "07") ||
         port_in_proc_file("/proc/self/net/udp6", port, "07");
}

bool BackgroundProcess::wait_for_port(Transport transport, uint16_t port,
                                      std::chrono::milliseconds timeout) {
  return poll_until(*this, timeout, [&] { return port_in_use(transport, port); });
}

bool BackgroundProcess::wait_for_output(const std::string& text,
                                        std::chrono::milliseconds timeout) {
  return poll_until(*this, timeout,
                    [&] { return output().find(text) != std::string::npos; });
}

uint16_t unused_port(Transport transport) {
  // Below both the ephemeral range and the fixed client ports tests bind (20000 and up), so a
  // server never takes a port a client is about to use.
  static uint16_t next = 10000;
  for (int tries = 0; tries < 10000; ++tries) {
    uint16_t port = next++;
    if (next == 20000) next = 10000;
    int fd = ::socket(AF_INET, (transport == Transport::Tcp ? SOCK_STREAM : SOCK_DGRAM) |
                                   SOCK_CLOEXEC, 0);
    if (fd < 0) throw std::runtime_error("socket failed");
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_ANY);
    address.sin_port = htons(port);
    bool free = ::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) == 0;
    ::close(fd);
    if (free) return port;
  }
  throw std::runtime_error("no unused port in 10000-19999");
}

CurlResult curl_get(const std::string& url, const std::vector<std::string>& extra_args) {
  std::vector<std::string> argv{"curl", "--silent", "--show-error", "--max-time", "10",
                                "--output", "-", "--write-out", "\n%{http_code}"};
  argv.insert(argv.end(), extra_args.begin(), extra_args.end());
  argv.push_back(url);
  auto run = run_command(argv);
  CurlResult result;
  result.exit_code = run.exit_code;
  result.error = run.err;
  auto newline = run.out.rfind('\n');
  if (newline != std::string::npos) {
    result.body = run.out.substr(0, newline);
    result.http_status = std::atoi(run.out.c_str() + newline + 1);
  }
  return result;
}

std::vector<pid_t> processes_in_this_netns(const std::string& command) {
  struct stat own {};
  if (::stat("/proc/self/ns/net", &own) != 0) return {};
  std::vector<pid_t> found;
  std::error_code ignored;
  for (const auto& entry : fs::directory_iterator("/proc", ignored)) {
    const auto name = entry.path().filename().string();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    std::ifstream comm_file(entry.path() / "comm");
    std::string comm;
    std::getline(comm_file, comm);
    if (comm != command) continue;
    struct stat netns {};
    if (::stat((entry.path() / "ns/net").c_str(), &netns) != 0) continue;
    if (netns.st_ino == own.st_ino && netns.st_dev == own.st_dev)
      found.push_back(static_cast<pid_t>(std::stoi(name)));
  }
  return found;
}

nlohmann::json find_destination(const nlohmann::json& status, const std::string& label,
                                const std::string& protocol, const std::string& family) {
  for (const auto& destination : status.at("destinations"))
    if (destination.at("label") == label && destination.at("protocol") == protocol &&
        destination.at("family") == family)
      return destination;
  return nullptr;
}

BackgroundProcess start_server(const std::vector<std::string>& argv, Transport transport,
                               uint16_t port) {
  BackgroundProcess server(argv);
  if (!server.wait_for_port(transport, port))
    throw std::runtime_error(server.describe() + " did not come up on port " +
                             std::to_string(port) + "; it printed:\n" + server.output());
  return server;
}

BackgroundProcess start_name_server(const std::string& name, const std::string& address,
                                    uint16_t port, Transport transport, bool dual_stack) {
  std::vector<std::string> argv{kPython, name_server_script(), "--name", name, "--address",
                                address, "--port", std::to_string(port)};
  if (transport == Transport::Udp) argv.push_back("--udp");
  if (dual_stack) argv.push_back("--dual-stack");
  return start_server(argv, transport, port);
}

namespace {

constexpr const char* kNameServer = R"PY(
# Answers every HTTP GET (TCP) or every datagram (UDP) with its name; prints what it gets.
#   --name NAME --address ADDR --port PORT [--udp] [--dual-stack] [--fd N]
# --fd N serves an inherited listening socket (systemd socket activation) instead of binding.
import argparse, http.server, socket, sys

parser = argparse.ArgumentParser()
parser.add_argument("--name", required=True)
parser.add_argument("--address", default="127.0.0.1")
parser.add_argument("--port", type=int, default=0)
parser.add_argument("--udp", action="store_true")
parser.add_argument("--dual-stack", action="store_true")
parser.add_argument("--fd", type=int)
args = parser.parse_args()
name = args.name.encode()

if args.fd is not None:
    sock = socket.socket(fileno=args.fd)
else:
    family = socket.AF_INET6 if ":" in args.address else socket.AF_INET
    kind = socket.SOCK_DGRAM if args.udp else socket.SOCK_STREAM
    sock = socket.socket(family, kind)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if family == socket.AF_INET6:
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0 if args.dual_stack else 1)
    sock.bind((args.address, args.port))
    if not args.udp:
        sock.listen(1024)

if args.udp:
    while True:
        data, peer = sock.recvfrom(65536)
        print(data.decode(errors="replace"), flush=True)
        sock.sendto(name + b":" + data, peer)

class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(name)))
        self.end_headers()
        self.wfile.write(name)

    def log_message(self, format, *arguments):
        print("%s:%d %s" % (self.client_address[0], self.client_address[1], self.requestline),
              flush=True)

class Server(http.server.HTTPServer):
    def __init__(self, sock):
        self.address_family = sock.family
        super().__init__(sock.getsockname()[:2], Handler, bind_and_activate=False)
        self.socket.close()
        self.socket = sock

Server(sock).serve_forever()
)PY";

}  // namespace

const std::string& name_server_script() {
  static TempDir directory;
  static std::string path = directory.write("name_server.py", kNameServer);
  return path;
}

}  // namespace steer::testing
