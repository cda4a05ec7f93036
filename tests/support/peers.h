// Real peers for end-to-end tests: background servers (python3, socat, systemd-socket-activate)
// started in the test's network namespace, waited for by polling, and always killed.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "support/process.h"
#include "support/steer_cli.h"

namespace steer::testing {

// A private directory under /tmp, removed with everything in it on destruction.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::filesystem::path& path() const { return path_; }
  // Writes `content` to path()/name and returns the file's path.
  std::string write(const std::string& name, const std::string& content) const;

 private:
  std::filesystem::path path_;
};

enum class Transport { Tcp, Udp };

// A process running in the background for the duration of a test. It gets its own process
// group, so whatever it forks (socat's children, the program systemd-socket-activate starts)
// dies with it. stdin is /dev/null; stdout and stderr go to a log file output() reads.
class BackgroundProcess {
 public:
  // Starts `argv` (looked up in PATH). Throws std::runtime_error when it cannot start.
  explicit BackgroundProcess(const std::vector<std::string>& argv);
  ~BackgroundProcess();
  BackgroundProcess(BackgroundProcess&& other) noexcept;
  BackgroundProcess& operator=(BackgroundProcess&&) = delete;
  BackgroundProcess(const BackgroundProcess&) = delete;

  pid_t pid() const { return pid_; }
  // True while the process has not exited (reaps it once it has).
  bool running();
  // Everything the process printed so far (stdout and stderr).
  std::string output() const;

  // Polls /proc/net/{tcp,tcp6} (or udp) of this network namespace until a socket listens
  // (TCP) or is bound unconnected (UDP) on `port`, or until `timeout`. False when the process
  // exited or time ran out; the failure message names the command and carries its output.
  bool wait_for_port(Transport transport, uint16_t port,
                     std::chrono::milliseconds timeout = std::chrono::seconds(10));
  // Polls output() until it contains `text`.
  bool wait_for_output(const std::string& text,
                       std::chrono::milliseconds timeout = std::chrono::seconds(10));

  // Sends `signal` (fatal) to the whole process group and waits for the process to exit.
  void kill(int signal = 9);

  std::string describe() const;  // "python3 -m http.server ... (pid 42)"

 private:
  pid_t pid_ = -1;
  bool reaped_ = false;
  std::string command_;
  std::string log_path_;
};

// True when a socket of `transport` in this network namespace listens (TCP) or is bound and
// unconnected (UDP) on `port`, by reading /proc/net/{tcp,tcp6,udp,udp6}.
bool port_in_use(Transport transport, uint16_t port);

// A free port in this (fresh) namespace, in 10000-19999, distinct from recent answers.
uint16_t unused_port(Transport transport);

// A plain HTTP GET with curl. exit_code is curl's (0 ok, 7 could not connect, ...).
struct CurlResult {
  int exit_code = -1;
  int http_status = 0;
  std::string body;
  std::string error;  // curl's stderr
};
CurlResult curl_get(const std::string& url, const std::vector<std::string>& extra_args = {});

// Processes of this network namespace whose command (/proc/PID/comm) is `command`.
std::vector<pid_t> processes_in_this_netns(const std::string& command);

// The entry of `status` for the destination (label, "tcp"/"udp", "ipv4"/"ipv6"); a null
// json when there is none.
nlohmann::json find_destination(const nlohmann::json& status, const std::string& label,
                                const std::string& protocol, const std::string& family);

// A python3 from Debian (not a pyenv shim: its pid is the server's, which register-pid needs).
inline constexpr const char* kPython = "/usr/bin/python3";

// A tiny python3 server that answers every HTTP GET (TCP) or every datagram (UDP) with its
// name. Written once to a temporary file; see the script for its options.
const std::string& name_server_script();

// Starts the name server answering `name` on address:port and waits until it listens.
// Throws std::runtime_error (with the server's output) when it does not come up.
BackgroundProcess start_name_server(const std::string& name, const std::string& address,
                                    uint16_t port, Transport transport = Transport::Tcp,
                                    bool dual_stack = false);
// Starts `argv` and waits until something listens on `port`; throws like start_name_server.
BackgroundProcess start_server(const std::vector<std::string>& argv, Transport transport,
                               uint16_t port);

}  // namespace steer::testing
