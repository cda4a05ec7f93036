// The steer client library (C++): talk to steerd over its control socket to register a
// service's sockets, drain, promote and weigh them, read status, and restart a service
// without losing a connection. Self-contained: this header needs only the standard library.
// Link with `pkg-config --libs steer-client` or `find_package(steer)` + `steer::client`.
#pragma once

#include <cstdint>
#include <expected>
#include <optional>
#include <span>
#include <string>
#include <vector>

namespace steer {

// What went wrong: an errno-like code (EPERM: steerd's config does not allow this uid for the
// label; ENOENT: no such label or socket; ECONNREFUSED: steerd is not running) and a sentence
// that says what to do.
struct ClientError {
  int code = 0;
  std::string message;
};
template <class T>
using ClientResult = std::expected<T, ClientError>;

inline constexpr const char* kDefaultControlSocket = "/run/steer/steerd.sock";

// Which of a label's sockets an operation acts on: those that match every field set (none
// set: all of them).
struct SocketSelector {
  std::optional<uint64_t> cookie;
  std::optional<int32_t> pid;
  std::optional<uint32_t> generation;
};

struct RegisterOptions {
  // The generation to join. None: the label's newest (1 for a new label), so a plain register
  // joins the running generation. next_generation: the newest plus one (a restart).
  std::optional<uint32_t> generation;
  bool next_generation = false;
  // Attach steer's sk_reuseport program to the sockets' SO_REUSEPORT groups.
  bool reuseport = false;
};

struct Registration {
  uint32_t generation = 0;
  std::vector<uint64_t> cookies;  // SO_COOKIE of each socket as registered (one per pool)
};

class Client {
 public:
  // Connects to steerd's control socket.
  static ClientResult<Client> connect(const std::string& socket_path = kDefaultControlSocket);

  Client(Client&&) noexcept;
  Client& operator=(Client&&) noexcept;
  ~Client();

  // Registers listening TCP or bound UDP sockets under `label`. steerd keeps no copy: a
  // socket stays registered while this process (or whoever holds it) keeps it open.
  ClientResult<Registration> register_sockets(const std::string& label, std::span<const int> fds,
                                              const RegisterOptions& options = {});
  ClientResult<size_t> unregister(const std::string& label, const SocketSelector& which = {});
  // Draining sockets get no new connection; they keep what they have.
  ClientResult<size_t> drain(const std::string& label, const SocketSelector& which = {});
  ClientResult<size_t> undrain(const std::string& label, const SocketSelector& which = {});
  ClientResult<size_t> set_weight(const std::string& label, const SocketSelector& which,
                                  uint32_t weight);
  // Makes `generation` active and drains every other generation of the label, in one step.
  ClientResult<void> promote(const std::string& label, uint32_t generation);
  // steerd's status (the JSON of `steer --json status`), for one label or all ("").
  ClientResult<std::string> status_json(const std::string& label = "");

  // Graceful restart, new process: registers `fds` as the label's next generation and
  // promotes it. Returns the new generation; the old one is draining.
  ClientResult<uint32_t> take_over(const std::string& label, std::span<const int> fds,
                                   bool reuseport = false);
  // Graceful restart, old process: returns once every socket of `generation` is draining and
  // has nothing queued (or has left the pool), so that the caller may accept what is left and
  // exit; ETIMEDOUT after `timeout_ms`.
  ClientResult<void> wait_until_drained(const std::string& label, uint32_t generation,
                                        int timeout_ms = 60000);

 private:
  struct Impl;
  explicit Client(Impl* impl);
  Impl* impl_;
};

}  // namespace steer
